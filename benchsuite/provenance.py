"""Where a record came from: the suite's commit and code digest, the machine, the time."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import torch

from benchsuite.bundled import bundled_plugin_dirs


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
        # Float results on the CPU depend on the vector instructions the kernels use (AVX2 and
        # AVX-512 round differently), so the same commit can give other accuracies elsewhere.
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
