"""Record LeRobot v3 datasets from metaworld's scripted experts, with ground truth and failures.

Each episode is rolled out by the task's scripted expert. A successful episode stops a few frames after
metaworld reports success; a failure episode has one thing go wrong, and is kept only if the task is
then never reached. Failure kinds come in two families:
  state-visible (the full robot state shows them: the object's position is in it):
  - `action_noise`: strong Gaussian noise is added to the expert's motion from a random step on;
  - `drop`: the gripper opens mid-transport and stays open (tasks with a carry phase only);
  - `stall`: the arm stops moving from a random step on (the gripper keeps its last command).
  vision-only (with `state="proprio"`, only the images show them; tasks with an object only):
  - `grasp_air`: the expert is shown the object 7-10 cm beside where it is, so it lowers there, closes
    the gripper on air and carries on to the goal as if it held the object (the object never moves);
  - `place_beside`: the expert is shown the goal 10-14 cm beside where it is, so it carries the object
    there and holds it beside the target.
Failure episodes get lengths drawn from the task's successful episodes, so length does not give them
away.

`observation.state` is `full` (hand xyz, gripper opening, object xyz, goal xyz: a drop shows in it) or
`proprio` (hand xyz and the gripper command only: what a robot knows of itself; the measured finger
opening is left out, as it tells whether something is between the fingers).

Per frame the dataset holds the ground truth as data columns: `ground_truth.success` (metaworld's
success flag), `ground_truth.stage` (the expert's phase, see `phases.py`), `ground_truth.progress`
(the current progress, continuous in [0, 1]: it falls back when the object is dropped) and
`ground_truth.progress_reached` (its running maximum: the progress reached so far). Per episode,
`meta/rewardkit_sim.json` records the task, the kind (`success` or a failure kind) and its family, the
seed, the state layout and the stage names; the stage spans are written in LeRobot's SARM annotation
columns.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write_text
from rewardkit.sim.phases import (
    GOAL,
    GRIPPER,
    HAND,
    OBJECT,
    TaskPhases,
    phase_progress,
    phases_for,
    progress_reached,
    reward_progress,
)

logger = logging.getLogger(__name__)

STATE_VISIBLE_KINDS = ("action_noise", "drop", "stall")
VISION_ONLY_KINDS = ("grasp_air", "place_beside")
FAILURE_KINDS = STATE_VISIBLE_KINDS + VISION_ONLY_KINDS
FAILURE_FAMILIES = {
    **{kind: "state-visible" for kind in STATE_VISIBLE_KINDS},
    **{kind: "vision-only" for kind in VISION_ONLY_KINDS},
}
STATE_LAYOUTS = ("full", "proprio")
SIM_META_FILE = "meta/rewardkit_sim.json"
SCHEMES = ("sparse", "dense")  # SARM annotation schemes written (the same expert stages in both)
GROUND_TRUTH_COLUMNS = ("ground_truth.success", "ground_truth.stage", "ground_truth.progress",
                        "ground_truth.progress_reached")  # fmt: skip
STATE_NAMES = {
    "full": ("hand_x", "hand_y", "hand_z", "gripper", "object_x", "object_y", "object_z",
             "goal_x", "goal_y", "goal_z"),
    "proprio": ("hand_x", "hand_y", "hand_z", "gripper_command"),
}  # fmt: skip
ACTION_NAMES = ("delta_x", "delta_y", "delta_z", "grab_effort")
# metaworld's corner cameras are mounted upside down: their images are turned by 180 degrees.
_UPSIDE_DOWN_CAMERAS = ("corner", "corner2", "corner3")
_SIM_STEP_HZ = 80  # metaworld: frame_skip 5 x timestep 0.0025 s


@dataclass
class SimEpisode:
    """What was recorded for one episode (its ground truth). Arrays are per recorded frame (T,)."""

    episode_index: int
    task: str
    task_description: str
    kind: str
    seed: int
    success: np.ndarray = field(repr=False)
    stage: np.ndarray = field(repr=False)
    progress: np.ndarray = field(repr=False)
    stage_names: tuple[str, ...] = ()

    @property
    def progress_reached(self) -> np.ndarray:
        """(T,) the progress reached so far (running maximum of `progress`)."""
        return progress_reached(self.progress)

    @property
    def length(self) -> int:
        return len(self.progress)

    @property
    def failed(self) -> bool:
        return self.kind != "success"


@dataclass
class _Rollout:
    observations: np.ndarray  # (T, 39)
    actions: np.ndarray  # (T, 4)
    rewards: np.ndarray  # (T,)
    success: np.ndarray  # (T,) bool
    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3)
    grip_command: np.ndarray  # (T,) the gripper command in force when the frame was taken


def applicable_kinds(phases: TaskPhases | None, kinds: Sequence[str] = FAILURE_KINDS) -> list[str]:
    """The failure kinds of `kinds` a task can show: `drop` needs a carry phase, the vision-only kinds
    an object to grasp (a task with a phase table of more than one stage)."""
    has_object = phases is not None and len(phases.stage_names) > 1
    return [
        k
        for k in kinds
        if (k != "drop" or (phases is not None and phases.carry_stage is not None))
        and (k not in VISION_ONLY_KINDS or has_object)
    ]


class _FalseBelief:
    """What the expert is shown in a vision-only failure: the object or the goal where it is not.

    `grasp_air`: the object is shown at `offset` beside its place until the expert's own phase test says
    it holds it (the grasp phase reached on the shown object); from then on the shown object moves with
    the hand, so the expert carries on to the goal as if holding it. `place_beside`: the goal is shown at
    `offset` beside its place.
    """

    def __init__(self, kind: str, phases: TaskPhases, rng: np.random.Generator) -> None:
        self.kind, self.phases = kind, phases
        angle = rng.uniform(0.0, 2 * np.pi)
        distance = rng.uniform(0.07, 0.10) if kind == "grasp_air" else rng.uniform(0.10, 0.14)
        self.offset = distance * np.array([np.cos(angle), np.sin(angle), 0.0])
        self.held: np.ndarray | None = None  # shown object - hand, once "grasped"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        shown = obs.copy()
        if self.kind == "place_beside":
            shown[GOAL] = obs[GOAL] + self.offset
            return shown
        if self.held is not None:
            shown[OBJECT] = obs[HAND] + self.held
            return shown
        shown[OBJECT] = obs[OBJECT] + self.offset
        if self.phases.phase(shown) == len(self.phases.stage_names) - 1:
            self.held = shown[OBJECT] - obs[HAND]
        return shown


def ensure_offscreen_rendering() -> None:
    """Pick an offscreen OpenGL backend before mujoco is imported (EGL unless the user chose one)."""
    if "mujoco" in sys.modules and "MUJOCO_GL" not in os.environ:
        logger.warning("mujoco was imported before rewardkit.sim: set MUJOCO_GL=egl if rendering fails")
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


def task_description(task: str) -> str:
    """The language instruction of a metaworld task (lerobot's table when present, else from its name)."""
    try:
        from lerobot.envs.metaworld import TASK_DESCRIPTIONS
    except Exception:  # lerobot's metaworld module needs gymnasium+metaworld; the name still works
        TASK_DESCRIPTIONS = {}
    return TASK_DESCRIPTIONS.get(task, task.removesuffix("-v3").replace("-", " "))


def _expert_policy(task: str):
    import metaworld.policies as policies

    name = "Sawyer" + "".join(part.capitalize() for part in task.split("-")) + "Policy"
    if not hasattr(policies, name):
        raise RewardkitError(f"metaworld has no scripted expert for task {task!r} (looked for {name})")
    return getattr(policies, name)()


class MetaworldRecorder:
    """One metaworld task: its env, its expert and an offscreen renderer for the chosen cameras."""

    def __init__(self, task: str, cameras: Sequence[str], image_size: int) -> None:
        ensure_offscreen_rendering()
        import metaworld
        import mujoco

        if task not in metaworld.ALL_V3_ENVIRONMENTS:
            known = ", ".join(sorted(metaworld.ALL_V3_ENVIRONMENTS))
            raise RewardkitError(f"unknown metaworld task {task!r}; known tasks: {known}")
        self.task = task
        self.phases: TaskPhases | None = phases_for(task)
        self.policy = _expert_policy(task)
        benchmark = metaworld.MT1(task, seed=0)
        self.env = benchmark.train_classes[task]()
        self.env.set_task(benchmark.train_tasks[0])
        # New object and goal positions at every reset, drawn from the env's seeded generator.
        self.env._freeze_rand_vec = False
        self.env.seeded_rand_vec = True
        model = self.env.model
        camera_names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        for camera in cameras:
            if camera not in camera_names:
                raise RewardkitError(
                    f"metaworld has no camera {camera!r}; cameras: {', '.join(camera_names)}"
                )
        self.cameras = list(cameras)
        # Rendering speed: no shadow maps, no multisampling (small frames gain nothing from either).
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        self.renderer = mujoco.Renderer(model, image_size, image_size)

    def close(self) -> None:
        """Free the renderer's GL context and the env (avoids errors from GL teardown at exit)."""
        self.renderer.close()
        self.env.close()

    def _render(self) -> dict[str, np.ndarray]:
        images = {}
        for camera in self.cameras:
            self.renderer.update_scene(self.env.data, camera=camera)
            image = self.renderer.render()
            if camera in _UPSIDE_DOWN_CAMERAS:
                image = image[::-1, ::-1]
            images[camera] = np.ascontiguousarray(image)
        return images

    def rollout(
        self,
        seed: int,
        kind: str,
        max_steps: int,
        frame_stride: int,
        hold_steps: int,
        rng: np.random.Generator,
    ) -> _Rollout:
        """Run the expert for one episode, with the failure `kind` injected (or "success")."""
        self.env.seed(seed)
        obs, _ = self.env.reset()
        fault_step = {
            "action_noise": int(rng.uniform(0.1, 0.4) * max_steps),
            "stall": int(rng.uniform(0.25, 0.6) * max_steps),
        }.get(kind, max_steps + 1)
        drop_after = int(rng.integers(2, 8))  # steps into the carry phase before the gripper opens
        carry_steps, dropped, held = 0, False, 0
        belief = None
        if kind in VISION_ONLY_KINDS:
            if kind not in applicable_kinds(self.phases):
                raise RewardkitError(
                    f"failure kind {kind!r} does not apply to {self.task} (no object to grasp)"
                )
            belief = _FalseBelief(kind, self.phases, rng)
        observations, actions, rewards, successes, grips = [], [], [], [], []
        images: dict[str, list[np.ndarray]] = {c: [] for c in self.cameras}
        last_grab = 0.0
        for step in range(max_steps):
            shown = obs if belief is None else belief(obs)
            action = np.asarray(self.policy.get_action(shown), dtype=np.float64)
            if kind == "action_noise" and step >= fault_step:
                action[:3] += rng.normal(0.0, 1.5, 3)
            elif kind == "stall" and step >= fault_step:
                action[:3] = 0.0
                action[3] = last_grab
            elif kind == "drop" and self.phases is not None:
                if not dropped and self.phases.phase(obs) == self.phases.carry_stage:
                    carry_steps += 1
                    dropped = carry_steps > drop_after
                if dropped:
                    action[3] = -1.0
            action = np.clip(action, -1.0, 1.0)
            if step % frame_stride == 0:
                observations.append(obs.copy())
                grips.append(last_grab)
                for camera, image in self._render().items():
                    images[camera].append(image)
            obs, reward, _, truncated, info = self.env.step(action)
            last_grab = float(action[3])
            if step % frame_stride == 0:
                actions.append(action.astype(np.float32))
                rewards.append(float(reward))
                successes.append(bool(info["success"]))
            if kind == "success" and info["success"]:
                held += 1
                if held > hold_steps:
                    break
            if truncated:
                break
        return _Rollout(
            observations=np.stack(observations),
            actions=np.stack(actions),
            rewards=np.asarray(rewards, dtype=np.float32),
            success=np.asarray(successes, dtype=bool),
            images={c: np.stack(v) for c, v in images.items()},
            grip_command=np.asarray(grips, dtype=np.float32),
        )


def _ground_truth(rollout: _Rollout, phases: TaskPhases | None) -> tuple[np.ndarray, np.ndarray]:
    if phases is None:
        stage = np.zeros(len(rollout.rewards), dtype=np.int64)
        progress = reward_progress(rollout.rewards)
    else:
        stage, progress = phase_progress(rollout.observations, phases)
    # Once metaworld says the task is done, it is done: progress 1 and the last stage.
    last_stage = 0 if phases is None else len(phases.stage_names) - 1
    stage = np.where(rollout.success, last_stage, stage)
    progress = np.where(rollout.success, 1.0, progress).astype(np.float32)
    return stage, progress


def _stage_spans(stage: np.ndarray, stage_names: Sequence[str]) -> list[dict]:
    """Contiguous runs of the stage column as [{name, start, end}] (end exclusive), frame indices."""
    spans, start = [], 0
    for t in range(1, len(stage) + 1):
        if t == len(stage) or stage[t] != stage[start]:
            spans.append({"name": stage_names[int(stage[start])], "start": start, "end": t})
            start = t
    return spans


def _features(cameras: Sequence[str], image_size: int, state: str = "full") -> dict[str, dict]:
    names = STATE_NAMES[state]
    features = {
        "observation.state": {"dtype": "float32", "shape": (len(names),), "names": list(names)},
        "action": {"dtype": "float32", "shape": (len(ACTION_NAMES),), "names": list(ACTION_NAMES)},
        "ground_truth.success": {"dtype": "bool", "shape": (1,), "names": None},
        "ground_truth.stage": {"dtype": "int64", "shape": (1,), "names": None},
        "ground_truth.progress": {"dtype": "float32", "shape": (1,), "names": None},
        "ground_truth.progress_reached": {"dtype": "float32", "shape": (1,), "names": None},
    }
    for camera in cameras:
        features[f"observation.images.{camera}"] = {
            "dtype": "video",
            "shape": (image_size, image_size, 3),
            "names": ["height", "width", "channels"],
        }
    return features


def _state(rollout: _Rollout, layout: str = "full") -> np.ndarray:
    """(T, D) `observation.state` of a rollout in the chosen layout (see STATE_NAMES)."""
    observations = rollout.observations
    if layout == "proprio":
        return np.concatenate([observations[:, HAND], rollout.grip_command[:, None]], axis=1).astype(
            np.float32
        )
    return np.concatenate(
        [
            observations[:, HAND],
            observations[:, GRIPPER : GRIPPER + 1],
            observations[:, OBJECT],
            observations[:, GOAL],
        ],
        axis=1,
    ).astype(np.float32)


def record_metaworld_dataset(
    root: str | Path,
    tasks: Sequence[str] = ("reach-v3",),
    num_success: int = 16,
    num_failed: int = 8,
    cameras: Sequence[str] = ("corner",),
    image_size: int = 96,
    seed: int = 0,
    repo_id: str = "rewardkit/metaworld-sim",
    max_steps: int = 150,
    frame_stride: int = 2,
    hold_steps: int = 6,
    failure_kinds: Sequence[str] = FAILURE_KINDS,
    max_attempts: int = 20,
    write_stage_annotations: bool = True,
    progress: bool = True,
    state: str = "full",
) -> list[SimEpisode]:
    """Record `num_success` successful and `num_failed` failed expert episodes of each task at `root`.

    Episodes of a task are contiguous: its successes, then its failures (kinds cycle through the
    applicable `failure_kinds`). `max_steps` are simulator steps (80 Hz); one frame is recorded every
    `frame_stride` steps, so the dataset's fps is 80 / frame_stride. `state` is the layout of
    `observation.state`: "full" or "proprio" (see the module docstring). `root` must not exist. Returns each
    episode's ground truth; the same is stored in the dataset (see the module docstring).
    """
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from tqdm import tqdm

    root = Path(root)
    if root.exists():
        raise RewardkitError(
            f"{root} already exists; rewardkit sim writes a new dataset (choose another --root)"
        )
    unknown = sorted(set(failure_kinds) - set(FAILURE_KINDS))
    if unknown:
        raise RewardkitError(f"unknown failure kinds {unknown}; known: {', '.join(FAILURE_KINDS)}")
    if state not in STATE_LAYOUTS:
        raise RewardkitError(f"unknown state layout {state!r}; choose one of {', '.join(STATE_LAYOUTS)}")
    if num_failed > 0 and not failure_kinds:
        raise RewardkitError("num_failed > 0 needs at least one failure kind")
    if _SIM_STEP_HZ % frame_stride != 0:
        raise RewardkitError(
            f"frame_stride must divide {_SIM_STEP_HZ} (the simulator's rate), got {frame_stride}"
        )
    if not tasks:
        raise RewardkitError("give at least one metaworld task")
    rng = np.random.default_rng(seed)
    recorders = {task: MetaworldRecorder(task, cameras, image_size) for task in tasks}  # fail early
    dataset = LeRobotDataset.create(
        repo_id=repo_id,
        fps=_SIM_STEP_HZ // frame_stride,
        features=_features(cameras, image_size, state),
        root=root,
        use_videos=True,
        rgb_encoder=RGBEncoderConfig(vcodec="h264", g=2, crf=23),
    )
    episodes: list[SimEpisode] = []
    bar = tqdm(total=len(tasks) * (num_success + num_failed), desc="rewardkit sim", unit="episode",
               disable=not progress)  # fmt: skip
    try:
        for task_number, task in enumerate(tasks):
            recorder = recorders[task]
            kinds_here = applicable_kinds(recorder.phases, failure_kinds)
            if num_failed and not kinds_here:
                raise RewardkitError(f"none of the failure kinds {list(failure_kinds)} applies to {task}")
            plan = ["success"] * num_success + [kinds_here[i % len(kinds_here)] for i in range(num_failed)]
            success_lengths: list[int] = []
            for number, kind in enumerate(plan):
                episode_seed = seed * 1_000_003 + task_number * 10_007 + number * 101
                for attempt in range(max_attempts):
                    steps = max_steps
                    if kind != "success" and success_lengths:
                        steps = min(
                            max_steps, int(rng.choice(success_lengths) * frame_stride * rng.uniform(0.9, 1.3))
                        )
                    rollout = recorder.rollout(
                        episode_seed + attempt, kind, steps, frame_stride, hold_steps, rng
                    )
                    if rollout.success.any() == (kind == "success") and len(rollout.success) >= 4:
                        break
                else:
                    raise RuntimeError(
                        f"{task}: no {kind} episode in {max_attempts} attempts (seed {episode_seed}); "
                        f"try a larger max_steps or another seed"
                    )
                if kind == "success":
                    success_lengths.append(len(rollout.success))
                stage, progress_column = _ground_truth(rollout, recorder.phases)
                description = task_description(task)
                state_values = _state(rollout, state)
                reached = progress_reached(progress_column)
                for t in range(len(stage)):
                    frame = {
                        "observation.state": state_values[t],
                        "action": rollout.actions[t],
                        "ground_truth.success": np.array([rollout.success[t]], dtype=bool),
                        "ground_truth.stage": np.array([stage[t]], dtype=np.int64),
                        "ground_truth.progress": np.array([progress_column[t]], dtype=np.float32),
                        "ground_truth.progress_reached": np.array([reached[t]], dtype=np.float32),
                        "task": description,
                    }
                    for camera in cameras:
                        frame[f"observation.images.{camera}"] = rollout.images[camera][t]
                    dataset.add_frame(frame)
                dataset.save_episode()
                stage_names = recorder.phases.stage_names if recorder.phases else (description,)
                episodes.append(SimEpisode(len(episodes), task, description, kind, episode_seed + attempt,
                                           rollout.success, stage, progress_column, tuple(stage_names)))  # fmt: skip
                bar.update(1)
        dataset.finalize()
    finally:
        bar.close()
        for recorder in recorders.values():
            recorder.close()
    _write_sim_meta(root, episodes, cameras, image_size, frame_stride, state)
    if write_stage_annotations:
        _write_stage_annotations(root)
    return episodes


def _write_sim_meta(
    root: Path,
    episodes: Sequence[SimEpisode],
    cameras: Sequence[str],
    image_size: int,
    frame_stride: int,
    state: str = "full",
) -> None:
    meta = {
        "generator": "rewardkit sim (metaworld scripted experts)",
        "cameras": [f"observation.images.{c}" for c in cameras],
        "image_size": image_size,
        "frame_stride": frame_stride,
        "state": state,
        "state_names": list(STATE_NAMES[state]),
        "ground_truth_columns": list(GROUND_TRUTH_COLUMNS),
        "failure_families": FAILURE_FAMILIES,
        "episodes": [
            {
                "episode_index": e.episode_index,
                "task": e.task,
                "task_description": e.task_description,
                "kind": e.kind,
                "family": FAILURE_FAMILIES.get(e.kind, "success"),
                "success": bool(e.success.any()),
                "seed": e.seed,
                "length": e.length,
                "stage_names": list(e.stage_names),
                "stage_spans": _stage_spans(e.stage, e.stage_names),
            }
            for e in episodes
        ],
    }
    path = root / SIM_META_FILE
    atomic_write_text(path, json.dumps(meta, indent=1))


def _write_stage_annotations(root: Path) -> bool:
    """Write the expert's stages in LeRobot's SARM columns and their temporal proportions.

    The experts have one level of phases, so the same stages go in both schemes (sparse and dense): a
    SARM in `dual` mode (our and lerobot's default for annotated data) finds what it needs.

    Reads the spans from `meta/rewardkit_sim.json`. The proportions come from the successful episodes
    only (a failure's repeated stages would skew them). Returns False (and logs why) when rewardkit's
    annotation writer is not available.
    """
    try:
        from rewardkit.data.annotations import write_annotations, write_temporal_proportions
        from rewardkit.data.targets import temporal_proportions
    except ImportError:
        logger.warning(
            "rewardkit.data.annotations is not available: stage spans are only in %s", SIM_META_FILE
        )
        return False
    annotations = sim_stage_annotations(root)
    for scheme in SCHEMES:
        write_annotations(root, scheme, annotations)
    meta = json.loads((root / SIM_META_FILE).read_text())
    names_order: list[str] = []
    for episode in meta["episodes"]:
        names_order += [n for n in episode["stage_names"] if n not in names_order]
    successes = [
        (a.names, a.start_frames, a.end_frames, e["length"])
        for e in meta["episodes"]
        if e["success"] and (a := annotations[e["episode_index"]])
    ]
    if successes:
        present = [n for n in names_order if any(n in names for names, *_ in successes)]
        for scheme in SCHEMES:
            write_temporal_proportions(root, scheme, temporal_proportions(successes, present))
    return True


def sim_stage_annotations(root: str | Path):
    """The expert's stages of each episode of a `rewardkit sim` dataset, as SARM sparse annotations.

    Returns {episode_index: SubtaskAnnotation} with inclusive start/end frames within the episode.
    """
    from rewardkit.data.annotations import SubtaskAnnotation

    meta = json.loads((Path(root) / SIM_META_FILE).read_text())
    return {
        e["episode_index"]: SubtaskAnnotation(
            tuple(s["name"] for s in e["stage_spans"]),
            tuple(s["start"] for s in e["stage_spans"]),
            tuple(s["end"] - 1 for s in e["stage_spans"]),
        )
        for e in meta["episodes"]
    }


def failed_episode_indices(root: str | Path) -> list[int]:
    """Episodes of a `rewardkit sim` dataset that never reached success (every failure kind)."""
    return sorted(i for i, truth in read_ground_truth(root).items() if not truth.success)


@dataclass
class SimGroundTruth:
    """Per-episode ground truth read back from a recorded dataset (see `read_ground_truth`)."""

    episode_index: int
    task: str
    kind: str
    success: bool
    stage_names: list[str]

    @property
    def family(self) -> str:
        """ "success", "state-visible" or "vision-only"."""
        return FAILURE_FAMILIES.get(self.kind, "success")


def read_ground_truth(root: str | Path) -> dict[int, SimGroundTruth]:
    """The per-episode ground truth of a dataset written by `rewardkit sim` (episode_index -> record)."""
    path = Path(root) / SIM_META_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {root} was not written by rewardkit sim")
    meta = json.loads(path.read_text())
    return {
        e["episode_index"]: SimGroundTruth(
            e["episode_index"], e["task"], e["kind"], e["success"], e["stage_names"]
        )
        for e in meta["episodes"]
    }


def episode_summary(episodes: Sequence[SimEpisode]) -> dict:
    """Counts of episodes per task and kind (for printing)."""
    counts: dict[str, dict[str, int]] = {}
    for e in episodes:
        counts.setdefault(e.task, {}).setdefault(e.kind, 0)
        counts[e.task][e.kind] += 1
    return counts


__all__ = [
    "FAILURE_FAMILIES",
    "FAILURE_KINDS",
    "GROUND_TRUTH_COLUMNS",
    "STATE_LAYOUTS",
    "STATE_VISIBLE_KINDS",
    "VISION_ONLY_KINDS",
    "applicable_kinds",
    "SimEpisode",
    "SimGroundTruth",
    "episode_summary",
    "failed_episode_indices",
    "read_ground_truth",
    "record_metaworld_dataset",
    "sim_stage_annotations",
    "task_description",
]
