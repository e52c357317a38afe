"""Shared plumbing of the subcommands: flag parsing, logging, error reporting, output paths."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import sys
import textwrap
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from rewardkit.errors import RewardkitError

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


def renamed_flags(argv: Sequence[str], renamed: dict[str, str], prog: str) -> list[str]:
    """`argv` with deprecated flag names replaced by their new names (`--old=v` and `--old v`), each
    replacement announced once with a deprecation warning naming the new flag."""
    out = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if name in renamed:
            new = renamed[name]
            warnings.warn(
                f"rewardkit {prog}: {name} is deprecated and will be removed in the next release; use {new}",
                DeprecationWarning,
                stacklevel=3,
            )
            logger.warning("%s is deprecated; use %s (the old name works for this release only)", name, new)
            arg = f"{new}{sep}{value}"
        out.append(arg)
    return out


def parse_config[C](
    config_class: type[C],
    argv: Sequence[str],
    prog: str,
    description: str = "",
    renamed: dict[str, str] | None = None,
) -> C:
    """Parse `--a.b=value` flags into `config_class` (a dataclass), lerobot's style, via draccus.

    `--help` prints every flag with its type, default and documentation (`help_text`) and exits 0.
    `renamed` maps deprecated flag names to their new ones (still accepted, with a warning).
    """
    import draccus

    argv = renamed_flags(argv, renamed or {}, prog)
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text(config_class, f"rewardkit {prog}", description))
        raise SystemExit(0)
    return draccus.parse(config_class, args=list(argv), prog=f"rewardkit {prog}")


def _documented_args(cls: type) -> dict[str, str]:
    """Field name -> its text in the class docstring's `Args:` section (continuation lines joined)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        lines = inspect.cleandoc(klass.__dict__.get("__doc__") or "").splitlines()
        current = None
        inside = False
        for line in lines:
            if line.strip() == "Args:":
                inside = True
                continue
            if not inside:
                continue
            match = re.match(r"^ {4}(\w+)(?: \(.*?\))?: ?(.*)$", line)
            if match:
                current = match.group(1)
                docs[current] = match.group(2).strip()
            elif current and line.startswith(" " * 8):
                docs[current] += " " + line.strip()
            elif line.strip():
                current, inside = None, False
    return docs


def _flag_lines(cls: type, prefix: str) -> list[str]:
    docs = _documented_args(cls)
    lines: list[str] = []
    nested: list[tuple[str, type]] = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init or field.name.startswith("_"):
            continue
        kind = hints.get(field.name, field.type)
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        if dataclasses.is_dataclass(default):
            nested.append((field.name, type(default)))
            continue
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            nested.append((field.name, kind))
            continue
        name = getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
        shown = "required" if default is dataclasses.MISSING else f"default: {default!r}"
        lines.append(f"  --{prefix}{field.name} {name}  ({shown})")
        if docs.get(field.name):
            lines.extend("        " + chunk for chunk in textwrap.wrap(docs[field.name], 92))
    for name, kind in nested:
        lines.append("")
        lines.append(f"{prefix}{name} ({kind.__name__}):")
        lines.extend(_flag_lines(kind, f"{prefix}{name}."))
    return lines


def help_text(config_class: type, prog: str, description: str = "") -> str:
    """`--help` of a subcommand: usage, the class summary, then every flag (nested `--a.b` included)
    with its type, default and the text of the docstring's `Args:` section."""
    summary = inspect.cleandoc(config_class.__doc__ or "").split("\n\n")[0]
    head = [f"usage: {prog} [--flag=value ...]", ""]
    if description:
        head += [description, ""]
    if summary:
        head += [summary, ""]
    return "\n".join([*head, "flags:", *_flag_lines(config_class, "")])


@dataclasses.dataclass
class ModelConfig:
    """The reward model a command runs (`--model.path=...`, or `--model.type=... --model.vlm=...`).

    Args:
        path: a checkpoint folder or hub repo id (any rewardkit model, a RewACT policy, a lerobot SARM
            checkpoint), or a named model spec "<type>[:<argument>]" (e.g. "topreward:Qwen/Qwen3-VL-2B-Instruct").
        type: a named model (topreward, robometer, vlm_progress) built here instead of loaded from `path`.
        vlm: the named model's main argument: the VLM (hub id or local folder) for topreward and robometer,
            the served model's name for vlm_progress.
        options: further options of the named model, e.g. `--model.options='{base_url: http://localhost:8000/v1}'`.
        device: where to run it (default: the checkpoint's device).
    """

    path: str | None = None
    type: str | None = None
    vlm: str | None = None
    options: dict = dataclasses.field(default_factory=dict)
    device: str | None = None

    @property
    def spec(self) -> str | None:
        """What `rewardkit.load` is given: the path, or "<type>[:<vlm>]"."""
        if self.type and self.path:
            raise RewardkitError("give --model.path or --model.type (a named model), not both")
        if self.type:
            return f"{self.type}:{self.vlm}" if self.vlm else self.type
        return self.path

    def load(self, device: str | None = None):
        """The model, in eval mode (`rewardkit.load`)."""
        import rewardkit

        if not self.spec:
            raise RewardkitError("give the model: --model.path=CHECKPOINT or --model.type=NAME")
        return rewardkit.load(self.spec, device=device or self.device, **self.options)


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
