"""Run records: one JSON object per (method, dataset, ipc, arch, seed), appended to a JSONL file."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from benchsuite.plugins import bundled_plugin_dirs

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"


def record_key(r: dict[str, Any]) -> tuple:
    """What identifies a result: a rerun of the same key supersedes the earlier record."""
    return (r.get("protocol_hash"), r.get("method"), r.get("dataset"), r.get("ipc"), r.get("arch"), r.get("seed"))


def append_record(results_dir: Path, record: dict[str, Any]) -> Path:
    """Append one line and fsync it, so a killed run loses at most the cell in flight."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / RECORDS_FILE
    line = json.dumps(record, sort_keys=True, allow_nan=False, default=str)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def read_records(results_dir: Path) -> list[dict[str, Any]]:
    """All records in file order. A torn last line (the process was killed mid-write) is skipped."""
    path = Path(results_dir) / RECORDS_FILE
    if not path.exists():
        return []
    return list(_iter_lines(path))


def _iter_lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def latest_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record of each key (file order), e.g. an ``ok`` rerun after an ``error``."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in records:
        latest[record_key(r)] = r
    return list(latest.values())


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The suite's own commit (with ``+dirty`` when the tree has uncommitted changes), if known."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "benchsuite", "plugins", "baselines"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


SOURCE_SUFFIXES = (".py", ".toml")


def source_digest(roots: Iterable[Path]) -> str:
    """SHA-256 (16 hex digits) of the ``.py``/``.toml`` files under ``roots``, by their path
    relative to each root's parent and their bytes; caches and compiled files do not count."""
    h = hashlib.sha256()
    for root in roots:
        files = sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()
                       and "__pycache__" not in p.parts and "_bundled" not in p.relative_to(root).parts)
        for path in files:
            h.update(path.relative_to(root.parent).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The digest of the suite's own code: the package and its bundled method folders.

    It names the code a record came from where ``git`` cannot: an installed wheel has no
    repository, and a copied tree can carry git metadata of another commit. The bundled folders
    are hashed under their own names (``plugins/``, ``baselines/``), so a wheel and a checkout of
    the same code agree.
    """
    return source_digest([Path(__file__).resolve().parent, *bundled_plugin_dirs()])


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": device.type,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
