"""`rewardkit annotate <import|export|show|vlm>`: subtask annotations of a LeRobot dataset.

- `import`: read a CSV/JSON exchange file into the dataset's `{sparse,dense}_subtask_*` episode
  columns and recompute `meta/temporal_proportions_{scheme}.json` (modifies the dataset: that is the ask).
- `export`: write the dataset's annotations to a CSV/JSON exchange file.
- `show`: one PNG per annotated episode: sample frames above the subtask timeline of each scheme.
- `vlm`: annotate episodes automatically with a vision-language model and write them to the dataset.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewardkit.cli_utils import announce, parse_config
from rewardkit.data.annotations import (
    SCHEMES,
    SubtaskAnnotation,
    dataset_fps,
    episode_lengths,
    export_annotations,
    import_annotations,
    read_annotations,
    read_temporal_proportions,
    temporal_proportions_path,
    write_annotations,
    write_temporal_proportions,
)
from rewardkit.data.dataset import DatasetConfig, open_from_config
from rewardkit.data.targets import normalized_progress, temporal_proportions
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write

HELP = "subtask annotations: import / export (CSV, JSON), show (timeline PNGs), vlm (automatic, by a VLM)"
logger = logging.getLogger(__name__)

USAGE = """usage: rewardkit annotate <import|export|show|vlm> [--flag=value ...]

  import   --dataset.root=DS --file=ann.csv|ann.json [--unit=frames|seconds] [--sparse_names=a,b]
           [--dense_names=a,b,c] [--proportions=true]
  export   --dataset.root=DS --output=ann.csv|ann.json [--unit=frames|seconds] [--scheme=both]
  show     --dataset.root=DS --output_dir=DIR [--scheme=both] [--camera=KEY] [--num_frames=6]
  vlm      --dataset.root=DS --names="reach,grasp,place" [--scheme=sparse] [--backend=openai]
           [--base_url=http://localhost:8000/v1] [--model=NAME] [--sample_fps=2] [--skip_existing=true]
           [--episodes=[0,1]]

`rewardkit annotate <subcommand> --help` lists every flag of a subcommand."""


def sampled_frames(dataset, episode_index: int, camera: str, indices: np.ndarray) -> np.ndarray:
    """The frames at `indices` (N,) of one episode: (N, H, W, 3) uint8, decoding in order and keeping
    only those (a long episode is never held in memory whole)."""
    wanted = {int(i): position for position, i in enumerate(indices)}
    kept: list[np.ndarray] = [np.empty(0)] * len(indices)
    last = int(max(indices))
    for index, frame in enumerate(dataset.iter_frames(episode_index, camera)):
        if index in wanted:
            kept[wanted[index]] = frame
        if index >= last:
            break
    return np.stack(kept)


def _split_names(names: str | None) -> list[str] | None:
    if names is None:
        return None
    parts = [name.strip() for name in names.split(",") if name.strip()]
    return parts or None


def _schemes(scheme: str) -> tuple[str, ...]:
    if scheme == "both":
        return SCHEMES
    if scheme not in SCHEMES:
        raise RewardkitError(f"--scheme must be sparse, dense or both, got '{scheme}'")
    return (scheme,)


def _names_order(
    root: Path,
    scheme: str,
    annotations: Mapping[int, SubtaskAnnotation],
    lengths: Mapping[int, int],
    given: Sequence[str] | None,
) -> list[str]:
    """The scheme's stage order: given names, else the existing proportions file's, else by mean start."""
    present = {name for annotation in annotations.values() for name in annotation.names}
    if given:
        return list(given)
    try:
        existing = list(read_temporal_proportions(root, scheme))
        if present <= set(existing):
            return [name for name in existing if name in present]
    except FileNotFoundError:
        pass
    positions: dict[str, list[float]] = {}
    for episode_index, annotation in annotations.items():
        for name, start in zip(annotation.names, annotation.start_frames, strict=True):
            positions.setdefault(name, []).append(start / lengths[episode_index])
    return sorted(positions, key=lambda name: (float(np.mean(positions[name])), name))


def _proportions_for(
    annotations: Mapping[int, SubtaskAnnotation], lengths: Mapping[int, int], order: Sequence[str]
) -> dict[str, float]:
    episodes = [(a.names, a.start_frames, a.end_frames, lengths[e]) for e, a in sorted(annotations.items())]
    return temporal_proportions(episodes, order)


# ---------------------------------------------------------------------------------------------- import
@dataclass
class ImportConfig:
    """Args:
    dataset: the LeRobot dataset to write into (`--dataset.root=PATH`).
    file: the CSV (`episode,scheme,name,start,end`) or JSON exchange file to import.
    unit: `frames` or `seconds` for start/end (CSV default frames; a JSON file states its own unit).
    sparse_names: comma-separated sparse subtask names in stage order; names outside it are an error.
    dense_names: the same for the dense scheme.
    proportions: recompute meta/temporal_proportions_{scheme}.json from all the scheme's annotations.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    file: str = ""
    unit: str | None = None
    sparse_names: str | None = None
    dense_names: str | None = None
    proportions: bool = True


def run_import(cfg: ImportConfig) -> int:
    if not cfg.file:
        raise RewardkitError("give the file to import with --file=PATH")
    root = open_from_config(cfg.dataset).root
    fps, lengths = dataset_fps(root), episode_lengths(root)
    given = {"sparse": _split_names(cfg.sparse_names), "dense": _split_names(cfg.dense_names)}
    known = {scheme: names for scheme, names in given.items() if names}
    imported = import_annotations(cfg.file, fps, unit=cfg.unit, lengths=lengths, known_names=known)
    if not imported:
        raise RewardkitError(f"{cfg.file}: no annotations in the file")
    # Compute everything before writing anything: a bad file leaves the dataset as it was.
    plans = []
    for scheme, new_annotations in imported.items():
        merged = {**read_annotations(root, scheme), **new_annotations}
        proportions = None
        if cfg.proportions:
            order = _names_order(root, scheme, merged, lengths, given[scheme])
            proportions = _proportions_for(merged, lengths, order)
        plans.append((scheme, new_annotations, proportions))
    for scheme, new_annotations, proportions in plans:
        write_annotations(root, scheme, new_annotations, fps=fps, known_names=given[scheme])
        logger.info("%s: %d episodes imported", scheme, len(new_annotations))
        announce(f"{scheme} annotations", root / "meta" / "episodes")
        if proportions is not None:
            announce(f"{scheme} temporal proportions", write_temporal_proportions(root, scheme, proportions))
    return 0


# ---------------------------------------------------------------------------------------------- export
@dataclass
class ExportConfig:
    """Args:
    dataset: the LeRobot dataset to read (`--dataset.root=PATH`); `--dataset.episodes` limits the export.
    output: the file to write, `.csv` or `.json`.
    unit: `frames` or `seconds` for start/end.
    scheme: `sparse`, `dense` or `both`.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output: str = ""
    unit: str = "frames"
    scheme: str = "both"


def run_export(cfg: ExportConfig) -> int:
    if not cfg.output:
        raise RewardkitError("give the file to write with --output=PATH.csv|PATH.json")
    dataset = open_from_config(cfg.dataset)
    annotations = {
        scheme: read_annotations(dataset.root, scheme, episodes=dataset.selected_episodes)
        for scheme in _schemes(cfg.scheme)
    }
    total = sum(len(a) for a in annotations.values())
    if total == 0:
        logger.warning("no %s annotations in %s", cfg.scheme, dataset.root)
    announce("annotations", export_annotations(cfg.output, annotations, dataset_fps(dataset.root), cfg.unit))
    return 0


# ---------------------------------------------------------------------------------------------- show
@dataclass
class ShowConfig:
    """Args:
    dataset: the LeRobot dataset (`--dataset.root=PATH`); `--dataset.episodes` picks episodes.
    output_dir: folder for the PNGs (`episode_000012.png`, one per annotated episode).
    scheme: `sparse`, `dense` or `both`.
    camera: camera key for the sample frames (default: the first camera).
    num_frames: sample frames shown above the timeline.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output_dir: str = "annotation_timelines"
    scheme: str = "both"
    camera: str | None = None
    num_frames: int = 6


def plot_episode_timeline(
    path: Path,
    episode_index: int,
    frames: np.ndarray,
    frame_indices: np.ndarray,
    length: int,
    fps: float,
    annotations: Mapping[str, SubtaskAnnotation],
    proportions: Mapping[str, Mapping[str, float]],
) -> Path:
    """Save a PNG: sample frames (N, H, W, 3) on top, then each scheme's subtasks as coloured bars over
    time with its normalised progress (when temporal proportions exist) drawn over them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(frames), 1)
    rows = len(annotations)
    figure = plt.figure(figsize=(max(2.0 * columns, 8.0), 2.2 + 1.4 * rows), constrained_layout=True)
    grid = figure.add_gridspec(1 + rows, columns, height_ratios=[2.0] + [1.2] * rows)
    for column, (frame, index) in enumerate(zip(frames, frame_indices, strict=True)):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(frame)
        axis.set_title(f"t={index / fps:.2f} s", fontsize=8)
        axis.axis("off")
    colours = plt.get_cmap("tab10")
    times = np.arange(length) / fps
    for row, (scheme, annotation) in enumerate(annotations.items()):
        axis = figure.add_subplot(grid[1 + row, :])
        for k, (name, start, end) in enumerate(
            zip(annotation.names, annotation.start_frames, annotation.end_frames, strict=True)
        ):
            left, width = start / fps, max(end - start, 0.5) / fps
            axis.broken_barh([(left, width)], (0, 1), color=colours(k % 10), alpha=0.6)
            axis.text(left + width / 2, 0.5, name, ha="center", va="center", fontsize=7, clip_on=True)
        order = list(proportions.get(scheme, {}))
        if order and all(name in order for name in annotation.names):
            stage, tau = annotation.stage_tau(length, order)
            progress = normalized_progress(stage, tau, [proportions[scheme][n] for n in order])
            axis.plot(times, progress, color="black", linewidth=1.2, label="normalised progress")
            axis.legend(loc="upper left", fontsize=7)
        axis.set_xlim(0, max(times[-1], 1 / fps))
        axis.set_ylim(0, 1.05)
        axis.set_ylabel(scheme)
        axis.set_xlabel("time (s)")
    figure.suptitle(f"episode {episode_index}: {length} frames, {length / fps:.1f} s")
    try:
        return atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=80, format="png"))
    finally:
        plt.close(figure)


def run_show(cfg: ShowConfig) -> int:
    dataset = open_from_config(cfg.dataset)
    if not dataset.camera_keys:
        raise RewardkitError(f"{dataset.root}: no camera to take sample frames from")
    camera = cfg.camera or dataset.camera_keys[0]
    dataset.check_camera(camera)
    schemes = _schemes(cfg.scheme)
    by_scheme = {s: read_annotations(dataset.root, s, episodes=dataset.episode_indices) for s in schemes}
    proportions = {}
    for scheme in schemes:
        try:
            proportions[scheme] = read_temporal_proportions(dataset.root, scheme)
        except FileNotFoundError:
            pass
    written = 0
    for episode in dataset.episodes():
        annotations = {
            s: by_scheme[s][episode.episode_index] for s in schemes if episode.episode_index in by_scheme[s]
        }
        if not annotations:
            continue
        frame_indices = np.unique(
            np.linspace(0, episode.length - 1, max(cfg.num_frames, 1)).round().astype(int)
        )
        frames = sampled_frames(dataset, episode.episode_index, camera, frame_indices)
        path = Path(cfg.output_dir) / f"episode_{episode.episode_index:06d}.png"
        plot_episode_timeline(
            path,
            episode.episode_index,
            frames,
            frame_indices,
            episode.length,
            dataset.fps,
            annotations,
            proportions,
        )
        announce(f"episode {episode.episode_index}", path)
        written += 1
    if written == 0:
        logger.warning("no annotated episodes to show in %s", dataset.root)
    return 0


# ---------------------------------------------------------------------------------------------- vlm
@dataclass
class VlmConfig:
    """Args:
    dataset: the LeRobot dataset to annotate (`--dataset.root=PATH`); `--dataset.episodes` picks episodes.
    names: comma-separated subtask names, in the order they happen.
    episodes: episodes to annotate, e.g. `--episodes=[0,3]` (same as `--dataset.episodes`; default all).
    scheme: `sparse` or `dense`: which columns to write.
    backend: `openai` (an OpenAI-compatible HTTP server, e.g. vLLM) or `transformers` (a local model).
    base_url: the openai backend's API root (`/chat/completions` is appended).
    model: the served model name (openai) or the model id / folder (transformers).
    api_key_env: environment variable holding the API key (openai; none sent when unset).
    camera: camera key whose frames are shown (default: the first camera).
    sample_fps: frames sent per second of episode (may be above 1, capped at the dataset's fps).
    max_frames: most frames sent for one episode (evenly spread when there are more).
    max_retries: extra attempts when an answer is malformed or the backend fails.
    skip_existing: leave episodes that already have annotations in this scheme.
    proportions: recompute meta/temporal_proportions_{scheme}.json at the end.
    timeout_s: seconds to wait for one answer (openai).
    max_new_tokens: answer length limit.
    device: torch device of the transformers backend ("auto": cuda when available).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    names: str = ""
    episodes: list[int] | None = None
    scheme: str = "sparse"
    backend: str = "openai"
    base_url: str = "http://localhost:8000/v1"
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    camera: str | None = None
    sample_fps: float = 2.0
    max_frames: int = 64
    max_retries: int = 2
    skip_existing: bool = False
    proportions: bool = True
    timeout_s: float = 300.0
    max_new_tokens: int = 2048
    device: str = "auto"


def make_backend(cfg: VlmConfig):
    from rewardkit.annotate.backends import OpenAICompatibleBackend, TransformersBackend

    if cfg.backend == "openai":
        if not cfg.model:
            raise RewardkitError("give the served model name with --model=NAME")
        return OpenAICompatibleBackend(
            cfg.base_url,
            cfg.model,
            api_key=os.environ.get(cfg.api_key_env) or None,
            timeout_s=cfg.timeout_s,
            max_tokens=cfg.max_new_tokens,
        )
    if cfg.backend == "transformers":
        if not cfg.model:
            raise RewardkitError("give the model id or folder with --model=NAME")
        return TransformersBackend(cfg.model, device=cfg.device, max_new_tokens=cfg.max_new_tokens)
    raise RewardkitError(f"--backend must be openai or transformers, got '{cfg.backend}'")


def run_vlm(cfg: VlmConfig, backend=None) -> int:
    from rewardkit.annotate.annotator import AnnotationError, annotate_episode, sample_frame_indices

    names = _split_names(cfg.names)
    if not names:
        raise RewardkitError('give the subtask names in order with --names="first,second,..."')
    if len(set(names)) != len(names):
        raise RewardkitError(f"--names has a name twice: {names}")
    if cfg.scheme not in SCHEMES:
        raise RewardkitError(f"--scheme must be sparse or dense, got '{cfg.scheme}'")
    if cfg.episodes is not None:
        cfg.dataset.episodes = list(cfg.episodes)
    dataset = open_from_config(cfg.dataset)
    if not dataset.camera_keys:
        raise RewardkitError(f"{dataset.root}: no camera to annotate from")
    camera = cfg.camera or dataset.camera_keys[0]
    dataset.check_camera(camera)
    backend = backend if backend is not None else make_backend(cfg)
    existing = read_annotations(dataset.root, cfg.scheme)
    failed: list[int] = []
    done = 0
    from tqdm import tqdm

    episodes = [e for e in dataset.episodes() if not (cfg.skip_existing and e.episode_index in existing)]
    skipped = len(dataset.episode_indices) - len(episodes)
    if skipped:
        logger.info("skipping %d episode(s) already annotated (%s)", skipped, cfg.scheme)
    for episode in tqdm(episodes, desc=f"vlm {cfg.scheme}", unit="episode"):
        indices = sample_frame_indices(episode.length, dataset.fps, cfg.sample_fps, cfg.max_frames)
        frames = sampled_frames(dataset, episode.episode_index, camera, indices)
        try:
            annotation = annotate_episode(
                backend,
                frames,
                indices,
                episode.length,
                dataset.fps,
                names,
                episode.episode_index,
                task=episode.task,
                max_retries=cfg.max_retries,
            )
        except AnnotationError as e:
            logger.error("%s", e)
            failed.append(episode.episode_index)
            continue
        # Written episode by episode, so an interrupted run keeps its work (resume with --skip_existing).
        write_annotations(
            dataset.root, cfg.scheme, {episode.episode_index: annotation}, fps=dataset.fps, known_names=names
        )
        done += 1
    announce(f"{cfg.scheme} annotations ({done} episodes)", dataset.root / "meta" / "episodes")
    if cfg.proportions:
        annotations = read_annotations(dataset.root, cfg.scheme)
        present = {n for a in annotations.values() for n in a.names}
        if annotations and set(names) <= present:
            proportions = _proportions_for(annotations, episode_lengths(dataset.root), names)
            announce(
                f"{cfg.scheme} temporal proportions",
                write_temporal_proportions(dataset.root, cfg.scheme, proportions),
            )
        else:
            logger.warning(
                "not writing %s: some subtasks appear in no episode",
                temporal_proportions_path(dataset.root, cfg.scheme),
            )
    if failed:
        logger.error("%d episode(s) could not be annotated: %s", len(failed), failed)
        return 1
    return 0


SUBCOMMANDS = {
    "import": (ImportConfig, run_import),
    "export": (ExportConfig, run_export),
    "show": (ShowConfig, run_show),
    "vlm": (VlmConfig, run_vlm),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        raise RewardkitError(f"unknown annotate subcommand '{name}'; use one of {', '.join(SUBCOMMANDS)}")
    config_class, run = SUBCOMMANDS[name]
    return run(parse_config(config_class, rest, f"annotate {name}"))
