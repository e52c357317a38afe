"""Subtask annotations, keyframes and failed episodes: reading and writing the files LeRobot users have.

Where annotations live (LeRobot's SARM layout, so lerobot's SARM reads what is written here):
- per-episode columns of `meta/episodes/chunk-*/file-*.parquet`, one row per episode, per scheme
  (`sparse` or `dense`): `{scheme}_subtask_names` (list of str), `{scheme}_subtask_start_frames`,
  `{scheme}_subtask_end_frames` (list of int64, inclusive frame indices within the episode) and
  `{scheme}_subtask_start_times`, `{scheme}_subtask_end_times` (list of float64 seconds = frame / fps).
  Frames are authoritative when reading; times are read only when frame columns are missing.
- `meta/temporal_proportions_{scheme}.json`: `{"subtask name": proportion, ...}` in stage order (the
  order lerobot's SARM takes as the stage order).

Exchange files (`import_annotations` / `export_annotations`): CSV with the header
`episode,scheme,name,start,end`, or JSON `{"unit": "frames"|"seconds", "annotations": [{"episode": 0,
"scheme": "sparse", "name": "grasp", "start": 0, "end": 12}, ...]}`; start/end in frames or seconds.

Keyframes file (`read_keyframes`), by default `meta/keyframes.json` in the dataset:
    {"unit": "frames",                      # or "seconds": keys are timestamps within the episode
     "episodes": {"0": {"12": 0.5, "30": 1.0},          # frame (or time) -> reward in [0, 1]
                  "3": [[12, 0.5], [30, 1.0], [41, 0.0]]},  # or a list of [frame, reward] pairs
     "failed": [3]}                         # optional: episodes that failed (see `failed_episodes`)

Every bad input (overlapping or out-of-order subtasks, unknown names, frames beyond the episode,
rewards outside [0, 1], NaN, a file that is not UTF-8) raises `RewardkitError` naming the episode or
the file, before anything is written.

Changing a dataset (`import_into_dataset`, `update_scheme`): the annotations, the stage order and the
temporal proportions are computed and checked first, then written; episode files keep their mode. A
scheme never mixes two stage sets: episodes annotated with names outside the new ones are refused, or
removed when the user asks (`stage_name_removals`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.data.targets import check_subtask_frames, stage_tau_targets, temporal_proportions
from rewardkit.errors import RewardkitError
from rewardkit.io_utils import atomic_write_text, file_mode_for

SCHEMES = ("sparse", "dense")
COLUMN_SUFFIXES = ("names", "start_frames", "end_frames", "start_times", "end_times")
KEYFRAMES_FILE = "meta/keyframes.json"
EXCHANGE_FIELDS = ("episode", "scheme", "name", "start", "end")
UNITS = ("frames", "seconds")


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise RewardkitError(f"annotation scheme must be one of {SCHEMES}, got '{scheme}'")


def annotation_columns(scheme: str) -> dict[str, str]:
    """Column name of each field of a scheme: {"names": "sparse_subtask_names", ...}."""
    _check_scheme(scheme)
    return {suffix: f"{scheme}_subtask_{suffix}" for suffix in COLUMN_SUFFIXES}


def _as_frame(value: object, what: str, episode_index: int) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RewardkitError(f"episode {episode_index}: {what} {value!r} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise RewardkitError(f"episode {episode_index}: {what} is {number}")
    if number != int(number):
        raise RewardkitError(f"episode {episode_index}: {what} {number} is not a whole frame index")
    return int(number)


@dataclass(frozen=True)
class SubtaskAnnotation:
    """One episode's subtasks in one scheme: names (n,) with inclusive start/end frames (n,).

    Construct it freely, then call `validate(episode_index, ...)`, which every reader and writer here
    does: it returns a clean copy (str names, int frames) or raises ValueError naming the episode.
    """

    names: tuple[str, ...]
    start_frames: tuple[int, ...]
    end_frames: tuple[int, ...]

    def __post_init__(self) -> None:
        for field_name in ("names", "start_frames", "end_frames"):
            value = getattr(self, field_name)
            if isinstance(value, str):
                raise RewardkitError(f"{field_name} must be a sequence, not the string {value!r}")
            object.__setattr__(
                self, field_name, tuple(np.asarray(value).tolist()) if value is not None else ()
            )

    def __len__(self) -> int:
        return len(self.names)

    def validate(
        self,
        episode_index: int,
        length: int | None = None,
        known_names: Sequence[str] | None = None,
        in_name_order: bool = False,
    ) -> SubtaskAnnotation:
        """Check the annotation of `episode_index`; return it with str names and int frames.

        Checks: the three lists have the same length; frames are whole numbers (no NaN); each subtask
        ends at or after its start; subtasks are in temporal order and do not overlap (touching is
        fine); frames lie within [0, length] (`length` itself means the episode's end); names are
        non-empty and, with `known_names`, in that list (and in its order if `in_name_order`).
        """
        n = len(self.names)
        if len(self.start_frames) != n or len(self.end_frames) != n:
            raise RewardkitError(
                f"episode {episode_index}: {n} subtask names but {len(self.start_frames)} start and "
                f"{len(self.end_frames)} end frames"
            )
        names = []
        for name in self.names:
            if not isinstance(name, str) or not name.strip():
                raise RewardkitError(
                    f"episode {episode_index}: subtask name {name!r} is not a non-empty string"
                )
            names.append(name)
        starts = [_as_frame(v, "start frame", episode_index) for v in self.start_frames]
        ends = [_as_frame(v, "end frame", episode_index) for v in self.end_frames]
        if known_names is not None:
            unknown = [name for name in names if name not in known_names]
            if unknown:
                raise RewardkitError(
                    f"episode {episode_index}: unknown subtask name(s) {unknown}; expected names from "
                    f"{list(known_names)}"
                )
            if in_name_order:
                positions = [list(known_names).index(name) for name in names]
                if positions != sorted(positions):
                    raise RewardkitError(
                        f"episode {episode_index}: subtasks {names} are not in the order {list(known_names)}"
                    )
        bound = length if length is not None else max([*ends, 0])
        try:
            check_subtask_frames(bound, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64))
        except ValueError as e:
            where = f" ({length} frames)" if length is not None else ""
            raise RewardkitError(f"episode {episode_index}{where}: {e}") from None
        return SubtaskAnnotation(tuple(names), tuple(starts), tuple(ends))

    def start_times(self, fps: float) -> np.ndarray:
        """(n,) float64 start times in seconds within the episode."""
        return np.asarray(self.start_frames, dtype=np.float64) / float(fps)

    def end_times(self, fps: float) -> np.ndarray:
        """(n,) float64 end times in seconds within the episode."""
        return np.asarray(self.end_frames, dtype=np.float64) / float(fps)

    @classmethod
    def from_times(
        cls, names: Sequence[str], start_times: Sequence[float], end_times: Sequence[float], fps: float
    ) -> SubtaskAnnotation:
        """Build from seconds: frame = round(time * fps). NaN stays NaN so `validate` reports it."""

        def to_frames(times: Sequence[float]) -> tuple[float, ...]:
            out = []
            for t in times:
                value = float(t)
                out.append(value if math.isnan(value) or math.isinf(value) else float(round(value * fps)))
            return tuple(out)

        return cls(tuple(names), to_frames(start_times), to_frames(end_times))  # type: ignore[arg-type]

    def stage_tau(self, length: int, names_order: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """SARM targets of this episode: stage (T,) int64 indices into `names_order`, tau (T,) float32."""
        order = list(names_order)
        missing = [name for name in self.names if name not in order]
        if missing:
            raise RewardkitError(f"subtask(s) {missing} are not in the scheme's names {order}")
        ids = [order.index(name) for name in self.names]
        return stage_tau_targets(length, self.start_frames, self.end_frames, stage_ids=ids)


# ---------------------------------------------------------------------------------------------- parquet
def _episode_files(root: Path) -> list[Path]:
    files = sorted((Path(root) / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"no episode metadata under {Path(root) / 'meta' / 'episodes'}")
    return files


def episode_metadata_column(root: str | Path, column: str) -> dict[int, Any]:
    """A per-episode column of a dataset's meta/episodes: {episode_index: value} (nulls left out).

    Raises RewardkitError naming the file when the column is missing.
    """
    import pyarrow.parquet as pq

    values: dict[int, Any] = {}
    for path in _episode_files(Path(root)):
        if column not in pq.read_schema(path).names:
            raise RewardkitError(f"{path}: no column '{column}' in the episode metadata")
        table = pq.read_table(path, columns=["episode_index", column])
        for episode_index, value in zip(
            table["episode_index"].to_pylist(), table[column].to_pylist(), strict=True
        ):
            if value is not None:
                values[int(episode_index)] = value
    return values


def dataset_fps(root: str | Path) -> float:
    """Frames per second from `meta/info.json`."""
    path = Path(root) / "meta" / "info.json"
    with open(path) as f:
        return float(json.load(f)["fps"])


def episode_lengths(root: str | Path) -> dict[int, int]:
    """{episode_index: number of frames} from the dataset's episode metadata."""
    import pyarrow.parquet as pq

    lengths: dict[int, int] = {}
    for path in _episode_files(Path(root)):
        table = pq.read_table(path, columns=["episode_index", "length"])
        for episode_index, length in zip(
            table["episode_index"].to_pylist(), table["length"].to_pylist(), strict=True
        ):
            lengths[int(episode_index)] = int(length)
    return lengths


def read_annotations(
    root: str | Path, scheme: str, episodes: Iterable[int] | None = None
) -> dict[int, SubtaskAnnotation]:
    """Annotations of one scheme from `meta/episodes/*/*.parquet`: {episode_index: SubtaskAnnotation}.

    Episodes without annotation (null or empty lists) are left out. For `sparse`, lerobot's legacy
    unprefixed columns (`subtask_names`, ...) are read when the prefixed ones are missing. Each
    annotation is validated against its episode's length (ValueError naming the episode).
    """
    import pyarrow.parquet as pq

    _check_scheme(scheme)
    wanted = None if episodes is None else {int(e) for e in episodes}
    fps = None
    found: dict[int, SubtaskAnnotation] = {}
    for path in _episode_files(Path(root)):
        available = set(pq.read_schema(path).names)
        columns = annotation_columns(scheme)
        if columns["names"] not in available and scheme == "sparse" and "subtask_names" in available:
            columns = {suffix: f"subtask_{suffix}" for suffix in COLUMN_SUFFIXES}
        if columns["names"] not in available:
            continue
        use_frames = columns["start_frames"] in available and columns["end_frames"] in available
        keys = ("start_frames", "end_frames") if use_frames else ("start_times", "end_times")
        if not use_frames and not (columns["start_times"] in available and columns["end_times"] in available):
            raise RewardkitError(f"{path}: has {columns['names']} but neither frame nor time columns")
        table = pq.read_table(
            path, columns=["episode_index", "length", columns["names"], columns[keys[0]], columns[keys[1]]]
        )
        rows = zip(
            *(
                table[c].to_pylist()
                for c in ["episode_index", "length", columns["names"], columns[keys[0]], columns[keys[1]]]
            ),
            strict=True,
        )
        for episode_index, length, names, starts, ends in rows:
            if wanted is not None and episode_index not in wanted:
                continue
            if not names:
                continue
            if use_frames:
                annotation = SubtaskAnnotation(names, starts or (), ends or ())
            else:
                fps = fps if fps is not None else dataset_fps(root)
                annotation = SubtaskAnnotation.from_times(names, starts or (), ends or (), fps)
            found[int(episode_index)] = annotation.validate(int(episode_index), length=int(length))
    return dict(sorted(found.items()))


def _write_atomically(writes: list[tuple[Path, object]], write_one) -> None:
    """Write every (path, payload) to a temporary file beside it, then rename them all into place.

    Several files change together (one scheme's columns span every episode file), so all are written
    before any is renamed. Each keeps its own mode, a new one gets the umask's (as `atomic_write`).
    """
    temporaries: list[tuple[Path, Path]] = []
    try:
        for path, payload in writes:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(handle)
            temporaries.append((Path(name), path))
            write_one(payload, Path(name))
            os.chmod(name, file_mode_for(path))
        for temporary, path in temporaries:
            os.replace(temporary, path)
    finally:
        for temporary, _ in temporaries:
            if temporary.exists():
                temporary.unlink()


def _with_feature_metadata(table, columns: Iterable[str]):
    """Keep a Hugging Face `datasets` schema (parquet key b"huggingface") in step with added columns.

    Files written by `datasets` carry their features; a column missing from them makes loading fail,
    so the subtask columns are declared there (in this `datasets` version's own format).
    """
    metadata = table.schema.metadata or {}
    if b"huggingface" not in metadata:
        return table
    import datasets
    import pyarrow as pa

    info = json.loads(metadata[b"huggingface"])
    features = info.get("info", {}).get("features")
    if not isinstance(features, dict):
        return table
    declared = datasets.Features.from_arrow_schema(
        pa.schema([table.schema.field(c) for c in columns])
    ).to_dict()
    features.update(declared)
    return table.replace_schema_metadata({**metadata, b"huggingface": json.dumps(info).encode()})


def write_annotations(
    root: str | Path,
    scheme: str,
    annotations: Mapping[int, SubtaskAnnotation | None],
    fps: float | None = None,
    known_names: Sequence[str] | None = None,
) -> list[Path]:
    """Write one scheme's annotations into the episode metadata; returns the files rewritten.

    Each episode goes into its own row (found by `episode_index`, whichever file holds it). Only the
    five `{scheme}_subtask_*` columns change: other episodes keep their values (null where the column
    is new), all other columns are kept as they are. Every episode file gets the columns so the files
    keep one schema (lerobot loads them together). A value of None removes an episode's annotation.
    Everything is validated first (ValueError naming the episode, nothing written); files are
    written to temporaries and then renamed into place.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    _check_scheme(scheme)
    root = Path(root)
    fps = float(fps) if fps is not None else dataset_fps(root)
    lengths = episode_lengths(root)
    clean: dict[int, SubtaskAnnotation | None] = {}
    for episode_index, annotation in annotations.items():
        episode_index = int(episode_index)
        if episode_index not in lengths:
            raise RewardkitError(f"episode {episode_index} is not in the dataset at {root}")
        clean[episode_index] = (
            None
            if annotation is None
            else annotation.validate(episode_index, length=lengths[episode_index], known_names=known_names)
        )
    columns = annotation_columns(scheme)
    types = {
        "names": pa.list_(pa.string()),
        "start_frames": pa.list_(pa.int64()),
        "end_frames": pa.list_(pa.int64()),
        "start_times": pa.list_(pa.float64()),
        "end_times": pa.list_(pa.float64()),
    }
    writes: list[tuple[Path, object]] = []
    for path in _episode_files(root):
        table = pq.read_table(path)
        episode_indices = [int(e) for e in table["episode_index"].to_pylist()]
        if not any(e in clean for e in episode_indices) and all(
            c in table.column_names for c in columns.values()
        ):
            continue
        for suffix, column in columns.items():
            old = table[column].to_pylist() if column in table.column_names else [None] * table.num_rows
            values = []
            for row, episode_index in enumerate(episode_indices):
                if episode_index not in clean:
                    values.append(old[row])
                    continue
                annotation = clean[episode_index]
                if annotation is None:
                    values.append(None)
                elif suffix == "names":
                    values.append(list(annotation.names))
                elif suffix in ("start_frames", "end_frames"):
                    values.append(list(getattr(annotation, suffix)))
                else:
                    values.append(getattr(annotation, suffix)(fps).tolist())
            array = pa.array(values, type=types[suffix])
            if column in table.column_names:
                table = table.set_column(table.column_names.index(column), column, array)
            else:
                table = table.append_column(column, array)
        writes.append((path, _with_feature_metadata(table, columns.values())))
    _write_atomically(writes, lambda table, target: pq.write_table(table, target, compression="snappy"))
    return [path for path, _ in writes]


# ---------------------------------------------------------------------------------------------- proportions
def temporal_proportions_path(root: str | Path, scheme: str) -> Path:
    """`meta/temporal_proportions_{scheme}.json` of a dataset."""
    _check_scheme(scheme)
    return Path(root) / "meta" / f"temporal_proportions_{scheme}.json"


def _check_proportions(proportions: Mapping[str, float], where: str) -> dict[str, float]:
    if not isinstance(proportions, Mapping) or not proportions:
        raise RewardkitError(f"{where}: temporal proportions must be a non-empty {{name: proportion}} object")
    clean = {}
    for name, value in proportions.items():
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value < 0
        ):
            raise RewardkitError(
                f"{where}: proportion of '{name}' must be a finite number >= 0, got {value!r}"
            )
        clean[str(name)] = float(value)
    if sum(clean.values()) <= 0:
        raise RewardkitError(f"{where}: temporal proportions sum to 0")
    return clean


def read_temporal_proportions(root: str | Path, scheme: str) -> dict[str, float]:
    """{subtask name: proportion} in stage order from `meta/temporal_proportions_{scheme}.json`."""
    path = temporal_proportions_path(root, scheme)
    if not path.exists():
        raise FileNotFoundError(f"no temporal proportions for the {scheme} scheme at {path}")
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise RewardkitError(f"{path}: not valid JSON ({e})") from None
    return _check_proportions(data, str(path))


def write_temporal_proportions(root: str | Path, scheme: str, proportions: Mapping[str, float]) -> Path:
    """Write `meta/temporal_proportions_{scheme}.json` ({name: proportion}, stage order) atomically."""
    path = temporal_proportions_path(root, scheme)
    clean = _check_proportions(proportions, str(path))
    return atomic_write_text(path, json.dumps(clean, indent=2) + "\n")


def stage_order(
    root: str | Path,
    scheme: str,
    annotations: Mapping[int, SubtaskAnnotation],
    lengths: Mapping[int, int],
    given: Sequence[str] | None = None,
) -> list[str]:
    """A scheme's stage order: `given`, else the existing proportions file's order (when it names every
    subtask present), else the names sorted by their mean start (as a fraction of the episode)."""
    if given:
        return list(given)
    present = {name for annotation in annotations.values() for name in annotation.names}
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


def proportions_of(
    annotations: Mapping[int, SubtaskAnnotation], lengths: Mapping[int, int], order: Sequence[str]
) -> dict[str, float]:
    """Temporal proportions (SARM formula (1), `targets.temporal_proportions`) of a scheme's annotations
    ({episode: annotation}) in stage `order`; a subtask outside `order` is an error naming its episode."""
    for episode_index, annotation in sorted(annotations.items()):
        outside = [name for name in annotation.names if name not in order]
        if outside:
            raise RewardkitError(
                f"episode {episode_index}: subtask(s) {outside} are not among the stage names {list(order)}"
            )
    episodes = [(a.names, a.start_frames, a.end_frames, lengths[e]) for e, a in sorted(annotations.items())]
    return temporal_proportions(episodes, order)


def stage_name_conflicts(
    existing: Mapping[int, SubtaskAnnotation], names: Iterable[str], replaced: Iterable[int] = ()
) -> dict[int, list[str]]:
    """Episodes of `existing` (other than `replaced`) whose subtasks use names outside `names`:
    {episode: [those names]}. Keeping them beside annotations with the new names would mix two stage
    sets in one scheme (and in its temporal proportions)."""
    allowed, skipped = set(names), {int(e) for e in replaced}
    conflicts = {}
    for episode_index, annotation in sorted(existing.items()):
        outside = sorted({name for name in annotation.names if name not in allowed})
        if outside and episode_index not in skipped:
            conflicts[episode_index] = outside
    return conflicts


def describe_conflicts(scheme: str, conflicts: Mapping[int, Sequence[str]]) -> str:
    """One line naming the episodes whose stage names differ and the names they use."""
    names = sorted({name for outside in conflicts.values() for name in outside})
    episodes = list(conflicts)
    shown = episodes if len(episodes) <= 20 else [*episodes[:20], "..."]
    return (
        f"{len(episodes)} episode(s) {shown} have {scheme} subtask names {names} outside the new stage names"
    )


# ---------------------------------------------------------------------------------------------- CSV / JSON
def export_annotations(
    path: str | Path,
    annotations: Mapping[str, Mapping[int, SubtaskAnnotation]],
    fps: float,
    unit: str = "frames",
) -> Path:
    """Write {scheme: {episode: annotation}} to a CSV (`.csv`) or JSON (`.json`) exchange file.

    One record per subtask: episode, scheme, name, start, end (frames, or seconds = frame / fps).
    """
    if unit not in UNITS:
        raise RewardkitError(f"unit must be one of {UNITS}, got '{unit}'")
    path = Path(path)
    records = []
    for scheme, by_episode in annotations.items():
        _check_scheme(scheme)
        for episode_index, annotation in sorted(by_episode.items()):
            for name, start, end in zip(
                annotation.names, annotation.start_frames, annotation.end_frames, strict=True
            ):
                if unit == "seconds":
                    start, end = start / fps, end / fps
                records.append(
                    {
                        "episode": int(episode_index),
                        "scheme": scheme,
                        "name": name,
                        "start": start,
                        "end": end,
                    }
                )
    suffix = path.suffix.lower()
    if suffix == ".json":
        payload = json.dumps({"unit": unit, "fps": fps, "annotations": records}, indent=2) + "\n"
    elif suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXCHANGE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        payload = buffer.getvalue()
    else:
        raise RewardkitError(f"{path}: exchange files must end in .csv or .json")
    return atomic_write_text(path, payload)


def _read_utf8(path: Path) -> str:
    """The text of an exchange file (UTF-8, a byte-order mark allowed); other encodings name the file."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RewardkitError(
            f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8 and import it again"
        ) from None


def import_annotations(
    path: str | Path,
    fps: float,
    unit: str | None = None,
    lengths: Mapping[int, int] | None = None,
    known_names: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[int, SubtaskAnnotation]]:
    """Read a CSV or JSON exchange file into {scheme: {episode: SubtaskAnnotation}}, validated.

    `unit` ("frames" or "seconds"): for CSV it defaults to frames; for JSON the file's "unit" is used
    (a different explicit `unit` is an error). Seconds become frames as round(seconds * fps). With
    `lengths` ({episode: frames}) every episode must exist and fit; with `known_names`
    ({scheme: names}) every name must be in its scheme's list.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"annotation file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(_read_utf8(path))
        except json.JSONDecodeError as e:
            raise RewardkitError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("annotations"), list):
            raise RewardkitError(f'{path}: expected {{"unit": ..., "annotations": [...]}}')
        file_unit = data.get("unit", "frames")
        if unit is not None and unit != file_unit:
            raise RewardkitError(f"{path}: the file says unit '{file_unit}' but '{unit}' was asked for")
        unit = file_unit
        records = data["annotations"]
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(_read_utf8(path), newline=""))
        missing = [name for name in EXCHANGE_FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise RewardkitError(
                f"{path}: missing column(s) {missing}; header must be {','.join(EXCHANGE_FIELDS)}"
            )
        records = list(reader)
        unit = unit or "frames"
    else:
        raise RewardkitError(f"{path}: exchange files must end in .csv or .json")
    if unit not in UNITS:
        raise RewardkitError(f"{path}: unit must be one of {UNITS}, got '{unit}'")

    grouped: dict[str, dict[int, list[tuple[str, float, float]]]] = {}
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping) or any(k not in record for k in EXCHANGE_FIELDS):
            raise RewardkitError(
                f"{path}: record {number} needs the fields {EXCHANGE_FIELDS}, got {record!r}"
            )
        try:
            episode_index = int(record["episode"])
        except (TypeError, ValueError):
            raise RewardkitError(f"{path}: record {number} has episode {record['episode']!r}") from None
        scheme = str(record["scheme"]).strip()
        if scheme not in SCHEMES:
            raise RewardkitError(
                f"{path}: episode {episode_index}: scheme must be one of {SCHEMES}, got '{scheme}'"
            )
        values = []
        for key in ("start", "end"):
            try:
                values.append(float(record[key]))
            except (TypeError, ValueError):
                raise RewardkitError(
                    f"{path}: episode {episode_index}: {key} {record[key]!r} is not a number"
                ) from None
        grouped.setdefault(scheme, {}).setdefault(episode_index, []).append(
            (str(record["name"]), values[0], values[1])
        )
    result: dict[str, dict[int, SubtaskAnnotation]] = {}
    for scheme, by_episode in grouped.items():
        for episode_index, spans in sorted(by_episode.items()):
            names, starts, ends = zip(*spans, strict=True)
            if unit == "seconds":
                annotation = SubtaskAnnotation.from_times(names, starts, ends, fps)
            else:
                annotation = SubtaskAnnotation(names, starts, ends)  # type: ignore[arg-type]
            length = None
            if lengths is not None:
                if episode_index not in lengths:
                    raise RewardkitError(f"{path}: episode {episode_index} is not in the dataset")
                length = lengths[episode_index]
            names_list = None if known_names is None else known_names.get(scheme)
            try:
                clean = annotation.validate(episode_index, length=length, known_names=names_list)
            except ValueError as e:
                raise RewardkitError(f"{path}: {scheme}: {e}") from None
            result.setdefault(scheme, {})[episode_index] = clean
    return result


@dataclass(frozen=True)
class SchemeUpdate:
    """What writing one scheme into a dataset did (`update_scheme`).

    Attributes:
        scheme: `sparse` or `dense`.
        episodes: episodes whose annotation was written.
        removed: episodes whose annotation was removed because it used other stage names (overwrite).
        files: the episode metadata files rewritten.
        proportions_path: the temporal proportions file written, or None.
    """

    scheme: str
    episodes: tuple[int, ...]
    removed: tuple[int, ...]
    files: tuple[Path, ...]
    proportions_path: Path | None


def stage_name_removals(
    root: str | Path,
    scheme: str,
    names: Sequence[str],
    replaced: Iterable[int] = (),
    overwrite: bool = False,
    overwrite_flag: str = "--overwrite=true",
) -> list[int]:
    """Episodes whose annotation must go for the stage names `names` to join the scheme.

    Episodes already annotated with names outside `names` (other than `replaced`, which get new
    annotations) would mix two stage sets in the scheme and its temporal proportions: refused with an
    error naming them, or, with `overwrite`, returned so the caller removes them.
    """
    conflicts = stage_name_conflicts(read_annotations(root, scheme), names, replaced=replaced)
    if conflicts and not overwrite:
        raise RewardkitError(
            f"{Path(root)}: {describe_conflicts(scheme, conflicts)}; keeping both would mix two stage sets "
            f"in meta/temporal_proportions_{scheme}.json. Pass {overwrite_flag} to remove those episodes' "
            f"{scheme} annotations, or annotate them with the new names too"
        )
    return list(conflicts)


def _after_changes(
    existing: Mapping[int, SubtaskAnnotation], changes: Mapping[int, SubtaskAnnotation | None]
) -> dict[int, SubtaskAnnotation]:
    """A scheme's annotations once `changes` are written (None removes an episode's)."""
    merged = dict(existing)
    for episode_index, annotation in changes.items():
        if annotation is None:
            merged.pop(int(episode_index), None)
        else:
            merged[int(episode_index)] = annotation
    return merged


def update_scheme(
    root: str | Path,
    scheme: str,
    changes: Mapping[int, SubtaskAnnotation | None],
    fps: float | None = None,
    known_names: Sequence[str] | None = None,
    proportions: bool = True,
    order: Sequence[str] | None = None,
) -> SchemeUpdate:
    """Write `changes` ({episode: annotation, or None to remove}) into one scheme and, with `proportions`,
    recompute `meta/temporal_proportions_{scheme}.json` from the scheme's annotations after the change.

    Everything (the annotations, the stage order, the proportions) is computed and checked before the
    first file is written, so a bad input leaves the dataset as it was. `order` is the stage order
    (default: `stage_order`).
    """
    root = Path(root)
    lengths = episode_lengths(root)
    merged = _after_changes(read_annotations(root, scheme), changes)
    new_proportions = None
    if proportions and merged:
        names_order = stage_order(root, scheme, merged, lengths, order)
        new_proportions = proportions_of(merged, lengths, names_order)
    files = write_annotations(root, scheme, changes, fps=fps, known_names=known_names)
    path = write_temporal_proportions(root, scheme, new_proportions) if new_proportions else None
    return SchemeUpdate(
        scheme=scheme,
        episodes=tuple(sorted(e for e, a in changes.items() if a is not None)),
        removed=tuple(sorted(e for e, a in changes.items() if a is None)),
        files=tuple(files),
        proportions_path=path,
    )


def import_into_dataset(
    root: str | Path,
    file: str | Path,
    unit: str | None = None,
    names: Mapping[str, Sequence[str] | None] | None = None,
    proportions: bool = True,
    overwrite: bool = False,
) -> list[SchemeUpdate]:
    """Import an exchange file (CSV/JSON) into a dataset's episode metadata; one `SchemeUpdate` a scheme.

    Args:
        names: {scheme: stage names in order}; names outside them are an error. Without names for a
            scheme, its stage names are those of the file.
        proportions: recompute each imported scheme's temporal proportions from all its annotations.
        overwrite: remove the annotations of other episodes that use stage names outside the new ones
            (default: refuse, naming them).

    Every scheme is read, validated and planned before anything is written.
    """
    root = Path(root)
    fps, lengths = dataset_fps(root), episode_lengths(root)
    given = {scheme: list(v) for scheme, v in (names or {}).items() if v}
    imported = import_annotations(file, fps, unit=unit, lengths=lengths, known_names=given)
    if not imported:
        raise RewardkitError(f"{file}: no annotations in the file")
    plans = []
    for scheme, new in imported.items():
        stage_names = given.get(scheme) or sorted({n for a in new.values() for n in a.names})
        removed = stage_name_removals(root, scheme, stage_names, replaced=new, overwrite=overwrite)
        changes = {**dict.fromkeys(removed), **new}
        merged = _after_changes(read_annotations(root, scheme), changes)
        if proportions:  # checked here so a bad second scheme cannot follow a written first one
            proportions_of(merged, lengths, stage_order(root, scheme, merged, lengths, given.get(scheme)))
        plans.append((scheme, changes))
    return [
        update_scheme(
            root,
            scheme,
            changes,
            fps=fps,
            known_names=given.get(scheme),
            proportions=proportions,
            order=given.get(scheme),
        )  # fmt: skip
        for scheme, changes in plans
    ]


# ---------------------------------------------------------------------------------------------- keyframes
@dataclass(frozen=True)
class Keyframes:
    """Keyframe rewards read from a keyframes file: {episode: [(frame, reward), ...]} and failed episodes."""

    episodes: dict[int, list[tuple[int, float]]]
    failed: tuple[int, ...] = ()


def read_keyframes(
    path: str | Path, fps: float | None = None, lengths: Mapping[int, int] | None = None
) -> Keyframes:
    """Read a keyframes JSON file (format in the module docstring); `path` may be a dataset folder.

    Timestamps (unit "seconds") become frames as round(t * fps). Checks, each a ValueError naming the
    episode: rewards in [0, 1] and not NaN; frames whole, >= 0 and (with `lengths`) within the episode;
    no frame twice; episodes (with `lengths`) in the dataset.
    """
    path = Path(path)
    if path.is_dir():
        path = path / KEYFRAMES_FILE
    if not path.exists():
        raise FileNotFoundError(f"keyframes file not found: {path}")
    try:
        data = json.loads(_read_utf8(path))
    except json.JSONDecodeError as e:
        raise RewardkitError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("episodes", {}), Mapping):
        raise RewardkitError(f'{path}: expected {{"unit": ..., "episodes": {{episode: {{frame: reward}}}}}}')
    unit = data.get("unit", "frames")
    if unit not in UNITS:
        raise RewardkitError(f"{path}: unit must be one of {UNITS}, got '{unit}'")
    if unit == "seconds" and fps is None:
        raise RewardkitError(f"{path}: keyframes in seconds need the dataset's fps")
    episodes: dict[int, list[tuple[int, float]]] = {}
    for key, entries in data.get("episodes", {}).items():
        try:
            episode_index = int(key)
        except ValueError:
            raise RewardkitError(f"{path}: episode key {key!r} is not an episode index") from None
        pairs = list(entries.items()) if isinstance(entries, Mapping) else entries
        if not isinstance(pairs, list):
            raise RewardkitError(
                f"{path}: episode {episode_index}: keyframes must be an object or a list of pairs"
            )
        clean: dict[int, float] = {}
        for pair in pairs:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise RewardkitError(
                    f"{path}: episode {episode_index}: keyframe {pair!r} is not a (frame, reward) pair"
                )
            where, reward = pair
            try:
                position, reward = float(where), float(reward)
            except (TypeError, ValueError):
                raise RewardkitError(
                    f"{path}: episode {episode_index}: keyframe {pair!r} is not numeric"
                ) from None
            if math.isnan(reward) or not 0.0 <= reward <= 1.0:
                raise RewardkitError(f"{path}: episode {episode_index}: reward {reward} is outside [0, 1]")
            if unit == "seconds" and math.isfinite(position):
                position = float(round(position * float(fps)))  # type: ignore[arg-type]
            frame = _as_frame(position, "keyframe frame", episode_index)
            if lengths is not None:
                if episode_index not in lengths:
                    raise RewardkitError(f"{path}: episode {episode_index} is not in the dataset")
                if not 0 <= frame < lengths[episode_index]:
                    raise RewardkitError(
                        f"{path}: episode {episode_index}: keyframe at frame {frame} is outside the episode "
                        f"(0..{lengths[episode_index] - 1})"
                    )
            if frame < 0:
                raise RewardkitError(f"{path}: episode {episode_index}: keyframe frame {frame} is negative")
            if frame in clean:
                raise RewardkitError(f"{path}: episode {episode_index}: two keyframes at frame {frame}")
            clean[frame] = reward
        episodes[episode_index] = sorted(clean.items())
    failed = data.get("failed", [])
    if not isinstance(failed, list):
        raise RewardkitError(f"{path}: 'failed' must be a list of episode indices")
    return Keyframes(episodes=dict(sorted(episodes.items())), failed=tuple(int(e) for e in failed))


def keyframe_failure_frame(keyframes: Sequence[tuple[int, float]]) -> int | None:
    """The frame where an unrecovered drop starts, or None.

    An episode fails by keyframes when its last keyframe is below the highest reached before it; the
    failure frame is the first keyframe after the last time that highest level was reached (where
    progress steps down and never comes back).
    """
    pairs = sorted(keyframes)
    if len(pairs) < 2:
        return None
    values = [v for _, v in pairs]
    peak = max(values)
    if values[-1] >= peak:
        return None
    last_peak = max(i for i, v in enumerate(values) if v == peak)
    return pairs[last_peak + 1][0]


def failed_episodes(
    root: str | Path | None = None,
    explicit: Iterable[int] | Mapping[int, int | None] = (),
    column: str | None = None,
    success_column: bool = False,
    keyframes: Keyframes | None = None,
    frame_column: str | None = None,
) -> dict[int, int | None]:
    """Failed episodes from any of four sources: {episode_index: failure frame or None (unknown)}.

    Args:
        root: the dataset, needed for `column` and `frame_column`.
        explicit: episode indices known to have failed, or {episode: failure frame or None}.
        column: a per-episode column of `meta/episodes` (bool or 0/1); true means failed, or success
            when `success_column` is set (then false means failed).
        keyframes: episodes listed in its `failed` list, and episodes whose keyframes end below the
            level they reached (`keyframe_failure_frame` gives the frame).
        frame_column: a per-episode integer column of `meta/episodes`: the frame (within the episode,
            0 included) where the episode failed; null or negative means it did not fail.

    A frame given explicitly or by `frame_column` wins over one inferred from keyframes (a keyframe
    drop says where progress fell, the user's frame says where the attempt failed).
    """
    given = explicit.items() if isinstance(explicit, Mapping) else ((e, None) for e in explicit)
    failed: dict[int, int | None] = {}
    for episode_index, frame in given:
        if frame is not None and (int(frame) != frame or frame < 0):
            raise RewardkitError(
                f"episode {episode_index}: failure frame {frame} is not a frame index (0 or more)"
            )
        failed[int(episode_index)] = None if frame is None else int(frame)
    if (column is not None or frame_column is not None) and root is None:
        raise RewardkitError("a failure column needs the dataset root")
    if column is not None:
        for episode_index, value in episode_metadata_column(root, column).items():
            if bool(value) != success_column:
                failed.setdefault(episode_index, None)
    if frame_column is not None:
        for episode_index, value in episode_metadata_column(root, frame_column).items():
            if value < 0:
                continue
            if int(value) != value:
                raise RewardkitError(
                    f"{root}: episode {episode_index}: column '{frame_column}' holds {value}, "
                    "not a frame index (whole, 0 or more; null or negative for no failure)"
                )
            if failed.get(episode_index) is None:
                failed[episode_index] = int(value)
    if keyframes is not None:
        for episode_index in keyframes.failed:
            failed.setdefault(episode_index, None)
        for episode_index, pairs in keyframes.episodes.items():
            frame = keyframe_failure_frame(pairs)
            if frame is not None and failed.get(episode_index) is None:
                failed[episode_index] = frame
    return dict(sorted(failed.items()))


def load_progress_targets(
    root: str | Path,
    keyframes: str | Path | Keyframes | None = None,
    failed: Mapping[int, int | None] | Iterable[int] | None = None,
    episodes: Iterable[int] | None = None,
    start: float = 0.05,
    end: float = 0.95,
    max_progress: float = 0.9,
    failure_target: str = "drop",
) -> dict[int, np.ndarray]:
    """Per-frame progress targets of a dataset's episodes: {episode_index: (T,) float32 in [0, 1]}.

    Args:
        root: the dataset folder.
        keyframes: a keyframes file, a dataset folder holding `meta/keyframes.json`, or `Keyframes`;
            episodes with keyframes get `keyframe_progress`, the others `linear_progress(start, end)`.
        failed: failed episodes, as indices or {episode: failure frame or None} (see `failed_episodes`
            to gather them from a column or a list).
        episodes: which episodes (default all).
        max_progress: the cap of a failed episode (it never ends at 1).
        failure_target: from a known failure frame on, "drop" to 0 or "hold" the level reached there
            (`failure_progress`).

    An episode fails if it is in `failed`, in the keyframes file's `failed` list, or its keyframes end
    below the level they reached (the drop is already in its keyframe targets; it is capped too).
    Where a failure frame is known from `failed`, progress falls to 0 there, or holds with
    `failure_target="hold"` (`failure_progress`).
    """
    from rewardkit.data.targets import episode_progress

    lengths = episode_lengths(root)
    if isinstance(keyframes, (str, Path)):
        keyframes = read_keyframes(keyframes, fps=dataset_fps(root), lengths=lengths)
    failures: dict[int, int | None] = (
        {int(e): f for e, f in failed.items()}
        if isinstance(failed, Mapping)
        else {int(e): None for e in (failed or ())}
    )
    by_episode = keyframes.episodes if keyframes is not None else {}
    if keyframes is not None:
        for episode_index in keyframes.failed:
            failures.setdefault(episode_index, None)
    selected = sorted(lengths) if episodes is None else [int(e) for e in episodes]
    targets = {}
    for episode_index in selected:
        if episode_index not in lengths:
            raise RewardkitError(f"episode {episode_index} is not in the dataset at {root}")
        pairs = by_episode.get(episode_index)
        is_failed = episode_index in failures or (
            pairs is not None and keyframe_failure_frame(pairs) is not None
        )
        try:
            targets[episode_index] = episode_progress(
                lengths[episode_index],
                pairs,
                failed=is_failed,
                fail_frame=failures.get(episode_index),
                start=start,
                end=end,
                max_progress=max_progress,
                after=failure_target,
            )
        except ValueError as e:
            raise RewardkitError(f"episode {episode_index}: {e}") from None
    return targets
