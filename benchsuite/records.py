"""Run records: one JSON object per (method, dataset, ipc, arch, seed), appended to a JSONL file."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import torch

from benchsuite.locks import records_lock
from benchsuite.plugins import bundled_plugin_dirs

log = logging.getLogger("benchsuite")

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"


def record_key(r: dict[str, Any]) -> tuple:
    """What identifies a result: a rerun of the same key supersedes the earlier record."""
    return (r.get("protocol_hash"), r.get("method"), r.get("dataset"), r.get("ipc"), r.get("arch"), r.get("seed"))


def non_finite_fields(value: Any, where: str = "") -> list[str]:
    """Dotted paths of every NaN or infinite number in a record (JSON cannot hold them honestly)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where or "<value>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_fields(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite_fields(v, f"{where}[{i}]")]
    return []


def append_record(results_dir: Path, record: dict[str, Any]) -> Path:
    """Append one line and fsync it, so a killed run loses at most the cell in flight.

    Appends from several processes are serialised by a lock file, and a file whose last line was
    torn (a writer killed mid-line) first gets the newline it lacks, so the torn fragment stays one
    bad line instead of swallowing this record. A record holding NaN or infinity is refused.
    """
    bad = non_finite_fields(record)
    if bad:
        raise ValueError(f"a record may not hold NaN or infinity; found them in {', '.join(bad)}")
    line = json.dumps(record, sort_keys=True, allow_nan=False, default=str).encode("utf-8") + b"\n"
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / RECORDS_FILE
    with records_lock(results_dir):
        with open(path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    return path


_ALREADY_WARNED: set[tuple] = set()


@dataclass
class SkippedLines:
    """Lines of a records file that were not read as records, by reason."""

    path: Path
    not_records: list[tuple[int, str]] = field(default_factory=list)
    unknown_versions: list[tuple[int, Any]] = field(default_factory=list)

    def warn(self) -> None:
        # Once per process for the same lines: a run reads the file at start and again to report.
        said = (str(self.path), tuple(self.not_records), tuple(map(repr, self.unknown_versions)))
        if said in _ALREADY_WARNED:
            return
        _ALREADY_WARNED.add(said)
        if self.not_records:
            detail = "; ".join(f"line {n}: {why}" for n, why in self.not_records[:10])
            more = f"; and {len(self.not_records) - 10} more" if len(self.not_records) > 10 else ""
            log.warning("%s: skipped %d line(s) that are not run records (%s%s); the file is left as it is",
                        self.path, len(self.not_records), detail, more)
        if self.unknown_versions:
            detail = "; ".join(f"line {n}: schema_version {v!r}" for n, v in self.unknown_versions[:10])
            log.warning("%s: skipped %d record(s) of a schema this suite does not know (%s); it reads "
                        "schema_version %d: upgrade benchsuite to rank them", self.path,
                        len(self.unknown_versions), detail, SCHEMA_VERSION)


# The fields every record needs to be keyed and ranked, with their JSON types.
_KEY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "protocol_hash": str, "method": str, "dataset": str, "ipc": int, "arch": str, "seed": int, "status": str,
}


def record_problem(obj: Any) -> str | None:
    """Why a parsed JSON value is not a usable record, or ``None`` when it is one."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    for name, kind in _KEY_FIELDS.items():
        value = obj.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            shown = "missing" if name not in obj else f"{type(value).__name__} {json.dumps(value)[:40]}"
            return f"{name!r} is {shown}, expected {kind.__name__}"
    if obj["status"] not in ("ok", "error"):
        return f"'status' is {obj['status']!r}, expected 'ok' or 'error'"
    if obj["status"] == "ok":
        acc = obj.get("accuracy")
        values = acc.get("values") if isinstance(acc, dict) else None
        if not isinstance(values, list) or not values or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            return "an ok record without a non-empty list of finite accuracy values"
    return None


def read_records(results_dir: Path, warn: bool = True) -> list[dict[str, Any]]:
    """All usable records in file order.

    Lines that are not UTF-8, not JSON, or not a record object (a torn last line among them) are
    skipped, and so are records of an unknown ``schema_version``; with ``warn`` each kind is
    reported once per file, with line numbers. The file is never rewritten.
    """
    path = Path(results_dir) / RECORDS_FILE
    if not path.exists():
        return []
    records, skipped = [], SkippedLines(path)
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                skipped.not_records.append((number, "not UTF-8"))
                continue
            except json.JSONDecodeError:
                skipped.not_records.append((number, "not valid JSON (a torn line?)"))
                continue
            if isinstance(obj, dict) and obj.get("schema_version") != SCHEMA_VERSION:
                skipped.unknown_versions.append((number, obj.get("schema_version")))
                continue
            problem = record_problem(obj)
            if problem:
                skipped.not_records.append((number, problem))
                continue
            records.append(obj)
    if warn:
        skipped.warn()
    return records


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
