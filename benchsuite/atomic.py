"""Atomic file writes: a unique temporary file in the target's folder, then a rename.

A reader sees the old file or the whole new one, never a half-written one, and two writers of the
same path (two runs sharing a results folder or a cache) cannot write into each other's temporary
file: each creates its own under a random name (``O_EXCL``), and the last rename wins with a complete
file.

The temporary file is created with mode ``0o666`` like any file ``open()`` creates, so the kernel
applies the process's umask (and a folder's default ACL) and a replaced file gets the permissions
``records.jsonl`` gets from its plain ``open(..., "a")``: usually 0644. ``mkstemp`` would make every
leaderboard, summary, site page and saved set 0600, unreadable to the rest of a team sharing the
folder. The kernel applies the umask, so it is never read: ``os.umask`` can only read it by setting
it, a race with other threads creating files meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import secrets
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
    tmp = _create_temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


NEW_FILE_MODE = 0o666  # before the umask, as open() creates files


def _create_temporary(path: Path) -> Path:
    """Create an empty file under a fresh random name beside ``path``; creation errors name
    ``path`` itself, which is what the user asked to write."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), NEW_FILE_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not find a free temporary name beside {path}")


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
