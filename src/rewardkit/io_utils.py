"""Atomic file writes: every result file rewardkit writes goes through here.

A file is written to a temporary name beside its target (same folder, same extension, so writers that
infer the format from the name still work), flushed to disk, then renamed onto the target with
`os.replace`. Readers see the old file or the new one, never half a file; a crash leaves at most a
hidden temporary file, which is removed when the write itself fails.

Modes: a new file gets the mode the user's umask gives a plain `open()` (mkstemp's owner-only 600 would
make shared datasets unreadable by others); a replaced file keeps its own mode.

`atomic_write_folder` does the same for a whole folder (a checkpoint, a dataset): built beside its target,
then swapped in, replacing an old folder as a whole (no stale file of it survives).

`check_overwrite` is the one rule for existing outputs: nothing is replaced unless the user said
`--overwrite=true`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from rewardkit.errors import RewardkitError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode_for(path: Path) -> int:
    """The mode `path` keeps when it exists, else what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def check_overwrite(path: str | Path, overwrite: bool, flag: str = "--overwrite=true") -> Path:
    """Refuse to replace an existing output unless `overwrite`; returns `path`.

    Call it before any work starts, so a refused run costs nothing and writes nothing.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise RewardkitError(
            f"{path} already exists; pass {flag} to replace it, or choose another output path"
        )
    return path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary_path)` to produce the file, then move it onto `path`. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    temporary = Path(name)
    try:
        write(temporary)
        with open(temporary, "rb+") as f:  # durable before it becomes visible (the cache resumes on it)
            os.fsync(f.fileno())
        os.chmod(temporary, file_mode_for(path))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically. Returns `path`."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def atomic_write_folder(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(folder)` to build a folder (`folder` does not exist yet: `write` creates it) in a
    temporary folder beside `path`, then move it to `path`, replacing whatever is there as a whole.

    Readers never see a half-built folder, nor old files mixed with new ones; between moving the old folder
    aside and the new one in, `path` is briefly absent. A failed write leaves `path` as it was and no
    temporary behind. Returns `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    built, aside = staging / "new", staging / "previous"
    try:
        write(built)
        if not built.is_dir():
            raise RewardkitError(f"nothing was written for {path} (the writer made no folder)")
        if path.exists() or path.is_symlink():
            path.rename(aside)
        try:
            built.rename(path)
        except BaseException:
            if aside.exists() or aside.is_symlink():
                aside.rename(path)  # put the old one back
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
