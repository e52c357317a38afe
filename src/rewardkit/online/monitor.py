"""`RewardMonitor`: any rewardkit model, one observation at a time, with task-complete and stall signals.

A robot loop or a gym env calls `monitor.step(observation)` once per control step. The monitor asks the
model's online adapter (`rewardkit.online.adapters`) for this step's progress / success probability
(the adapter encodes the one new frame and keeps the history the model needs), then turns that signal
into two decisions:

- **task complete** (an event, fires once per episode): the signal reaches `complete_threshold` and
  stays at or above `release_threshold` (hysteresis: a lower bar once armed, so noise around the
  threshold does not restart the count) for `hold_seconds`;
- **stalled** (a level): progress has not risen by more than `stall_epsilon` above its best value for
  `stall_seconds`.

The threshold and hold come, in this order, from the arguments, from a calibration (`calibration=` a
`calibration.json` written by `rewardkit calibrate`; `RewardMonitor.from_pretrained(folder)` reads the one
beside the model by default), else the defaults 0.9 and 0.5 s.

Time is the step count over `fps` when `fps` is given (deterministic, what a fixed-rate loop means),
the `timestamp` passed to `step` when given, else the wall clock.

An observation the model cannot use (non-finite or wrongly sized state, a float image outside [0, 1]) is
refused before it reaches the model's history. With `on_invalid="raise"` (the default) `step` raises
`InvalidObservation`; with `on_invalid="skip"` (a transient sensor glitch during a rollout) the step is
skipped: a warning is logged, the output repeats the last valid progress with `skipped=True`, neither the
model's history nor the completion and stall rules see it, and `skipped_steps` counts such steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.errors import RewardkitError
from rewardkit.models.base import RewardModel
from rewardkit.online.adapters import InvalidObservation, OnlineModel, make_online_model
from rewardkit.online.calibration import Calibration, calibration_beside, load_calibration

logger = logging.getLogger(__name__)

SIGNALS = ("auto", "progress", "success_prob")
ON_INVALID = ("raise", "skip")


@dataclass
class MonitorOutput:
    """The monitor's verdict on one step.

    Args:
        progress: the model's task progress in [0, 1] (a classifier's success probability).
        success_prob: P(task has succeeded) from a success head, else None.
        signal: the value the completion rule reads (success_prob when the model has one, else progress).
        completed: True on the single step at which task completion is detected (an event).
        done: True from that step on (a level), until `reset()`.
        stalled: no progress increase > stall_epsilon for stall_seconds (never while done).
        seconds_since_progress: time since progress last rose by more than stall_epsilon.
        step: index of this step since the last reset (0-based).
        time_s: this step's time since the last reset, in seconds.
        latency_ms: wall time of this `step` call, in milliseconds.
        extras: model-specific outputs (stage, action, ...).
        skipped: the observation was invalid and skipped (`on_invalid="skip"`); the values repeat the
            last valid step's.
    """

    progress: float
    success_prob: float | None
    signal: float
    completed: bool
    done: bool
    stalled: bool
    seconds_since_progress: float
    step: int
    time_s: float
    latency_ms: float
    extras: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


class RewardMonitor:
    """Online reward for a robot loop or gym env.

    Args:
        model: a rewardkit model (causal SARM, RewACT, success classifier), an `OnlineModel` adapter, or
            a function observation -> progress.
        fps: the control rate; with it, time is step / fps. None: `step(timestamp=...)` or wall clock.
        complete_threshold: the signal level that arms task completion (default: the calibration's, else 0.9).
        release_threshold: the level below which an armed completion is cancelled (hysteresis);
            default: the calibration's (= its threshold), else complete_threshold - 0.1.
        hold_seconds: how long the signal must stay armed before completion fires (0: at once; default:
            the calibration's, else 0.5).
        calibration: a `Calibration`, or the path of a calibration file (or of the folder holding
            `calibration.json`); its threshold, hold and signal are the defaults of the three arguments
            above and of `signal`.
        stall_seconds: how long without progress before `stalled` (None: never).
        stall_epsilon: the progress increase that counts as progress.
        signal: which output the completion rule reads: "progress", "success_prob", or "auto"
            (success_prob when the model gives one, else progress).
        on_invalid: "raise" (default) or "skip" an observation the model cannot use (see the module
            docstring).
        adapter_kwargs: passed to the model's online adapter (e.g. a task text for SARM).
    """

    def __init__(
        self,
        model: RewardModel | OnlineModel | Callable[[Mapping[str, Any]], Any],
        *,
        fps: float | None = None,
        complete_threshold: float | None = None,
        release_threshold: float | None = None,
        hold_seconds: float | None = None,
        stall_seconds: float | None = 5.0,
        stall_epsilon: float = 0.01,
        signal: str = "auto",
        on_invalid: str = "raise",
        calibration: Calibration | str | Path | None = None,
        **adapter_kwargs: Any,
    ):
        if calibration is not None and not isinstance(calibration, Calibration):
            calibration = load_calibration(calibration)
        self.calibration = calibration
        calibrated = calibration.monitor_kwargs() if calibration is not None else {}
        if complete_threshold is None:
            complete_threshold = calibrated.get("complete_threshold", 0.9)
            if release_threshold is None:
                release_threshold = calibrated.get("release_threshold")
        if hold_seconds is None:
            hold_seconds = calibrated.get("hold_seconds", 0.5)
        if signal == "auto" and calibration is not None:
            signal = calibration.signal  # the signal the threshold was measured on
        if release_threshold is None:
            release_threshold = complete_threshold - 0.1
        if not 0.0 <= release_threshold <= complete_threshold <= 1.0:
            raise RewardkitError(
                f"need 0 <= release_threshold <= complete_threshold <= 1, got {release_threshold}, "
                f"{complete_threshold}"
            )
        if hold_seconds < 0 or (stall_seconds is not None and stall_seconds <= 0) or stall_epsilon < 0:
            raise RewardkitError(
                "hold_seconds and stall_epsilon must be >= 0 and stall_seconds > 0 (or None)"
            )
        if fps is not None and fps <= 0:
            raise RewardkitError(f"fps must be positive, got {fps}")
        if signal not in SIGNALS:
            raise RewardkitError(f"signal must be one of {SIGNALS}, got {signal!r}")
        if on_invalid not in ON_INVALID:
            raise RewardkitError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
        self.on_invalid = on_invalid
        self.online: OnlineModel = make_online_model(model, **adapter_kwargs)
        self.fps = fps
        self.complete_threshold = complete_threshold
        self.release_threshold = release_threshold
        self.hold_seconds = hold_seconds
        self.stall_seconds = stall_seconds
        self.stall_epsilon = stall_epsilon
        self.signal = signal
        self.reset()

    @classmethod
    def from_pretrained(
        cls,
        model_path: str | Path,
        *,
        calibration: Calibration | str | Path | None = "auto",
        device: str | None = None,
        **kwargs: Any,
    ) -> RewardMonitor:
        """A monitor around the model at `model_path` (loaded with `rewardkit.load`).

        `calibration="auto"` (default) uses `<model_path>/calibration.json` when there is one (logged),
        None ignores it, a path or `Calibration` uses that one. `kwargs` go to `RewardMonitor`.
        """
        import rewardkit

        if isinstance(calibration, str) and calibration == "auto":
            calibration = calibration_beside(model_path)
            if calibration is not None:
                logger.info("completion rule from %s", calibration)
        return cls(rewardkit.load(model_path, device=device), calibration=calibration, **kwargs)

    def reset(self) -> None:
        """Start a new episode: clear the model's history and both rules."""
        self.online.reset()
        self.step_index = 0
        self._start_clock: float | None = None
        self._armed_since: float | None = None
        self._done = False
        self._best_progress: float | None = None
        self._last_progress_time = 0.0
        self.skipped_steps = 0
        self.last: MonitorOutput | None = None

    @property
    def done(self) -> bool:
        """Whether task completion has fired since the last reset."""
        return self._done

    def _now(self, timestamp: float | None) -> float:
        if self.fps is not None and timestamp is None:
            return self.step_index / self.fps
        clock = time.monotonic() if timestamp is None else float(timestamp)
        if self._start_clock is None:
            self._start_clock = clock
        return clock - self._start_clock

    def step(self, observation: Mapping[str, Any], timestamp: float | None = None) -> MonitorOutput:
        """Feed one observation (lerobot naming; see `rewardkit.online.adapters`) and get this step's
        progress, success probability, task-complete event and stall signal."""
        started = time.perf_counter()
        now = self._now(timestamp)
        try:
            features = self.online.encode(observation)
        except InvalidObservation as e:
            if self.on_invalid == "raise":
                raise
            return self._skip(e, now, started)
        output = self.online.step_features(features)
        progress = float(output.progress)
        success_prob = None if output.success_prob is None else float(output.success_prob)
        use_success = self.signal == "success_prob" or (self.signal == "auto" and success_prob is not None)
        if use_success and success_prob is None:
            raise RewardkitError("signal='success_prob' but the model gives no success probability")
        value = success_prob if use_success else progress

        completed = False
        if not self._done:
            if self._armed_since is None:
                if value >= self.complete_threshold:
                    self._armed_since = now
            elif value < self.release_threshold:
                self._armed_since = None
            if self._armed_since is not None and now - self._armed_since >= self.hold_seconds - 1e-9:
                self._done = completed = True

        if self._best_progress is None or progress > self._best_progress + self.stall_epsilon:
            self._best_progress = progress
            self._last_progress_time = now
        since = now - self._last_progress_time
        stalled = self.stall_seconds is not None and not self._done and since >= self.stall_seconds - 1e-9

        self.last = MonitorOutput(
            progress=progress,
            success_prob=success_prob,
            signal=value,
            completed=completed,
            done=self._done,
            stalled=stalled,
            seconds_since_progress=since,
            step=self.step_index,
            time_s=now,
            latency_ms=(time.perf_counter() - started) * 1e3,
            extras=dict(output.extras),
        )
        self.step_index += 1
        return self.last

    def _skip(self, error: InvalidObservation, now: float, started: float) -> MonitorOutput:
        self.skipped_steps += 1
        logger.warning("step %d skipped: %s", self.step_index, error)
        last = self.last
        output = MonitorOutput(
            progress=last.progress if last else 0.0,
            success_prob=last.success_prob if last else None,
            signal=last.signal if last else 0.0,
            completed=False,
            done=self._done,
            stalled=last.stalled if last else False,
            seconds_since_progress=now - self._last_progress_time,
            step=self.step_index,
            time_s=now,
            latency_ms=(time.perf_counter() - started) * 1e3,
            skipped=True,
        )
        self.step_index += 1
        return output
