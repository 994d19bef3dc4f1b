"""Atomic file writes: a unique temporary file in the target's folder, then a rename.

A reader sees the old file or the whole new one, never a half-written one, and two writers of the
same path (two runs sharing a results folder or a cache) cannot write into each other's temporary
file: each gets its own from ``mkstemp``, and the last rename wins with a complete file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes(path: Path, data: bytes) -> None:
    with replacing(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def torch_save(payload: Any, path: Path) -> None:
    with replacing(path) as tmp:
        torch.save(payload, tmp)


def move_aside(path: Path, reason: str = "corrupt") -> Path:
    """Rename a bad file to a unique ``<name>.<reason>-N`` beside it (kept for inspection)."""
    path = Path(path)
    for n in range(1, 10_000):
        target = path.with_name(f"{path.name}.{reason}-{n}")
        if not target.exists():
            os.replace(path, target)
            return target
    raise OSError(f"too many {reason} copies of {path}; delete some")


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in words for the user. torch's own
    message for a pickle of arbitrary objects advises ``weights_only=False``, which is exactly what
    the suite must never do with a file it did not write, so it is not repeated."""
    if type(exc).__name__ == "UnpicklingError":
        return "it holds objects other than tensors, numbers and strings; such files are never loaded, as " \
               "loading them could run code"
    first = (str(exc).splitlines() or [""])[0][:160]
    return f"unreadable: {type(exc).__name__}: {first}" if first else f"unreadable: {type(exc).__name__}"
