"""Annotate a whole dataset with a VLM: ask for every episode first, validate, then write once.

`annotate_dataset` samples each chosen episode's frames, asks the backend (`annotate_episode`, with its
retries), and keeps the validated answers in memory. Only when the loop ends are they written, in one
`update_scheme` call (the episode columns and the temporal proportions, checked before any file
changes), so the dataset is never left half-updated by a failure in the middle. Before the first request
it also checks that the new stage names do not clash with the names of episodes it will not annotate.

A backend that keeps failing (a hung or dead server: timeouts, refused connections, HTTP errors) stops
the run after `max_consecutive_failures` failed requests in a row instead of retrying on every episode
(300 s x retries x episodes); the answers obtained before the stop are written, and the error says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from rewardkit.annotate.annotator import AnnotationError, annotate_episode, sample_frame_indices
from rewardkit.annotate.backends import BackendError, Part, VLMBackend
from rewardkit.data.annotations import (
    SCHEMES,
    SchemeUpdate,
    SubtaskAnnotation,
    describe_conflicts,
    read_annotations,
    stage_name_conflicts,
    stage_name_removals,
    update_scheme,
)
from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)


class BackendUnavailable(RewardkitError):
    """The backend failed too many requests in a row: the run stops instead of trying every episode."""


class _FailureGuard:
    """Wraps a backend; after `limit` consecutive `BackendError`s raises `BackendUnavailable`.

    A malformed answer is not a backend failure (the server works; the model answered badly), so only
    errors of the transport or the server count; any answer resets the count.
    """

    def __init__(self, backend: VLMBackend, limit: int) -> None:
        self.backend, self.limit, self.consecutive = backend, limit, 0

    def complete(self, parts: Sequence[Part]) -> str:
        try:
            answer = self.backend.complete(parts)
        except BackendError as e:
            self.consecutive += 1
            if self.consecutive >= self.limit:
                raise BackendUnavailable(
                    f"the VLM backend failed {self.consecutive} request{'s' if self.consecutive > 1 else ''} "
                    f"in a row; last: {e}"
                ) from e
            raise
        self.consecutive = 0
        return answer


@dataclass(frozen=True)
class VlmRunResult:
    """What `annotate_dataset` did.

    Attributes:
        annotated: episodes that got a valid annotation (written).
        failed: episodes with no valid answer after every retry (left as they were).
        skipped: episodes left because they were already annotated (`skip_existing`).
        update: the files written (None when there was nothing to write).
        proportions_skipped: why the temporal proportions were not written, or None.
    """

    annotated: tuple[int, ...]
    failed: tuple[int, ...]
    skipped: tuple[int, ...]
    update: SchemeUpdate | None
    proportions_skipped: str | None = None


def check_names(names: Sequence[str] | None) -> list[str]:
    """The subtask names, checked: at least one, none empty, none twice."""
    names = [name.strip() for name in (names or [])]
    if not names or not all(names):
        raise RewardkitError('give the subtask names in order with --names="first,second,..."')
    if len(set(names)) != len(names):
        raise RewardkitError(f"--names has a name twice: {names}")
    return names


def annotate_dataset(
    dataset,
    backend: VLMBackend,
    names: Sequence[str],
    scheme: str = "sparse",
    camera: str | None = None,
    sample_fps: float = 2.0,
    max_frames: int = 64,
    max_retries: int = 2,
    skip_existing: bool = False,
    proportions: bool = True,
    overwrite: bool = False,
    max_consecutive_failures: int = 3,
    progress: bool = True,
) -> VlmRunResult:
    """Annotate the chosen episodes of `dataset` (a `RewardDataset`) with `backend`; write them once.

    Args:
        names: the scheme's subtask names, in the order they happen.
        scheme: `sparse` or `dense`: which columns to write.
        camera: camera whose frames are shown (default: the first).
        sample_fps, max_frames: frames sent per second of episode, and at most this many.
        max_retries: extra attempts per episode after a malformed answer or a backend error.
        skip_existing: leave episodes already annotated in this scheme.
        proportions: recompute `meta/temporal_proportions_{scheme}.json` from the scheme's annotations.
        overwrite: remove the annotations of episodes not annotated now that use other stage names
            (default: refuse before the first request, naming them).
        max_consecutive_failures: stop after this many failed backend requests in a row
            (`BackendUnavailable`, raised after the answers obtained so far are written).
        progress: show a progress bar.

    Returns a `VlmRunResult`; episodes without a valid answer are listed in `failed`, not raised.
    """
    from tqdm import tqdm

    names = check_names(names)
    if scheme not in SCHEMES:
        raise RewardkitError(f"--head must be sparse or dense, got '{scheme}'")
    if max_consecutive_failures < 1:
        raise RewardkitError(f"--max_consecutive_failures must be >= 1, got {max_consecutive_failures}")
    if not dataset.camera_keys:
        raise RewardkitError(f"{dataset.root}: no camera to annotate from")
    camera = camera or dataset.camera_keys[0]
    dataset.check_camera(camera)
    existing = read_annotations(dataset.root, scheme)
    episodes = [e for e in dataset.episodes() if not (skip_existing and e.episode_index in existing)]
    skipped = tuple(e for e in dataset.episode_indices if skip_existing and e in existing)
    if skipped:
        logger.info("skipping %d episode(s) already annotated (%s)", len(skipped), scheme)
    # Refused before the first request: a clash found after hours of answers would waste them.
    stage_name_removals(
        dataset.root, scheme, names, replaced=[e.episode_index for e in episodes], overwrite=overwrite
    )
    guard = _FailureGuard(backend, max_consecutive_failures)
    answers: dict[int, SubtaskAnnotation] = {}
    failed: list[int] = []
    stopped: BackendUnavailable | None = None
    for episode in tqdm(episodes, desc=f"vlm {scheme}", unit="episode", disable=not progress):
        indices = sample_frame_indices(episode.length, dataset.fps, sample_fps, max_frames)
        frames = dataset.read_frames_at(episode.episode_index, camera, indices)
        try:
            answers[episode.episode_index] = annotate_episode(
                guard, frames, indices, episode.length, dataset.fps, names, episode.episode_index,
                task=episode.task, max_retries=max_retries,
            )  # fmt: skip
        except AnnotationError as e:
            logger.error("%s", e)
            failed.append(episode.episode_index)
        except BackendUnavailable as e:
            stopped = e
            failed.append(episode.episode_index)
            break
    update, why_not = _write(dataset, scheme, names, answers, proportions, overwrite)
    if stopped is not None:
        left = [e.episode_index for e in episodes if e.episode_index not in answers]
        raise BackendUnavailable(
            f"{stopped}. Stopped with {len(left)} episode(s) not annotated; "
            + (
                f"the {len(answers)} annotated before the stop were written (rerun with "
                "--skip_existing=true to continue)"
                if answers
                else "nothing was written"
            )
            + ". Check that the server at --base_url is up and answers (or raise --timeout_s)"
        ) from stopped
    return VlmRunResult(tuple(sorted(answers)), tuple(failed), skipped, update, why_not)


def _write(
    dataset,
    scheme: str,
    names: list[str],
    answers: dict[int, SubtaskAnnotation],
    proportions: bool,
    overwrite: bool,
) -> tuple[SchemeUpdate | None, str | None]:
    """Write the answers in one update; returns it and why the proportions were skipped (or None)."""
    if not answers:
        return None, "no episode was annotated" if proportions else None
    # Episodes that failed keep their old annotation; with other stage names it still clashes.
    conflicts = stage_name_conflicts(read_annotations(dataset.root, scheme), names, replaced=answers)
    why_not = None
    if conflicts and not overwrite:
        why_not = describe_conflicts(scheme, conflicts)
        logger.error("not writing the %s temporal proportions: %s", scheme, why_not)
        conflicts = {}
    changes: dict[int, SubtaskAnnotation | None] = {**dict.fromkeys(conflicts), **answers}
    update = update_scheme(
        dataset.root, scheme, changes, fps=dataset.fps, known_names=names,
        proportions=proportions and why_not is None, order=names,
    )  # fmt: skip
    return update, why_not
