"""Lock files that let several runs share one results folder.

Every append to ``records.jsonl`` holds the records lock, so lines from two processes never
interleave. A cell's lock is held while the cell distills and evaluates, so a second run never
runs the same cell at the same time; it goes on with other cells and comes back to wait for it.
The locks are operating-system file locks (``filelock``): they are released when a process dies,
so a killed run never leaves a cell locked.

A cache entry (a folder of expert trajectories, a generative prior) is built under its
``build_lock``: a second process that needs the same entry waits, then finds it built and loads it,
so no two workers ever build the same entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = ["FileLock", "Timeout", "LOCK_DIR", "records_lock", "cell_lock", "build_lock"]

LOCK_DIR = ".locks"


def records_lock(results_dir: Path) -> FileLock:
    folder = Path(results_dir) / LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / "records.lock"))


def cell_lock(results_dir: Path, protocol_hash: str, method: str, dataset: str, ipc: int, seed: int) -> FileLock:
    """The lock of one (protocol, method, dataset, IPC, seed) cell; its name stays short and safe
    whatever the method's name holds."""
    digest = hashlib.sha256(f"{protocol_hash}\0{method}\0{dataset}\0{ipc}\0{seed}".encode()).hexdigest()[:16]
    folder = Path(results_dir) / LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / f"cell-{digest}.lock"))


def build_lock(entry: Path) -> FileLock:
    """The lock of one cache entry (a file or folder path), kept beside it as ``<name>.lock``."""
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(entry.parent / f"{entry.name}.lock"))
