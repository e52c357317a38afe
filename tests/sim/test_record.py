"""`rewardkit sim` on two short metaworld episodes (needs the `[sim]` extra: metaworld + mujoco)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from rewardkit.data.dataset import open_dataset

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("metaworld") is None or importlib.util.find_spec("mujoco") is None,
    reason="metaworld/mujoco not installed (pip install 'rewardkit[sim]')",
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from rewardkit.commands import sim

    root = tmp_path_factory.mktemp("sim") / "ds"
    argv = [
        "--task=reach-v3",
        "--num_success=1",
        "--num_failed=1",
        "--failure_kinds=[stall]",
        "--image_size=32",
        "--cameras=[corner,topview]",
        "--frame_stride=4",
        f"--root={root}",
    ]
    try:
        assert sim.main(argv) == 0
    except Exception as e:  # no usable OpenGL here: say so instead of failing on the platform
        if "OpenGL" in str(e) or "EGL" in str(e) or "GL" in type(e).__name__:
            pytest.skip(f"offscreen rendering unavailable (MUJOCO_GL=egl): {e}")
        raise
    return root


def test_sim_writes_a_lerobot_dataset_with_ground_truth_columns(recorded):
    dataset = open_dataset(root=recorded)
    assert dataset.episode_indices == [0, 1]
    assert dataset.fps == 20
    assert dataset.camera_keys == ["observation.images.corner", "observation.images.topview"]
    assert len(dataset.state_names) == 10
    for episode in dataset.episodes():
        frames = dataset.read_frames(episode.episode_index, "observation.images.corner")
        assert frames.shape == (episode.length, 32, 32, 3)
        assert frames.std() > 1.0  # a rendered scene, not a blank image
    success = dataset.read_columns(0, ["ground_truth.success", "ground_truth.progress", "ground_truth.stage"])
    assert success["ground_truth.success"][-1].item() and not success["ground_truth.success"][0].item()
    progress = success["ground_truth.progress"].reshape(-1)
    assert progress[-1] == pytest.approx(1.0) and progress[0] < 0.1
    assert (success["ground_truth.stage"] == 0).all()  # reach has one stage
    failed = dataset.read_columns(1, ["ground_truth.success", "ground_truth.progress"])
    assert not failed["ground_truth.success"].any()
    assert failed["ground_truth.progress"].max() < 1.0


def test_sim_records_each_episodes_kind_and_stage_spans(recorded):
    meta = json.loads((recorded / "meta" / "rewardkit_sim.json").read_text())
    kinds = [(e["episode_index"], e["kind"], e["success"]) for e in meta["episodes"]]
    assert kinds == [(0, "success", True), (1, "stall", False)]
    for episode in meta["episodes"]:
        spans = episode["stage_spans"]
        assert spans[0]["start"] == 0 and spans[-1]["end"] == episode["length"]
        assert all(a["end"] == b["start"] for a, b in zip(spans, spans[1:], strict=False))


def test_sim_refuses_to_overwrite_an_existing_folder(recorded):
    from rewardkit.sim.metaworld_sim import record_metaworld_dataset

    with pytest.raises(ValueError, match="already exists"):
        record_metaworld_dataset(recorded, tasks=["reach-v3"], num_success=1, num_failed=0)


def test_sim_rejects_an_unknown_task(tmp_path):
    from rewardkit.sim.metaworld_sim import record_metaworld_dataset

    with pytest.raises(ValueError, match="unknown metaworld task"):
        record_metaworld_dataset(tmp_path / "x", tasks=["fly-to-the-moon-v3"], num_success=1, num_failed=0)
    assert not (tmp_path / "x").exists()


def test_stall_episode_stops_moving(recorded):
    dataset = open_dataset(root=recorded)
    state = dataset.read_columns(1, ["observation.state"])["observation.state"]
    hand_speed = np.linalg.norm(np.diff(state[:, :3], axis=0), axis=1)
    assert hand_speed[-3:].max() < hand_speed.max() / 5


def test_sim_writes_the_expert_stages_as_sarm_annotations(recorded):
    from rewardkit.data.annotations import read_annotations, read_temporal_proportions

    meta = json.loads((recorded / "meta" / "rewardkit_sim.json").read_text())
    for scheme in ("sparse", "dense"):
        annotations = read_annotations(recorded, scheme)
        for episode in meta["episodes"]:
            annotation = annotations[episode["episode_index"]]
            assert list(annotation.names) == [s["name"] for s in episode["stage_spans"]]
            assert annotation.end_frames[-1] == episode["length"] - 1
        assert read_temporal_proportions(recorded, scheme) == {"reach the goal": pytest.approx(1.0)}


@pytest.mark.parametrize("kind", ["grasp_air", "place_beside"])
def test_vision_only_rollouts_plateau_where_the_stage_predicates_say(kind):
    from rewardkit.sim.metaworld_sim import MetaworldRecorder, _ground_truth
    from rewardkit.sim.phases import progress_reached

    recorder = MetaworldRecorder("pick-place-v3", ["corner"], 16)
    try:
        rollout = recorder.rollout(0, kind, 120, 2, 6, np.random.default_rng(0))
        stage, progress = _ground_truth(rollout, recorder.phases)
    finally:
        recorder.close()
    assert not rollout.success.any()
    reached = progress_reached(progress)
    puck = rollout.observations[:, 4:7]
    if kind == "grasp_air":
        # The gripper closed on air: the puck never moved, the hand never was over it, and the expert
        # still commanded a closed gripper (it believed it held the puck).
        assert np.abs(puck - puck[0]).max() < 0.01
        assert (stage == 0).all() and rollout.grip_command.max() > 0.5
        assert progress[-1] < 0.05 and 0 < reached[-1] < 1 / 3
    else:
        # Carried (the puck left the table), held beside the goal: the last stage, never the goal.
        assert puck[:, 2].max() > 0.05 and stage[-1] == 2
        assert 2 / 3 < progress[-1] < 0.97
        last = int(np.argmax(reached >= reached[-1] - 1e-6))
        assert last < len(reached) - 5  # a plateau, not a rise to the last frame
