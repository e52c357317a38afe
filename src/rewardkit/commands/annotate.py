"""`rewardkit annotate <import|export|show|vlm>`: subtask annotations of a LeRobot dataset.

- `import`: read a CSV/JSON exchange file into the dataset's `{sparse,dense}_subtask_*` episode
  columns and recompute `meta/temporal_proportions_{scheme}.json` (modifies the dataset: that is the ask).
- `export`: write the dataset's annotations to a CSV/JSON exchange file.
- `show`: one PNG per annotated episode: sample frames above the subtask timeline of each scheme.
- `vlm`: annotate episodes automatically with a vision-language model and write them to the dataset.

Each subcommand parses its flags, makes one library call and prints the paths written; the work lives in
`rewardkit.data.annotations`, `rewardkit.annotate` and `rewardkit.viz.timelines`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from rewardkit.cli_utils import announce, parse_config
from rewardkit.data.annotations import (
    SCHEMES,
    SchemeUpdate,
    dataset_fps,
    export_annotations,
    import_into_dataset,
    read_annotations,
)
from rewardkit.data.dataset import DatasetConfig, open_from_config
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import check_overwrite

HELP = "subtask annotations: import / export (CSV, JSON), show (timeline PNGs), vlm (automatic, by a VLM)"
logger = logging.getLogger(__name__)

USAGE = """usage: rewardkit annotate <import|export|show|vlm> [--flag=value ...]

  import   --dataset.root=DS --file=ann.csv|ann.json [--unit=frames|seconds] [--sparse_names=a,b]
           [--dense_names=a,b,c] [--proportions=true] [--overwrite=false]
  export   --dataset.root=DS --output=ann.csv|ann.json [--unit=frames|seconds] [--head=both]
           [--overwrite=false]
  show     --dataset.root=DS --output_dir=DIR [--head=both] [--camera=KEY] [--num_frames=6]
           [--overwrite=false]
  vlm      --dataset.root=DS --names="reach,grasp,place" [--head=sparse] [--backend=openai]
           [--base_url=http://localhost:8000/v1] [--model=NAME] [--sample_fps=2] [--skip_existing=true]
           [--episodes=[0,1]] [--max_consecutive_failures=3] [--allow_insecure_http=false]

`rewardkit annotate <subcommand> --help` lists every flag of a subcommand."""


def _split_names(names: str | None) -> list[str] | None:
    if names is None:
        return None
    parts = [name.strip() for name in names.split(",") if name.strip()]
    return parts or None


def _schemes(scheme: str) -> tuple[str, ...]:
    if scheme == "both":
        return SCHEMES
    if scheme not in SCHEMES:
        raise RewardkitError(f"--head must be sparse, dense or both, got '{scheme}'")
    return (scheme,)


def _announce_update(root, update: SchemeUpdate) -> None:
    if update.removed:
        print(
            f"{update.scheme}: removed the annotations of episode(s) {list(update.removed)}: their stage "
            "names are not among the new ones (--overwrite=true)"
        )
    announce(f"{update.scheme} annotations ({len(update.episodes)} episodes)", root / "meta" / "episodes")
    if update.proportions_path is not None:
        announce(f"{update.scheme} temporal proportions", update.proportions_path)


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
    overwrite: when episodes not in the file are annotated with other stage names, remove their
        annotations (default: refuse, naming them, so two stage sets are never mixed).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    file: str = ""
    unit: str | None = None
    sparse_names: str | None = None
    dense_names: str | None = None
    proportions: bool = True
    overwrite: bool = False


def run_import(cfg: ImportConfig) -> int:
    if not cfg.file:
        raise RewardkitError("give the file to import with --file=PATH")
    root = open_from_config(cfg.dataset).root
    names = {"sparse": _split_names(cfg.sparse_names), "dense": _split_names(cfg.dense_names)}
    for update in import_into_dataset(root, cfg.file, cfg.unit, names, cfg.proportions, cfg.overwrite):
        _announce_update(root, update)
    return 0


# ---------------------------------------------------------------------------------------------- export
@dataclass
class ExportConfig:
    """Args:
    dataset: the LeRobot dataset to read (`--dataset.root=PATH`); `--dataset.episodes` limits the export.
    output: the file to write, `.csv` or `.json`.
    unit: `frames` or `seconds` for start/end.
    head: `sparse`, `dense` or `both`.
    overwrite: replace an existing output file.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output: str = ""
    unit: str = "frames"
    head: str = "both"
    overwrite: bool = False


def run_export(cfg: ExportConfig) -> int:
    if not cfg.output:
        raise RewardkitError("give the file to write with --output=PATH.csv|PATH.json")
    check_overwrite(cfg.output, cfg.overwrite)
    dataset = open_from_config(cfg.dataset)
    annotations = {
        scheme: read_annotations(dataset.root, scheme, episodes=dataset.selected_episodes)
        for scheme in _schemes(cfg.head)
    }
    total = sum(len(a) for a in annotations.values())
    if total == 0:
        logger.warning("no %s annotations in %s", cfg.head, dataset.root)
    announce("annotations", export_annotations(cfg.output, annotations, dataset_fps(dataset.root), cfg.unit))
    return 0


# ---------------------------------------------------------------------------------------------- show
@dataclass
class ShowConfig:
    """Args:
    dataset: the LeRobot dataset (`--dataset.root=PATH`); `--dataset.episodes` picks episodes.
    output_dir: folder for the PNGs (`episode_000012.png`, one per annotated episode).
    head: `sparse`, `dense` or `both`.
    camera: camera key for the sample frames (default: the first camera).
    num_frames: sample frames shown above the timeline.
    overwrite: replace PNGs already in output_dir.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output_dir: str = "annotation_timelines"
    head: str = "both"
    camera: str | None = None
    num_frames: int = 6
    overwrite: bool = False


def run_show(cfg: ShowConfig) -> int:
    from rewardkit.viz.timelines import write_timelines

    dataset = open_from_config(cfg.dataset)
    schemes = _schemes(cfg.head)
    written = write_timelines(dataset, cfg.output_dir, schemes, cfg.camera, cfg.num_frames, cfg.overwrite)
    for episode_index, path in written.items():
        announce(f"episode {episode_index}", path)
    if not written:
        logger.warning("no annotated episodes to show in %s", dataset.root)
    return 0


# ---------------------------------------------------------------------------------------------- vlm
@dataclass
class VlmConfig:
    """Args:
    dataset: the LeRobot dataset to annotate (`--dataset.root=PATH`); `--dataset.episodes` picks episodes.
    names: comma-separated subtask names, in the order they happen.
    episodes: episodes to annotate, e.g. `--episodes=[0,3]` (same as `--dataset.episodes`; default all).
    head: `sparse` or `dense`: which columns to write.
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
    max_consecutive_failures: stop the run after this many failed requests in a row (server down or
        hung); the episodes annotated before the stop are written.
    allow_insecure_http: send the API key over plain http:// to a host other than this machine.
    overwrite: remove the annotations of episodes not annotated now that use other stage names
        (default: refuse before the first request, naming them).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    names: str = ""
    episodes: list[int] | None = None
    head: str = "sparse"
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
    max_consecutive_failures: int = 3
    allow_insecure_http: bool = False
    overwrite: bool = False


def run_vlm(cfg: VlmConfig, backend=None) -> int:
    from rewardkit.annotate.backends import make_backend
    from rewardkit.annotate.dataset_run import annotate_dataset, check_names

    names = check_names(_split_names(cfg.names))
    if cfg.episodes is not None:
        cfg.dataset.episodes = list(cfg.episodes)
    dataset = open_from_config(cfg.dataset)
    if backend is None:
        backend = make_backend(
            cfg.backend,
            cfg.model,
            base_url=cfg.base_url,
            api_key=os.environ.get(cfg.api_key_env) or None,
            timeout_s=cfg.timeout_s,
            max_new_tokens=cfg.max_new_tokens,
            device=cfg.device,
            allow_insecure_http=cfg.allow_insecure_http,
        )
    result = annotate_dataset(
        dataset,
        backend,
        names,
        scheme=cfg.head,
        camera=cfg.camera,
        sample_fps=cfg.sample_fps,
        max_frames=cfg.max_frames,
        max_retries=cfg.max_retries,
        skip_existing=cfg.skip_existing,
        proportions=cfg.proportions,
        overwrite=cfg.overwrite,
        max_consecutive_failures=cfg.max_consecutive_failures,
    )
    if result.update is not None:
        _announce_update(dataset.root, result.update)
    if result.failed:
        logger.error("%d episode(s) could not be annotated: %s", len(result.failed), list(result.failed))
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
    return run(parse_config(config_class, rest, f"annotate {name}", renamed={"--scheme": "--head"}))
