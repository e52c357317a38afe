"""Shared plumbing of the subcommands: flag parsing, logging, error reporting, output paths."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger("rewardkit")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, not the one at set-up (test runners
    and notebooks swap it; a handler bound to a closed stream fails on every later record)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Logs go to stderr (results go to files, their paths to stdout)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("rewardkit").setLevel(level)


def parse_config[C](config_class: type[C], argv: Sequence[str], prog: str, description: str = "") -> C:
    """Parse `--a.b=value` flags into `config_class` (a dataclass), lerobot's style, via draccus."""
    import draccus

    del description  # draccus takes the help text from the config class docstring
    return draccus.parse(config_class, args=list(argv), prog=f"rewardkit {prog}")


def announce(label: str, path: str | Path) -> None:
    """Print where a result was written (stdout), one line per result."""
    print(f"{label}: {Path(path).resolve()}")


def run_command(main: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """Run a subcommand; bad input (a `RewardkitError`, a missing file) becomes one clear line and exit
    code 2. Every other exception is a bug and keeps its traceback."""
    from rewardkit.errors import RewardkitError

    setup_logging()
    try:
        return int(main(argv) or 0)
    except (RewardkitError, FileNotFoundError) as e:
        print(f"rewardkit: error: {e}", file=sys.stderr)
        return 2
