"""The run record: one typed :class:`RunRecord` per (method, dataset, ipc, arch, seed), stored as a
JSON line in ``records.jsonl``.

A record is built in one place (:meth:`RunRecord.ok`, :meth:`RunRecord.failed`) and read back in one
place (:func:`read_records`), which applies the chain of ``migrate_N_to_N+1`` functions to older
lines, so reports always see the current shape while files on disk are never rewritten. The JSON
Schema and the reference page of the fields are generated from this dataclass
(:mod:`benchsuite.record_schema`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import traceback
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from benchsuite.errors import BenchsuiteError
from benchsuite.locks import records_lock
from benchsuite.record_checks import record_problems

log = logging.getLogger("benchsuite")

SCHEMA_VERSION = 3
RECORDS_FILE = "records.jsonl"


def doc(text: str, default: Any = None) -> Any:
    """A dataclass field with its reference-page description."""
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class Accuracy:
    """Final-epoch test accuracy (%) of each evaluation model."""

    values: list[float] = doc("one accuracy per evaluation model, in the order they were trained")
    mean: float | None = doc("mean of `values`")
    std: float | None = doc("population standard deviation of `values` (as the DC code base reports)")
    n: int | None = doc("number of evaluation models")

    @classmethod
    def of(cls, values: list[float]) -> "Accuracy":
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return cls(values=[round(v, 4) for v in values], mean=round(mean, 4), std=round(std, 4), n=len(values))


@dataclass(frozen=True)
class ErrorInfo:
    """Why a cell failed."""

    type: str = doc("the exception's class name, e.g. `ContractError`, `MethodError`, `SystemExit`")
    message: str = doc("what went wrong and what to do about it")
    traceback: str = doc("the last 4,000 characters of the traceback", "")
    expected: bool = doc("true for the suite's own typed errors (a known failure mode), false for a crash", False)


@dataclass(frozen=True)
class RunRecord:
    """One evaluation of one distilled set on one architecture, or the error that prevented it."""

    # -- the key ---------------------------------------------------------------------------
    protocol_hash: str = doc("hash of every protocol field that can change a result (see Protocols)")
    method: str = doc("registered method name")
    dataset: str = doc("canonical dataset name")
    ipc: int = doc("images per class; 0 for IPC-independent methods (the `full` upper bound)")
    arch: str = doc("evaluation architecture")
    seed: int = doc("distillation seed")
    status: str = doc("`ok` or `error`")
    schema_version: int = doc("version of this record format", SCHEMA_VERSION)
    # -- the protocol ----------------------------------------------------------------------
    protocol: str | None = doc("protocol name")
    protocol_budget: str | None = doc("the methods' budget table the protocol selects: smoke, quick or paper")
    distill_arch: str | None = doc("the architecture the method distilled with (the protocol's first arch)")
    division: str | None = doc("`closed` (hard labels, fixed lr) or `open` (a method's soft labels and lr)")
    # -- the method and its set ------------------------------------------------------------
    method_version: str | None = doc("the method class's `version`")
    method_kind: str | None = doc("`distill` or `select`")
    method_config: dict[str, Any] | None = doc("the resolved hyperparameters, `--set` overrides included")
    method_overrides: dict[str, Any] | None = doc("the `--set` overrides of this cell, when it had any: the record is "
                                                  "shown as `method [key=value]`, never under the plain name")
    config_digest: str | None = doc("SHA-256 (16 hex) of `method_config`: part of the result's identity")
    source_digest: str | None = doc("SHA-256 (16 hex) of the method's source: its module or package, the plugin "
                                    "modules and `benchsuite.ops` modules it imports (see Result identity)")
    set_identity: str | None = doc("digest of everything that identifies the distilled set (protocol hash, method, "
                                   "version, config and source digests, dataset fingerprint, IPC, seed); a saved set "
                                   "is reused only under the same one")
    storage_bytes: int | None = doc("bytes the method must store to reproduce its images")
    num_images: int | None = doc("images the evaluator trained on")
    images_per_class: list[int] | None = doc("images per class of the set (hard labels)")
    learned_lr: float | None = doc("the method's learned evaluation step size, if any (MTT, PAD)")
    input_transform: dict[str, Any] | None = doc("the set's input space when not the normalised one (ZCA)")
    method_extra: dict[str, Any] | None = doc("method-specific facts (experts, prior, ...)")
    artifact: str | None = doc("path of the saved distilled set (none for `full`)")
    reused_artifact: bool | None = doc("true when the saved set was reused instead of distilled again")
    # -- the data --------------------------------------------------------------------------
    dataset_provenance: str | None = doc("where the dataset was read from")
    dataset_fingerprint: str | None = doc("SHA-256 (16 hex) of the dataset's contents (train and test images and "
                                          "labels as read): part of the result's identity")
    test_set: str | None = doc("`official`, or a description of a substitute test set")
    train_images: int | None = doc("real training images the method saw")
    test_images: int | None = doc("test images")
    # -- the result ------------------------------------------------------------------------
    accuracy: Accuracy | None = doc("test accuracy of the evaluation models (ok records)")
    error: ErrorInfo | None = doc("the failure (error records)")
    eval_epochs: int | None = doc("epochs each evaluation model trained")
    eval_lr: float | None = doc("the evaluation learning rate used")
    eval_soft_labels: bool | None = doc("whether the evaluator trained on soft labels")
    # -- costs -----------------------------------------------------------------------------
    distill_seconds: float | None = doc("wall time of distillation (of the original run when reused)")
    distill_peak_memory_bytes: int | None = doc("peak memory during distillation (see memory_kind)")
    memory_kind: str | None = doc("`rss`: the process's peak resident memory; `cuda`: peak allocated")
    eval_seconds: float | None = doc("wall time of this architecture's evaluation")
    eval_train_seconds: float | None = doc("of which training the evaluation models")
    eval_test_seconds: float | None = doc("of which testing them")
    eval_peak_memory_bytes: int | None = doc("peak memory during evaluation")
    # -- provenance ------------------------------------------------------------------------
    machine: dict[str, Any] | None = doc("device, its name, torch, python, platform, cores, threads, CPU model and "
                                         "vector capability (AVX2, AVX512)")
    commit: str | None = doc("the suite's git commit, `+dirty` when its code was modified")
    code_digest: str | None = doc("SHA-256 (16 hex) of the package's and bundled methods' .py/.toml files")
    started_at: str | None = doc("UTC time the cell started (ISO 8601)")
    finished_at: str | None = doc("UTC time this record was made (ISO 8601)")

    # -- building (the one place records are made) -----------------------------------------
    @classmethod
    def ok(cls, facts: dict[str, Any], *, arch: str, accuracies: list[float], **measured: Any) -> "RunRecord":
        """An ``ok`` record from the cell's facts and this architecture's measurements."""
        return cls._make(facts, arch=arch, status="ok", accuracy=Accuracy.of(accuracies), **measured)

    @classmethod
    def failed(cls, facts: dict[str, Any], *, arch: str, exc: BaseException, finished_at: str | None = None
               ) -> "RunRecord":
        """An ``error`` record naming ``exc``; the facts gathered before the failure are kept."""
        from benchsuite.errors import IsolatedFailure

        if isinstance(exc, IsolatedFailure):  # raised where the method ran, in its own process
            error = ErrorInfo(type=exc.type_name, message=exc.message, traceback=exc.traceback_text[-4000:],
                              expected=exc.expected)
        else:
            message = str(exc) or type(exc).__name__
            if isinstance(exc, SystemExit):
                message = f"the cell called sys.exit({exc.code!r}); a method must raise an exception instead"
            error = ErrorInfo(type=type(exc).__name__, message=message,
                              traceback="".join(traceback.format_exception(exc))[-4000:],
                              expected=isinstance(exc, BenchsuiteError))
        kept = {k: v for k, v in facts.items() if not non_finite_fields(v)}
        return cls._make(kept, arch=arch, status="error", error=error, finished_at=finished_at)

    @classmethod
    def _make(cls, facts: dict[str, Any], **fields: Any) -> "RunRecord":
        unknown = sorted(set(facts) - FIELD_NAMES)
        if unknown:
            raise TypeError(f"not RunRecord fields: {unknown}")
        return cls(**(facts | fields))

    # -- JSON ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``records.jsonl`` (fields that are ``None`` are left out)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "RunRecord":
        """A record from a current-version JSON object; :class:`RecordFormatError` names the first
        field of the wrong type. Keys this version does not know are ignored."""
        values = {}
        for name, hint in _HINTS.items():
            if name not in obj:
                continue
            problem = _type_problem(obj[name], hint)
            if problem:
                raise RecordFormatError(f"{name!r} is {_shown(obj[name])}, expected {problem}")
            value = obj[name]
            nested = _dataclass_of(hint)
            values[name] = _build(nested, value) if nested is not None and value is not None else value
        missing = [f.name for f in dataclasses.fields(cls) if f.name in KEY_FIELDS and f.name not in values]
        if missing:
            raise RecordFormatError(f"{missing[0]!r} is missing")
        if values["status"] not in ("ok", "error"):
            raise RecordFormatError(f"'status' is {values['status']!r}, expected 'ok' or 'error'")
        record = cls(**values)
        if record.status == "ok" and (record.accuracy is None or not record.accuracy.values):
            raise RecordFormatError("an ok record without accuracy values")
        bad = non_finite_fields(obj)
        if bad:
            raise RecordFormatError(f"non-finite numbers in {', '.join(bad)}")
        return record

    @property
    def key(self) -> tuple:
        """The grid cell (and architecture) a record belongs to, whatever code or config made it."""
        return (self.protocol_hash, self.method, self.dataset, self.ipc, self.arch, self.seed)

    @property
    def identity(self) -> tuple:
        """What identifies a result: the cell and everything that changes its number (method
        version, config digest, source digest, dataset fingerprint). A rerun of the same identity
        supersedes the earlier record; a different identity is a different result."""
        return (*self.key, self.method_version, self.config_digest, self.source_digest, self.dataset_fingerprint)

    @property
    def display_name(self) -> str:
        """The method's name as tables show it: ``dm [iterations=50]`` for a cell run with overrides."""
        from benchsuite.identity import display_name

        return display_name(self.method, self.method_overrides)


KEY_FIELDS = ("protocol_hash", "method", "dataset", "ipc", "arch", "seed", "status")
FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(RunRecord))


class RecordFormatError(BenchsuiteError):
    """A JSON object is not a run record of the expected shape."""


# -- type checking from the dataclass's annotations ------------------------------------------

_HINTS = typing.get_type_hints(RunRecord)


def _dataclass_of(hint: Any) -> type | None:
    for arg in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _build(cls: type, value: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in value.items() if k in names})


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {json.dumps(value, default=str)[:40]}"


def _type_problem(value: Any, hint: Any) -> str | None:
    """``None`` when the JSON ``value`` fits the annotation ``hint``, else what was expected."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = [_type_problem(value, a) for a in args if a is not type(None)]
        return None if any(p is None for p in problems) else " or ".join(p for p in problems if p)
    if hint is Any:
        return None
    if hint is bool:
        return None if isinstance(value, bool) else "bool"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "int"
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "number"
    if hint is str:
        return None if isinstance(value, str) else "str"
    if origin is list:
        if not isinstance(value, list):
            return "list"
        item = args[0] if args else Any
        return next((f"list of {p}" for v in value if (p := _type_problem(v, item))), None)
    if origin is dict:
        return None if isinstance(value, dict) else "object"
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            return "object"
        sub = typing.get_type_hints(hint)
        for f in dataclasses.fields(hint):
            if f.name not in value:
                if f.default is dataclasses.MISSING:
                    return f"object with {f.name!r}"
                continue
            problem = _type_problem(value[f.name], sub[f.name])
            if problem:
                return f"object whose {f.name!r} is {problem}"
        return None
    return None


# -- migrations --------------------------------------------------------------------------------


def migrate_1_to_2(obj: dict[str, Any]) -> dict[str, Any]:
    """Version 2 is the typed record. Version-1 records made before the protocol hash left out the
    grid axes (datasets, IPCs, seeds, evaluation archs) carry the old hash of a built-in protocol:
    they get the new one (and their artifact path with it), so they rank with current records. No
    result changes; only the key does."""
    from benchsuite.protocol import available_protocols, digest, load_protocol

    renames = _old_builtin_hashes(available_protocols, load_protocol, digest)
    hit = renames.get(obj.get("protocol_hash"))
    if hit and obj.get("protocol") == hit[0]:
        name, new = hit
        old = obj["protocol_hash"]
        obj = obj | {"protocol_hash": new}
        if isinstance(obj.get("artifact"), str):
            obj["artifact"] = obj["artifact"].replace(f"{name}-{old}", f"{name}-{new}")
    return obj | {"schema_version": 2}


_RENAMES: dict[str, tuple[str, str]] | None = None


def _old_builtin_hashes(available: Callable, protocol_named: Callable, digest: Callable) -> dict[str, tuple[str, str]]:
    global _RENAMES
    if _RENAMES is None:
        renames = {}
        for name in available():
            p = protocol_named(name)
            fields = p.as_dict()
            fields.pop("description")
            fields.pop("cell_timeout", None)  # added after these hashes; never part of one
            renames[digest(fields)] = (p.name, p.hash)  # the hash before it left out the grid axes
        _RENAMES = renames
    return _RENAMES


def migrate_2_to_3(obj: dict[str, Any]) -> dict[str, Any]:
    """Version 3 adds the result's identity (config and source digests, dataset fingerprint, set
    identity, the `--set` overrides). A version-2 record gets the digest of the `method_config` it
    stored; its source digest and dataset fingerprint stay unknown, so reports mark it stale (its
    code cannot be compared with the installed method) and a rerun runs its cell again."""
    from benchsuite.identity import config_digest

    out = obj | {"schema_version": 3}
    if isinstance(obj.get("method_config"), dict) and "config_digest" not in obj:
        out["config_digest"] = config_digest(obj["method_config"])
    return out


#: ``MIGRATIONS[n]`` turns a version-``n`` JSON object into version ``n + 1``.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: migrate_1_to_2, 2: migrate_2_to_3}


def migrate(obj: dict[str, Any]) -> dict[str, Any]:
    """Apply the migrations from the object's ``schema_version`` up to :data:`SCHEMA_VERSION`."""
    version = obj.get("schema_version")
    while isinstance(version, int) and not isinstance(version, bool) and version in MIGRATIONS:
        obj = MIGRATIONS[version](obj)
        version = obj.get("schema_version")
    return obj


# -- the file ----------------------------------------------------------------------------------


def non_finite_fields(value: Any, where: str = "") -> list[str]:
    """Dotted paths of every NaN or infinite number in a value (JSON cannot hold them honestly)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where or "<value>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_fields(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite_fields(v, f"{where}[{i}]")]
    return []


def append_record(results_dir: Path, record: RunRecord | dict[str, Any]) -> Path:
    """Append one line and fsync it, so a killed run loses at most the cell in flight.

    Appends from several processes are serialised by a lock file, and a file whose last line was
    torn (a writer killed mid-line) first gets the newline it lacks, so the torn fragment stays one
    bad line instead of swallowing this record. A record holding NaN or infinity is refused.
    """
    obj = record.to_json() if isinstance(record, RunRecord) else record
    bad = non_finite_fields(obj)
    if bad:
        raise ValueError(f"a record may not hold NaN or infinity; found them in {', '.join(bad)}")
    line = json.dumps(obj, sort_keys=True, allow_nan=False, default=str).encode("utf-8") + b"\n"
    results_dir = Path(results_dir)
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
    #: records that parse but fail :mod:`benchsuite.record_checks` (an accuracy of 250, ...)
    impossible: list[tuple[int, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.not_records) + len(self.unknown_versions) + len(self.impossible)

    def warn(self) -> None:
        # Once per process for the same lines: a run reads the file at start and again to report.
        said = (str(self.path), tuple(self.not_records), tuple(map(repr, self.unknown_versions)),
                tuple(self.impossible))
        if said in _ALREADY_WARNED:
            return
        _ALREADY_WARNED.add(said)
        if self.not_records:
            log.warning("%s: skipped %d line(s) that are not run records (%s); the file is left as it is",
                        self.path, len(self.not_records), _lines(self.not_records))
        if self.unknown_versions:
            detail = "; ".join(f"line {n}: schema_version {v!r}" for n, v in self.unknown_versions[:10])
            log.warning("%s: skipped %d record(s) of a schema this suite does not know (%s); it reads "
                        "schema_version 1 to %d: upgrade benchsuite to rank them", self.path,
                        len(self.unknown_versions), detail, SCHEMA_VERSION)
        if self.impossible:
            log.warning("%s: left out %d record(s) whose numbers no run can produce (%s); they are not ranked "
                        "and their cells run again; the file is left as it is", self.path,
                        len(self.impossible), _lines(self.impossible))


def _lines(found: list[tuple[int, str]], most: int = 10) -> str:
    detail = "; ".join(f"line {n}: {why}" for n, why in found[:most])
    return detail + (f"; and {len(found) - most} more" if len(found) > most else "")


def read_records(results_dir: Path, warn: bool = True, containers: Mapping[str, bool] | None = None
                 ) -> list[RunRecord]:
    """All usable records in file order, migrated to the current version.

    Lines that are not UTF-8, not JSON, or not a record object (a torn last line among them) are
    skipped, and so are records of a ``schema_version`` no migration reaches and records that fail
    the checks of :mod:`benchsuite.record_checks` (``containers``: installed method names and
    whether each is a container, when the caller knows them); with ``warn`` each kind is reported
    once per file, with line numbers. The file is never rewritten.
    """
    records, skipped = read_record_file(results_dir, containers)
    if warn:
        skipped.warn()
    return records


def read_record_file(results_dir: Path, containers: Mapping[str, bool] | None = None
                     ) -> tuple[list[RunRecord], SkippedLines]:
    """:func:`read_records` without the warning: the records and the lines it left out."""
    path = Path(results_dir) / RECORDS_FILE
    records: list[RunRecord] = []
    skipped = SkippedLines(path)
    if not path.exists():
        return records, skipped
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
            if not isinstance(obj, dict):
                skipped.not_records.append((number, f"a JSON {type(obj).__name__}, not an object"))
                continue
            obj = migrate(obj)
            if obj.get("schema_version") != SCHEMA_VERSION:
                skipped.unknown_versions.append((number, obj.get("schema_version")))
                continue
            try:
                record = RunRecord.from_json(obj)
            except RecordFormatError as exc:
                skipped.not_records.append((number, str(exc)))
                continue
            problems = record_problems(record, containers)
            if problems:
                skipped.impossible.append((number, "; ".join(problems)))
                continue
            records.append(record)
    return records, skipped


def latest_records(records: list[RunRecord]) -> list[RunRecord]:
    """The last record of each identity (file order), e.g. an ``ok`` rerun after an ``error``.
    Records of the same cell with another identity (other config, code or data) are kept: they
    are other results, which reports mark stale or show under their own name."""
    latest: dict[tuple, RunRecord] = {}
    for r in records:
        latest[r.identity] = r
    return list(latest.values())
