"""SARM's training recipe: train SARM on a LeRobot dataset from its feature cache (built first when missing).

Order of work: open the dataset, check that the annotation mode's annotations exist (before anything
slow), build or open the cache, compute every episode's targets once, hold out validation episodes, train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from lerobot.utils.constants import OBS_STATE

from rewardkit.data.dataset import DatasetError, RewardDataset, open_from_config
from rewardkit.errors import RewardkitError
from rewardkit.models.sarm.configuration_sarm import SARMConfig
from rewardkit.models.sarm.data import EpisodeSlice, SARMTrainingData, perturbation_texts
from rewardkit.models.sarm.modeling_sarm import SARMRewardModel, saved_config
from rewardkit.training.flags import (
    RewardTrainingConfig,
    check_numeric_inputs,
    find_failed_episodes,
    validation_split,
)
from rewardkit.training.trainer import PRETRAINED, Trainer, TrainResult, config_for_resume, resume_folder

logger = logging.getLogger(__name__)


@dataclass
class SARMTrainConfig(RewardTrainingConfig):
    """`rewardkit train --model.type=sarm`: SARM from the feature cache.

    Args:
        model: SARM's configuration (`--model.annotation_mode=dual`, `--model.hidden_dim=...`, ...).
        output_dir: Where checkpoints go (`<output_dir>/checkpoints/<step>/pretrained_model`).
        num_perturbation_texts: Unrelated instructions encoded once for language perturbation.
        failure_target: What a failed episode's targets do from its failure frame on (`--failure_frames`,
            `--failure_frame_column` or a keyframes drop): "hold" the level reached there (a stalled
            attempt; a keyframe drop holds the level it fell to) or "drop" to 0 (an object dropped or
            knocked away). Before the frame, and without one, they follow the episode's targets capped
            at 0.9. "hold" by default: on benchmarks/bench_failure_targets.py it kept successes' final
            progress higher and held-out failures' AUROC higher than "drop" (which pulled both down).
        failure_clock: Single-stage targets of a failed episode (no annotation): "successes" (default:
            t / (L - 1) with L the median length of the training successes of its task, so a failed attempt
            is timed on the successes' clock and the same state gets the same target in a success and in
            a failure before it fails) or "episode" (its own time ramp, t / (T - 1)). Measured on
            benchmarks/bench_quality.py, protocol (b), failure frames held: kinds seen in training AUROC
            0.857 -> 0.952 (lr 5e-5) and 0.929 -> 1.000 (lr 2e-4), successes' MAE 0.134 -> 0.109 and
            0.107 -> 0.085; kinds not seen 0.967 -> 0.867 and 0.933 -> 0.950.
        failure_targets: Per failed episode, "hold" or "drop", in the order of `--failed_episodes` (one
            each): what happened there, overriding `failure_target` for it. A dropped object or a grasp
            that closed on nothing puts the attempt back to reaching ("drop"); a stall keeps what it reached
            ("hold").
        completed_episodes: Successful episodes whose completion frame is known (`completion_frames`, in
            the same order): the first frame at which the task is done. Single-stage targets then reach 1
            there and hold it (what a robot does after the task, retracting or waiting, is not progress),
            instead of a ramp over the whole episode; and a failed attempt is timed on the clock of the
            successes' completion. Measured on benchmarks/bench_quality.py: see the README.
        completion_frames: One frame per `completed_episodes` (within the episode, 0 included).
        completion_frame_column: A per-episode integer column of meta/episodes: the frame where the episode
            completed its task (null or negative: unknown).
        progress_targets: A progress parquet (`rewardkit label`'s output, e.g. a VLM's zero-shot progress:
            TOPReward, Robometer, GVL) whose `progress` column becomes the single-stage targets of the
            episodes it covers (NaN frames of a strided labelling interpolated), in place of the time ramp
            and of any failure or completion frame; episodes it does not cover keep their usual targets.
            Distils a slow labeller into a fast online SARM.
    """

    model: SARMConfig = field(default_factory=SARMConfig)
    output_dir: str = "outputs/train/sarm"
    num_perturbation_texts: int = 64
    failure_target: str = "hold"
    failure_clock: str = "successes"
    failure_targets: list[str] | None = None
    completed_episodes: list[int] | None = None
    completion_frames: list[int] | None = None
    completion_frame_column: str | None = None
    progress_targets: str | None = None


def _scheme_annotations(dataset: RewardDataset, scheme: str) -> tuple[dict, list[str], list[float] | None]:
    """(episode -> (names, starts, ends)), global names, proportions of one scheme; empty when none."""
    from rewardkit.data import annotations as io

    result = {}
    for ep, value in io.read_annotations(dataset.root, scheme).items():
        if len(value):
            result[int(ep)] = (
                [str(n) for n in value.names],
                np.asarray(value.start_frames),
                np.asarray(value.end_frames),
            )
    try:
        proportions = io.read_temporal_proportions(dataset.root, scheme)
    except FileNotFoundError:
        proportions = None
    names = (
        list(proportions) if proportions else list(dict.fromkeys(n for v in result.values() for n in v[0]))
    )
    return result, names, [float(proportions[n]) for n in names] if proportions else None


def check_annotations(
    dataset: RewardDataset, model: SARMConfig
) -> dict[str, tuple[dict, list[str], list[float]]]:
    """Annotations of the schemes the mode needs: scheme -> (episode -> (names, starts, ends), stage names,
    temporal proportions); an error naming what is missing before training starts. `model` is only read."""
    needed = {"single_stage": [], "dense_only": ["dense"], "dual": ["sparse", "dense"]}[model.annotation_mode]
    found = {}
    for scheme in needed:
        per_episode, names, proportions = _scheme_annotations(dataset, scheme)
        if not per_episode or len(names) < 2:
            raise DatasetError(
                f"--model.annotation_mode={model.annotation_mode} needs {scheme} subtask annotations, but "
                f"dataset {dataset.root} has none (meta/episodes columns {scheme}_subtask_names/"
                f"{scheme}_subtask_start_frames/{scheme}_subtask_end_frames); annotate it with "
                f"`rewardkit annotate` or train with --model.annotation_mode=single_stage"
            )
        if proportions is None:
            from rewardkit.data.targets import temporal_proportions

            lengths = {e.episode_index: e.length for e in dataset.episodes()}
            table = [(n, s, e, lengths[ep]) for ep, (n, s, e) in per_episode.items() if ep in lengths]
            proportions = list(temporal_proportions(table, names).values())
        found[scheme] = (per_episode, names, proportions)
    return found


def episode_targets(
    length: int,
    scheme_annotation: tuple[list[str], np.ndarray, np.ndarray] | None,
    names: list[str],
    proportions: list[float],
    failed: bool,
    fail_frame: int | None = None,
    failure_target: str = "drop",
    reference_length: int | None = None,
    completion_frame: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(stage (T,) int64, tau (T,) float32) of one episode for one head.

    No annotation (single stage): stage 0, tau linear 0..1; with a `completion_frame` (a success), linear
    to 1 at that frame, then 1. A failed episode keeps its progress at the level
    reached, capped below 1, and from `fail_frame` (when known) drops to 0 or holds the level reached there
    (`failure_target`, see `failure_progress`), converted back to stage + tau with the proportions.
    `reference_length` (single stage, failed episodes): the ramp runs at t / (reference_length - 1), the
    successes' clock, instead of over the episode's own length.
    """
    from rewardkit.data import targets

    if scheme_annotation is None or len(names) < 2:
        stage, tau = targets.single_stage_targets(length)
        stage = np.zeros(length, dtype=np.int64)
        if failed and reference_length is not None and reference_length > 1:
            tau = np.minimum(np.arange(length) / (reference_length - 1), 1.0).astype(np.float32)
        elif not failed and completion_frame is not None:
            # done from frame 0 on: 1 throughout
            ramp = np.arange(length) / completion_frame if completion_frame else np.ones(length)
            tau = np.minimum(ramp, 1.0).astype(np.float32)
    else:
        episode_names, starts, ends = scheme_annotation
        unknown = [n for n in episode_names if n not in names]
        if unknown:
            raise DatasetError(f"subtask(s) {unknown} are not among the scheme's names {names}")
        ids = [names.index(n) for n in episode_names]
        stage, tau = targets.stage_tau_targets(length, starts, ends, stage_ids=ids)
    if failed:
        progress = targets.normalized_progress(stage, tau, proportions) if len(names) > 1 else tau
        progress = targets.failure_progress(length, progress, fail_frame=fail_frame, after=failure_target)
        if len(names) > 1:
            stage, tau = targets.stage_tau_from_progress(progress, proportions)
        else:
            tau = progress
    return stage.astype(np.int64), tau.astype(np.float32)


def per_episode_failure_targets(cfg: SARMTrainConfig) -> dict[int, str]:
    """{failed episode: "hold" | "drop"} from `--failure_targets` (aligned with `--failed_episodes`)."""
    from rewardkit.data.targets import FAILURE_TARGETS

    if cfg.failure_targets is None:
        return {}
    named = [int(e) for e in cfg.failed_episodes or ()]
    if len(cfg.failure_targets) != len(named):
        raise DatasetError(
            f"--failure_targets has {len(cfg.failure_targets)} values for {len(named)} --failed_episodes; "
            "give one per failed episode, in the same order"
        )
    bad = {e: t for e, t in zip(named, cfg.failure_targets, strict=True) if t not in FAILURE_TARGETS}
    if bad:
        raise DatasetError(
            f"--failure_targets must each be one of {FAILURE_TARGETS}; got {bad} (episode: value)"
        )
    return dict(zip(named, cfg.failure_targets, strict=True))


def run_model_config(cfg: SARMTrainConfig) -> SARMConfig:
    """The model config the run trains from: `cfg.model`; with `--resume`, the checkpoint's own config
    (its config.json, as `SARMRewardModel` loads it) with the `--model.*` flags the user set on top
    (`trainer.config_for_resume`), so today's defaults never change a resumed model (a run saved with
    frame_tokens="separate" resumes without the flag).

    Raises:
        RewardkitError: `--resume` and no checkpoint to resume from, or one of another model type.
    """
    if not cfg.resume:
        return cfg.model
    folder = resume_folder(cfg.output_dir) / PRETRAINED
    if not (folder / "config.json").is_file():
        raise RewardkitError(
            f"--resume: no checkpoint to resume from at {resume_folder(cfg.output_dir)} (no "
            f"{folder / 'config.json'}); drop --resume=true to start a new run in {cfg.output_dir}"
        )
    return config_for_resume(cfg.model, saved_config(folder))


def completion_frames(
    cfg: SARMTrainConfig, root, lengths: dict[int, int], failed: dict[int, int | None], annotated: bool
) -> dict[int, int]:
    """{successful episode: the frame its task was complete} among the chosen episodes (`lengths`), from
    `--completed_episodes` / `--completion_frames` and `--completion_frame_column` (the flags win).

    Raises:
        DatasetError: lists of different lengths, a frame outside its episode, an episode also marked
            failed, or frames given with subtask annotations (their last subtask's end says it).
    """
    from rewardkit.data.annotations import episode_metadata_column

    named = [int(e) for e in cfg.completed_episodes or ()]
    if len(named) != len(cfg.completion_frames or ()):
        raise DatasetError(
            f"--completion_frames has {len(cfg.completion_frames or ())} frames for {len(named)} "
            "--completed_episodes; give one frame per completed episode, in the same order"
        )
    frames: dict[int, int] = {}
    if cfg.completion_frame_column is not None:
        for episode, value in episode_metadata_column(root, cfg.completion_frame_column).items():
            if value is not None and int(value) >= 0:
                frames[int(episode)] = int(value)
    frames.update(zip(named, (int(f) for f in cfg.completion_frames or ()), strict=True))
    outside = sorted(e for e in frames if e not in lengths)
    if outside and named:
        logger.warning(
            "episodes %s have a completion frame but are not in --dataset.episodes; ignored", outside
        )
    frames = {e: f for e, f in frames.items() if e in lengths}
    if frames and annotated:
        raise DatasetError(
            "completion frames shape single-stage targets; with subtask annotations the last subtask's end "
            "frame says when the task is done: drop --completed_episodes / --completion_frame_column, or "
            "train with --model.annotation_mode=single_stage"
        )
    both = sorted(set(frames) & set(failed))
    if both:
        raise DatasetError(f"episodes {both} of {root} are marked both failed and completed; mark each once")
    bad = {e: f for e, f in frames.items() if not 0 <= f < lengths[e]}
    if bad:
        raise DatasetError(
            f"completion frames {bad} (episode: frame) are outside their episode in {root} (lengths "
            f"{[lengths[e] for e in bad]}); a completion frame counts frames within its episode, from 0"
        )
    return frames


def given_progress_targets(
    cfg: SARMTrainConfig, dataset: RewardDataset, annotated: bool
) -> dict[int, np.ndarray]:
    """{episode: (T,) float32 targets} from `--progress_targets` (empty without it), for the chosen episodes
    it covers. The file is checked against the dataset (`check_progress`: recorded fingerprint, frames);
    frames without a value (a strided labelling) are interpolated from their episode's labelled frames.

    Raises:
        RewardkitError: the file does not fit the dataset, values outside [0, 1], or subtask annotations
            (their stages are the targets then).
    """
    from rewardkit.labelling.parquet import check_progress, read_progress_parquet

    if cfg.progress_targets is None:
        return {}
    path = Path(cfg.progress_targets)
    if annotated:
        raise DatasetError(
            f"--progress_targets ({path}) gives single-stage targets; with --model.annotation_mode="
            f"{cfg.model.annotation_mode} the subtask annotations are the targets: train with "
            "--model.annotation_mode=single_stage"
        )
    read, metadata = read_progress_parquet(path, with_index=True)
    check_progress(path, read, metadata, dataset=dataset)
    chosen = set(dataset.episode_indices)
    out = {}
    for episode, outputs in read.items():
        if episode not in chosen:
            continue
        values = np.asarray(outputs["progress"], dtype=np.float64)
        known = ~np.isnan(values)
        if not known.any():
            logger.warning(
                "--progress_targets %s: episode %d has no value; it keeps its usual targets", path, episode
            )
            continue
        if values[known].min() < 0 or values[known].max() > 1:
            raise DatasetError(
                f"--progress_targets {path}: episode {episode} has progress outside [0, 1] "
                f"({values[known].min():.3f}..{values[known].max():.3f}); targets are progress in [0, 1]"
            )
        frames = np.asarray(outputs["frame_index"], dtype=np.float64)
        length = dataset.episode(episode).length
        out[episode] = np.interp(np.arange(length), frames[known], values[known]).astype(np.float32)
    logger.info("--progress_targets %s: targets of %d episode(s) from the file", path, len(out))
    return out


def prepare(cfg: SARMTrainConfig) -> tuple[SARMRewardModel, SARMTrainingData, SARMTrainingData | None]:
    """Model and its training / validation data.

    `cfg.model` is not changed: what the dataset decides (cameras, stage names and proportions, frame gap,
    feature size, state statistics) goes into a new config, the model's, which its checkpoints save. A
    resumed run starts from its checkpoint's config instead (`run_model_config`).
    """
    from rewardkit.cache import open_or_build_cache

    given = run_model_config(cfg)  # before the dataset: a resume with nothing to resume is refused at once
    dataset = open_from_config(cfg.dataset)
    resolved: dict = {"cameras": list(given.cameras or dataset.camera_keys)}
    for camera in resolved["cameras"]:
        dataset.check_camera(camera)
    check_numeric_inputs(dataset, given.use_state)
    annotations = check_annotations(dataset, given)
    for scheme, (_, names, proportions) in annotations.items():
        resolved[f"{scheme}_subtask_names"] = names
        resolved[f"{scheme}_temporal_proportions"] = proportions
        resolved[f"num_{scheme}_stages"] = len(names)
    # a gap in seconds is taken at this dataset's fps; an explicit --model.frame_gap wins
    resolved["frame_gap"] = given.frame_gap_for(dataset.fps)
    logger.info(
        "SARM window: %d frames %d apart (%.2f s at %s fps)",
        given.n_obs_steps + 1,
        resolved["frame_gap"],
        resolved["frame_gap"] / dataset.fps,
        dataset.fps,
    )

    episodes = dataset.episodes()
    tasks = sorted({e.task for e in episodes})
    bank = perturbation_texts(cfg.num_perturbation_texts, seed=cfg.seed, exclude=tasks)
    if given.language_perturbation_probability <= 0:
        bank = []
    # what the user's choices mean (failed episodes, held-out episodes) is said before the slow part
    failed = find_failed_episodes(dataset, cfg)
    from rewardkit.data.targets import FAILURE_TARGETS

    if cfg.failure_clock not in ("episode", "successes"):
        raise DatasetError(f"--failure_clock must be 'episode' or 'successes', got {cfg.failure_clock!r}")
    if cfg.failure_target not in FAILURE_TARGETS:
        raise DatasetError(f"--failure_target must be one of {FAILURE_TARGETS}, got {cfg.failure_target!r}")
    target_of = per_episode_failure_targets(cfg)
    lengths = {e.episode_index: e.length for e in episodes}
    late = {e: f for e, f in failed.items() if f is not None and f >= lengths[e]}
    if late:
        raise DatasetError(
            f"failure frames {late} (episode: frame) are past the end of their episode in {dataset.root} "
            f"(lengths {[lengths[e] for e in late]}); a failure frame counts frames within its episode"
        )
    done = completion_frames(cfg, dataset.root, lengths, failed, given.annotation_mode != "single_stage")
    from_file = given_progress_targets(cfg, dataset, given.annotation_mode != "single_stage")
    unknown = [e for e, f in failed.items() if f is None]
    if unknown and given.train_on_failures:
        # measured (issue 15): a failed episode with no frame gets a time ramp capped at 0.9, barely below
        # a success's 1, and training on it did not help on held-out failures
        logger.warning(
            "failed episodes %s have no failure frame: their targets only stop at 0.9; give the frames "
            "(--failure_frames, --failure_frame_column or a keyframes drop) for targets that teach failure",
            unknown,
        )
    usable = [e for e in episodes if given.train_on_failures or e.episode_index not in failed]
    train_ids, val_ids = validation_split([e.episode_index for e in usable], cfg, dataset.root)
    cameras = resolved["cameras"]
    cache = open_or_build_cache(dataset, given.encoder, cameras, cfg.cache_dir, texts=bank)
    resolved["image_dim"] = resolved["text_dim"] = cache.feature_dim

    total = cache.total_frames
    state = None
    if given.use_state:
        state = np.zeros((total, len(dataset.state_names)), dtype=np.float32)
        for e in usable:
            state[e.from_index : e.to_index] = dataset.read_columns(e.episode_index, [OBS_STATE])[OBS_STATE]
        rows = np.concatenate(
            [np.arange(e.from_index, e.to_index) for e in usable if e.episode_index in train_ids]
        )
        resolved["state_mean"] = state[rows].mean(0).tolist()
        resolved["state_std"] = np.maximum(state[rows].std(0), 1e-3).tolist()
    # the model pins what is left (architecture, temporal bands); data and model share its config
    model = SARMRewardModel(replace(given, **resolved))
    model_config = model.config

    clock: dict[str, int] = {}
    if cfg.failure_clock == "successes":
        for task in tasks:
            # a success's clock runs to its completion frame when known, else to its end
            lengths_ok = [
                done[e.episode_index] + 1 if e.episode_index in done else e.length
                for e in usable
                if e.task == task and e.episode_index not in failed
            ]
            if lengths_ok:
                clock[task] = int(np.median(lengths_ok))
    targets = {}
    for scheme in ["sparse", "dense"] if model_config.uses_dual_heads else ["sparse"]:
        per_episode, names, _ = annotations.get(scheme, ({}, ["task"], [1.0]))
        stage = np.zeros(total, dtype=np.int64)
        tau = np.zeros(total, dtype=np.float32)
        for e in usable:
            if e.episode_index in from_file:  # single stage (checked): stage 0, the file's progress
                tau[e.from_index : e.to_index] = from_file[e.episode_index]
                continue
            s, t = episode_targets(
                e.length,
                per_episode.get(e.episode_index),
                names,
                model_config.proportions(scheme),
                e.episode_index in failed,
                failed.get(e.episode_index),
                target_of.get(e.episode_index, cfg.failure_target),
                clock.get(e.task),
                done.get(e.episode_index),
            )
            stage[e.from_index : e.to_index], tau[e.from_index : e.to_index] = s, t
        targets[scheme] = (stage, tau)

    task_ids = {t: i for i, t in enumerate(tasks)}
    text_table = np.stack([cache.text_features(t) for t in tasks])
    negatives = [cache.text_features(t) for t in bank]
    perturbation = np.stack(negatives) if negatives else None
    image_features = {c: cache.image_features(c) for c in cameras}

    def data(ids: list[int], augment: bool) -> SARMTrainingData:
        slices = [
            EpisodeSlice(e.episode_index, e.from_index, e.length, task_ids[e.task])
            for e in usable
            if e.episode_index in set(ids)
        ]
        return SARMTrainingData(
            model_config, image_features, slices, text_table, targets, state, perturbation, augment=augment
        )

    return model, data(train_ids, True), data(val_ids, False) if val_ids else None


def train_sarm(cfg: SARMTrainConfig) -> TrainResult:
    """Train SARM end to end; returns where the last checkpoint is."""
    import torch

    torch.manual_seed(cfg.seed)
    model, train_data, val_data = prepare(cfg)
    logger.info(
        "SARM: %d training samples, %d validation samples, %.1fM parameters",
        len(train_data),
        len(val_data) if val_data else 0,
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    trainer = Trainer(
        model, train_data, cfg, cfg.output_dir, val_data, run_config={"model": model.config.__dict__}
    )
    return trainer.train()
