import json
import shutil

import numpy as np
import pytest

from rewardkit.data.dataset import DatasetError, open_dataset


def test_lists_episodes_with_lengths_tasks_cameras_and_names(two_camera_dataset):
    root, truths = two_camera_dataset
    ds = open_dataset(root=root)
    episodes = ds.episodes()
    assert [e.episode_index for e in episodes] == [0, 1, 2, 3]
    assert [e.length for e in episodes] == [t.length for t in truths]
    assert [e.task for e in episodes] == [t.task for t in truths]
    assert ds.fps == 10
    assert ds.camera_keys == ["observation.images.top", "observation.images.wrist"]
    assert ds.state_names == ["joint_0", "joint_1", "joint_2", "joint_3"]
    assert ds.action_names == ["motor_0", "motor_1", "motor_2"]
    # global index ranges tile the dataset
    assert episodes[0].from_index == 0
    assert all(a.to_index == b.from_index for a, b in zip(episodes, episodes[1:], strict=False))


def test_reads_frames_sequentially_matching_lerobot(tiny_dataset):
    """Our sequential decode gives the same frames as lerobot's own per-item reader."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, truths = tiny_dataset
    ds = open_dataset(root=root)
    frames = ds.read_frames(1, "observation.images.top")
    assert frames.shape == (truths[1].length, 32, 32, 3)
    assert frames.dtype == np.uint8
    reference = LeRobotDataset("rewardkit/synthetic", root=root)
    start = ds.episode(1).from_index
    for t in (0, 7, truths[1].length - 1):
        item = reference[start + t]["observation.images.top"]  # (3, H, W) float in [0, 1]
        theirs = (item.permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(theirs - frames[t].astype(np.float32)).max() <= 2


def test_frames_follow_the_episode_content(tiny_dataset):
    """The moving square's centre tracks the ground-truth progress: frames come in order."""
    root, truths = tiny_dataset
    frames = open_dataset(root=root).read_frames(0, "observation.images.top").astype(np.float32)
    red = np.clip(frames[..., 0] - frames[..., 1], 0, None).sum(axis=1)  # (T, W) red mass per column
    centre = (red * np.arange(red.shape[1])).sum(axis=1) / red.sum(axis=1)
    expected = truths[0].progress * (32 - 32 // 6) + (32 // 6 - 1) / 2
    np.testing.assert_allclose(centre, expected, atol=1.5)


def test_reads_state_and_action_columns(tiny_dataset):
    root, truths = tiny_dataset
    cols = open_dataset(root=root).read_columns(2, ["observation.state", "action", "frame_index"])
    assert cols["observation.state"].shape == (truths[2].length, 4)
    assert cols["action"].shape == (truths[2].length, 3)
    assert list(cols["frame_index"]) == list(range(truths[2].length))
    np.testing.assert_allclose(cols["observation.state"][:, 0], truths[2].progress, atol=0.1)


def test_missing_info_json_names_the_path(tmp_path):
    with pytest.raises(DatasetError, match=r"missing .*meta/info.json"):
        open_dataset(root=tmp_path)


def test_v2_dataset_gets_conversion_instructions(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30}))
    with pytest.raises(DatasetError, match="convert_dataset_v21_to_v30"):
        open_dataset(root=tmp_path)


def test_unknown_camera_key(tiny_dataset):
    ds = open_dataset(root=tiny_dataset[0])
    with pytest.raises(DatasetError, match="unknown camera key 'observation.images.side'"):
        ds.read_frames(0, "observation.images.side")


def test_episode_out_of_range(tiny_dataset):
    ds = open_dataset(root=tiny_dataset[0])
    with pytest.raises(DatasetError, match="episode 7 out of range"):
        ds.episode(7)
    with pytest.raises(DatasetError, match="episode 9 out of range"):
        open_dataset(root=tiny_dataset[0], episodes=[0, 9])


def test_unknown_column(tiny_dataset):
    ds = open_dataset(root=tiny_dataset[0])
    with pytest.raises(DatasetError, match="not in dataset"):
        ds.read_columns(0, ["observation.velocity"])


def test_missing_and_truncated_video_file(tmp_path, tiny_dataset):
    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset[0], root)
    ds = open_dataset(root=root)
    video = ds.video_path(0, "observation.images.top")
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match=str(video.name)):
        ds.read_frames(2, "observation.images.top")
    video.unlink()
    with pytest.raises(DatasetError, match="missing video file"):
        ds.read_frames(0, "observation.images.top")
