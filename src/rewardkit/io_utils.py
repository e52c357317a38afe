"""Atomic file writes: every result file rewardkit writes goes through here.

A file is written to a temporary name beside its target (same folder, same extension, so writers that
infer the format from the name still work), flushed to disk, then renamed onto the target with
`os.replace`. Readers see the old file or the new one, never half a file; a crash leaves at most a
hidden temporary file, which is removed when the write itself fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically. Returns `path`."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
