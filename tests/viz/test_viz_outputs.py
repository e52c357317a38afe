"""Plots and videos: files are valid PNG/mp4 with the right content; the viz command end to end."""

from __future__ import annotations

import numpy as np
import pytest
from toy_reward_models import save_toy

from rewardkit.cli import main
from rewardkit.viz import compose_frames, plot_episode, plot_overview, side_by_side, stage_boundaries

PNG = b"\x89PNG\r\n\x1a\n"


def _read_png(path) -> np.ndarray:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG
    return np.asarray(Image.open(path).convert("RGB"))


def test_stage_boundaries_by_hand():
    np.testing.assert_array_equal(stage_boundaries(np.array([0, 0, 1, 1, 1, 2])), [2, 5])
    assert stage_boundaries(np.zeros(4, dtype=int)).size == 0


def test_episode_plot_has_progress_stages_and_frames(tmp_path):
    progress = np.linspace(0, 1, 20)
    outputs = {"progress": progress, "stage_probs": np.stack([1 - progress, progress], 1)}
    frames = np.zeros((3, 16, 16, 3), dtype=np.uint8)
    frames[:, :, :, 0] = 255  # pure red frames must show up in the strip
    with_all = plot_episode(
        tmp_path / "a.png", outputs, progress, (progress > 0.5).astype(int), frames, [0, 10, 19], "t"
    )
    only_progress = plot_episode(tmp_path / "b.png", {"progress": progress})
    a, b = _read_png(with_all), _read_png(only_progress)
    assert a.shape[0] > 1.5 * b.shape[0]  # three panels against one
    red = (a[..., 0] > 240) & (a[..., 1] < 20) & (a[..., 2] < 20)
    assert red.sum() > 1000 and not ((b[..., 0] > 240) & (b[..., 1] < 20) & (b[..., 2] < 20)).any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary files left


def test_overview_splits_success_and_failure(tmp_path):
    curves = {0: np.linspace(0, 1, 10), 1: np.linspace(0, 0.3, 12)}
    image = _read_png(plot_overview(tmp_path / "o.png", curves, {0: True, 1: False}))
    bar = np.array([209, 73, 91]) * 0.7 + 255 * 0.3  # the failure histogram bar: colour at alpha 0.7 on white
    failure_bar = (np.abs(image.astype(int) - bar).sum(-1) < 30).sum()
    success_only = _read_png(plot_overview(tmp_path / "s.png", {0: curves[0]}))
    assert failure_bar > 100
    assert (np.abs(success_only.astype(int) - bar).sum(-1) < 30).sum() == 0


def test_video_frames_reveal_the_graph_progressively():
    length = 12
    views = {"a": np.zeros((length, 16, 16, 3), np.uint8), "b": np.full((length, 8, 8, 3), 200, np.uint8)}
    assert side_by_side(views).shape[1:] == (192, 192 + 192, 3)
    frames = list(compose_frames(views, np.linspace(0, 1, length)))
    assert len(frames) == length
    assert all(f.shape[0] % 2 == 0 and f.shape[1] % 2 == 0 for f in frames)

    # the blue progress curve grows: more curve pixels at the end than at the start
    def blue(f):
        return ((np.abs(f.astype(int) - [46, 134, 171]).sum(-1)) < 40).sum()

    counts = [blue(f) for f in frames]
    assert counts[0] < counts[length // 2] < counts[-1]
    with pytest.raises(ValueError, match="different frame counts"):
        side_by_side({"a": np.zeros((3, 4, 4, 3), np.uint8), "b": np.zeros((4, 4, 4, 3), np.uint8)})


def test_viz_command_writes_plots_and_videos(two_camera_dataset, tmp_path, capsys):
    import av

    root, truths = two_camera_dataset
    model = save_toy(tmp_path / "toy", num_stages=2)
    out = tmp_path / "viz"
    argv = ["viz", f"--dataset.root={root}", f"--model.path={model}", f"--output_dir={out}"]
    assert main([*argv, "--dataset.episodes=[3]", "--video=true", "--failed_episodes=[3]"]) == 0
    printed = capsys.readouterr().out
    assert "episode 3 video" in printed and "overview" in printed
    assert sorted(p.name for p in out.iterdir()) == ["episode_3.mp4", "episode_3.png", "overview.png"]
    with av.open(str(out / "episode_3.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == 10  # the dataset's fps
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == truths[3].length
    # both 16x16 cameras side by side, scaled to 192 px high: wider than one view
    assert decoded[0].shape[1] >= 2 * 192
    # a progress parquet works as the source too; a missing episode is a clear error
    parquet = tmp_path / "p.parquet"
    assert (
        main(
            [
                "label",
                f"--dataset.root={root}",
                f"--model.path={model}",
                f"--output={parquet}",
                "--dataset.episodes=[0]",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "viz",
                f"--dataset.root={root}",
                f"--progress_path={parquet}",
                f"--output_dir={tmp_path / 'v2'}",
                "--dataset.episodes=[0]",
            ]
        )
        == 0
    )
    assert (tmp_path / "v2" / "episode_0.png").is_file()
    capsys.readouterr()
    assert (
        main(
            [
                "viz",
                f"--dataset.root={root}",
                f"--progress_path={parquet}",
                f"--output_dir={tmp_path / 'v3'}",
                "--dataset.episodes=[1]",
            ]
        )
        == 2
    )
    assert "has no progress for episode(s) [1]" in capsys.readouterr().err
    assert main(["viz", f"--dataset.root={root}"]) == 2


def test_viz_never_replaces_earlier_plots_unless_asked(two_camera_dataset, tmp_path, capsys):
    root, _ = two_camera_dataset
    model = save_toy(tmp_path / "toy")
    parquet = tmp_path / "p.parquet"
    assert main(["label", f"--dataset.root={root}", f"--model.path={model}", f"--output={parquet}"]) == 0
    out = tmp_path / "viz"
    base = ["viz", f"--dataset.root={root}", f"--progress_path={parquet}", f"--output_dir={out}"]
    assert main([*base, "--dataset.episodes=[1,2]"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["episode_1.png", "episode_2.png", "overview.png"]
    # Episode 0 is new, but the overview and episode 1 would be replaced: nothing is written.
    assert main([*base, "--dataset.episodes=[0,1]", "--targets=false"]) == 2
    error = capsys.readouterr().err
    assert "--overwrite=true" in error and str(out) in error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main([*base, "--dataset.episodes=[0,1]", "--targets=false", "--overwrite=true"]) == 0
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(after) == ["episode_0.png", "episode_1.png", "episode_2.png", "overview.png"]
    assert (
        after["episode_1.png"] != before["episode_1.png"]
        and after["episode_2.png"] == before["episode_2.png"]
    )


def test_viz_refuses_a_progress_file_of_another_dataset(two_camera_dataset, tiny_dataset, tmp_path, capsys):
    root, _ = two_camera_dataset
    tiny_root, _ = tiny_dataset
    model = save_toy(tmp_path / "toy")
    parquet = tmp_path / "tiny.parquet"
    assert main(["label", f"--dataset.root={tiny_root}", f"--model.path={model}", f"--output={parquet}"]) == 0
    argv = ["viz", f"--dataset.root={root}", f"--progress_path={parquet}", f"--output_dir={tmp_path / 'v'}"]
    assert main([*argv, "--dataset.episodes=[0]"]) == 2
    assert "labelled from another dataset" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()
