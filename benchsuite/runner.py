"""Plan the grid of a protocol, run each cell, turn every outcome into records.

A cell is (method, dataset, ipc, seed): the method distills once, then every protocol architecture
evaluates the set, one record each. Records are appended and flushed as they are made, so killing
the process loses only the cell in flight; a rerun skips what already has an ``ok`` record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from benchsuite import atomic, preflight
from benchsuite.api import Method, RunContext, SyntheticSet
from benchsuite.contract import check_synthetic_set
from benchsuite.data import DataSources, LoadedDataset, load_dataset
from benchsuite.errors import ArtifactError, BenchsuiteError, ConfigError, ContractError, MethodError
from benchsuite.locks import Timeout as LockTimeout
from benchsuite.locks import cell_lock
from benchsuite.evaluate import evaluate_synset, eval_space_testset
from benchsuite.measure import measure
from benchsuite.modeling import model_factory
from benchsuite.plugins import PluginSet
from benchsuite.progress import Progress, say
from benchsuite.protocol import Protocol
from benchsuite.records import (
    SCHEMA_VERSION,
    append_record,
    code_digest,
    git_commit,
    latest_records,
    machine_info,
    non_finite_fields,
    now_iso,
    read_records,
    record_key,
)

log = logging.getLogger("benchsuite")

CACHE_ENV = "BENCHSUITE_CACHE"


def default_cache_dir() -> Path:
    """``$BENCHSUITE_CACHE``, else the user cache folder (``$XDG_CACHE_HOME/benchsuite``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "benchsuite"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu or cuda[:N]")
    return device


def stable_seed(*parts: Any) -> int:
    """A seed from names and numbers that is the same on every machine and Python run."""
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class Cell:
    method: str
    dataset: str
    ipc: int
    seed: int

    def label(self) -> str:
        return f"{self.method} {self.dataset} ipc{self.ipc} seed{self.seed}"


@dataclass
class RunOptions:
    results_dir: Path = Path("results")
    cache_dir: Path = field(default_factory=default_cache_dir)
    data_root: str | None = None
    allow_download: bool = True
    device: str = "auto"
    force: bool = False
    quiet: bool = False
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunSummary:
    cells: int = 0
    skipped: int = 0
    ok_records: int = 0
    error_records: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    # cells another run held when this one reached them: waited for at the end of the sweep
    waited: int = 0


def plan(protocol: Protocol, methods: Iterable[str], ipc_independent: Iterable[str] = ()) -> list[Cell]:
    """The grid in the order it runs: dataset-major (one dataset in memory at a time).

    Methods in ``ipc_independent`` (the whole-set upper bound) run once per dataset and seed, as
    IPC 0, after the IPC cells of that dataset.
    """
    methods = list(methods)
    once = [m for m in methods if m in set(ipc_independent)]
    per_ipc = [m for m in methods if m not in once]
    cells = []
    for d in protocol.datasets:
        cells += [Cell(m, d, ipc, seed) for ipc in protocol.ipcs for m in per_ipc for seed in protocol.seeds]
        cells += [Cell(m, d, 0, seed) for m in once for seed in protocol.seeds]
    return cells


class Runner:
    def __init__(self, plugins: PluginSet, protocol: Protocol, options: RunOptions) -> None:
        self.plugins = plugins
        self.protocol = protocol
        self.options = options
        self.device = resolve_device(options.device)
        self.results_dir = Path(options.results_dir)
        self.cache_dir = Path(options.cache_dir)
        self._datasets: dict[str, LoadedDataset] = {}
        self._validate()

    # -- validation ------------------------------------------------------------------------
    def _validate(self) -> None:
        """Fail before any work on names that do not exist (with 'did you mean')."""
        for d in self.protocol.datasets:
            self.plugins.datasets.canonical(d)
        for a in self.protocol.archs:
            if not a.startswith("timm:"):
                self.plugins.archs.canonical(a)
        for name in self.options.method_overrides:
            self.plugins.methods.canonical(name)

    def artifact_path(self, cell: Cell) -> Path:
        return (
            self.results_dir / "artifacts" / f"{self.protocol.name}-{self.protocol.hash}" / cell.dataset
            / cell.method / f"ipc{cell.ipc}-seed{cell.seed}.pt"
        )

    # -- data ------------------------------------------------------------------------------
    def dataset(self, name: str) -> LoadedDataset:
        key = self.plugins.datasets.canonical(name)
        if key not in self._datasets:
            self._datasets.clear()  # one dataset in memory at a time
            entry = self.plugins.datasets.get(key)
            sources = DataSources.resolve(self.options.data_root, allow_download=self.options.allow_download)
            say(f"loading {key} ...", self.options.quiet)
            self._datasets[key] = load_dataset(
                entry, sources, self.cache_dir, self.device, train_limit_per_class=self.protocol.train_limit_per_class
            )
            loaded = self._datasets[key]
            say(f"loaded {key}: {len(loaded.train)} train / {len(loaded.test)} test images from "
                f"{loaded.provenance} in {loaded.load_seconds:.2f}s", self.options.quiet)
        return self._datasets[key]

    # -- the sweep -------------------------------------------------------------------------
    def preflight(self, cells: list[Cell]) -> None:
        """Everything that can be checked before the first cell: the folders, the ``timm:``
        architectures, every cell's hyperparameters and IPC. Raises :class:`ConfigError`."""
        preflight.check_writable_folder(self.results_dir, "results folder")
        preflight.check_writable_folder(self.cache_dir, "cache folder")
        preflight.check_archs(self.protocol.archs)
        preflight.check_cells(cells, self.plugins, self.protocol, self.options.method_overrides)

    def run(self, methods: list[str]) -> RunSummary:
        summary = RunSummary()
        t0 = time.perf_counter()
        independent = [m for m in methods if getattr(self.plugins.methods.get(m), "ipc_independent", False)]
        cells = plan(self.protocol, methods, independent)
        summary.cells = len(cells)
        self.preflight(cells)
        read_records(self.results_dir)  # once with warnings; later reads are quiet
        busy: list[tuple[int, Cell]] = []
        for i, cell in enumerate(cells, 1):
            if not self._attempt(cell, f"[{i}/{len(cells)}]", summary, wait=False):
                busy.append((i, cell))
        for i, cell in busy:  # cells another run held: wait for each, then run it if still needed
            say(f"[{i}/{len(cells)}] {cell.label()}: waiting for the other run that holds it", self.options.quiet)
            summary.waited += 1
            self._attempt(cell, f"[{i}/{len(cells)}]", summary, wait=True)
        summary.seconds = time.perf_counter() - t0
        return summary

    def _attempt(self, cell: Cell, tag: str, summary: RunSummary, wait: bool) -> bool:
        """Run ``cell`` under its lock unless it is done; ``False`` when another run holds it and
        ``wait`` is off."""
        if not self._pending_archs(cell):
            summary.skipped += 1
            say(f"{tag} {cell.label()}: done already, skipped (use --force to rerun)", self.options.quiet)
            return True
        lock = cell_lock(self.results_dir, self.protocol.hash, cell.method, cell.dataset, cell.ipc, cell.seed)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except LockTimeout:
            say(f"{tag} {cell.label()}: another run is on it; coming back to it at the end", self.options.quiet)
            return False
        try:
            pending = self._pending_archs(cell)  # the other run may have finished it meanwhile
            if not pending:
                summary.skipped += 1
                say(f"{tag} {cell.label()}: finished by another run, skipped", self.options.quiet)
                return True
            say(f"{tag} {cell.label()}", self.options.quiet)
            for record in self.run_cell(cell, pending, tag):
                if record["status"] == "ok":
                    summary.ok_records += 1
                else:
                    summary.error_records += 1
                    summary.errors.append(f"{cell.label()} {record['arch']}: {record['error']['message']}")
        finally:
            lock.release()
        return True

    def _key(self, cell: Cell, arch: str) -> tuple:
        return (self.protocol.hash, cell.method, cell.dataset, cell.ipc, arch, cell.seed)

    def _pending_archs(self, cell: Cell) -> list[str]:
        """The evaluation archs of ``cell`` without an ``ok`` record (all of them under --force)."""
        if self.options.force:
            return list(self.protocol.archs)
        done = {record_key(r) for r in latest_records(read_records(self.results_dir, warn=False))
                if r.get("status") == "ok"}
        return [a for a in self.protocol.archs if self._key(cell, a) not in done]

    def run_cell(self, cell: Cell, archs: list[str], tag: str = "") -> list[dict[str, Any]]:
        """Distill (or reuse the saved set), then evaluate on each of ``archs``; returns the records."""
        base = self._base_record(cell)
        try:
            data = self.dataset(cell.dataset)
            base.update(dataset_provenance=data.provenance, test_set=data.test_set,
                        train_images=len(data.train), test_images=len(data.test))
            method_cls = self.plugins.methods.get(cell.method)
            if not method_cls.ipc_independent:
                preflight.check_ipc_fits(cell.ipc, data.spec, None, data.train.class_counts())
            config = method_cls.resolve_config(
                data.spec.name, cell.ipc, self.protocol, self.options.method_overrides.get(cell.method)
            )
            base.update(method_version=method_cls.version, method_kind=method_cls.kind,
                        method_config=_config_dict(config))
            syn, distill_info = self._distill(cell, method_cls, config, data, tag)
            base.update(distill_info)
        except KeyboardInterrupt:
            raise
        # One failed cell becomes records and the sweep goes on; SystemExit too: a plugin that
        # calls sys.exit() must not end everyone else's cells (Ctrl-C still stops the sweep).
        except (Exception, SystemExit) as exc:
            return [self._write(self._error(base, arch, exc)) for arch in archs]

        out = []
        for arch in archs:
            try:
                record = self._evaluate(cell, arch, syn, data, dict(base), tag)
            except KeyboardInterrupt:
                raise
            except (Exception, SystemExit) as exc:
                record = self._error(base, arch, exc)
            out.append(self._write(record))
        return out

    def _distill(self, cell: Cell, method_cls: type[Method], config: Any, data: LoadedDataset,
                 tag: str) -> tuple[SyntheticSet, dict[str, Any]]:
        path = self.artifact_path(cell)
        if path.exists() and not self.options.force:
            reused = self._reuse(path, cell, method_cls, config, data)
            if reused is not None:
                return reused
        generator = torch.Generator().manual_seed(stable_seed("distill", cell.method, cell.dataset, cell.ipc, cell.seed))
        progress = Progress(f"{tag} distill {cell.method} ipc{cell.ipc}", quiet=self.options.quiet)
        ctx = RunContext(
            device=self.device,
            generator=generator,
            cache_dir=self.cache_dir,
            make_model=model_factory(self.plugins.archs, data.spec),
            protocol=self.protocol,
            dataset=data.spec,
            progress=progress,
            default_arch=self.protocol.distill_arch,
            seed=cell.seed,
        )
        method = method_cls(config)
        try:
            with measure(self.device) as m:
                syn = method.distill(data.train, cell.ipc, ctx)
        finally:
            progress.close()
        self._check_synset(syn, cell, data, method_cls)  # a set that breaks the contract is never saved
        info = {"distill_seconds": round(m.seconds, 3), "distill_peak_memory_bytes": m.peak_bytes,
                "memory_kind": m.memory_kind}
        if syn.extra.get("full_dataset"):
            # The whole train set is not worth a copy on disk; "distilling" it again is free.
            return syn, info | {"artifact": None, "reused_artifact": False}
        syn.save(path, metadata={"method": cell.method, "method_version": method_cls.version,
                                 "method_config": _config_dict(config), "protocol": self.protocol.name,
                                 "protocol_hash": self.protocol.hash, "dataset": cell.dataset, "ipc": cell.ipc,
                                 "seed": cell.seed, **info})
        say(f"  distilled in {m.seconds:.1f}s, peak memory {m.peak_bytes / 2**30:.2f} GiB", self.options.quiet)
        return syn, info | {"artifact": str(path), "reused_artifact": False}

    def _reuse(self, path: Path, cell: Cell, method_cls: type[Method], config: Any,
               data: LoadedDataset) -> tuple[SyntheticSet, dict[str, Any]] | None:
        """The saved set of this cell when it is whole, valid and made by this config; a corrupt
        or contract-breaking file is moved aside (``None``: distil again)."""
        try:
            syn, meta = SyntheticSet.load(path)
            self._check_synset(syn, cell, data, method_cls)
        except (ArtifactError, ContractError) as exc:
            moved = atomic.move_aside(path)
            say(f"  saved set unusable ({exc}); moved to {moved.name}, distilling again", self.options.quiet)
            log.warning("saved set %s unusable: %s; moved to %s", path, exc, moved)
            return None
        if meta.get("method_config") != _config_dict(config) or meta.get("method_version") != method_cls.version:
            return None
        say(f"  reusing distilled set {path}", self.options.quiet)
        kept = {k: meta[k] for k in ("distill_seconds", "distill_peak_memory_bytes", "memory_kind") if k in meta}
        return syn, kept | {"artifact": str(path), "reused_artifact": True}

    def _check_synset(self, syn: SyntheticSet, cell: Cell, data: LoadedDataset, method_cls: type[Method]) -> None:
        check_synthetic_set(syn, method=cell.method, shape=data.spec.shape, num_classes=data.spec.num_classes,
                            ipc=cell.ipc, container=bool(getattr(method_cls, "container", False)),
                            ipc_independent=bool(getattr(method_cls, "ipc_independent", False)),
                            train_counts=data.train.class_counts())

    def _evaluate(self, cell: Cell, arch: str, syn: SyntheticSet, data: LoadedDataset, record: dict[str, Any],
                  tag: str) -> dict[str, Any]:
        recipe = self.protocol.eval
        full = bool(syn.extra.get("full_dataset"))
        epochs = recipe.full_epochs if (full and recipe.full_epochs) else recipe.epochs
        # Evaluation models depend on the cell, not on the method: methods are compared on the
        # same initialisations (a paired comparison).
        generator = torch.Generator().manual_seed(stable_seed("eval", cell.dataset, cell.ipc, cell.seed, arch))
        progress = Progress(f"{tag} eval {cell.method} ipc{cell.ipc} on {arch}", quiet=self.options.quiet)
        try:
            with measure(self.device) as m:
                # A whitened set is tested on whitened test images (the same fit on the train set).
                test = eval_space_testset(syn, data.test, data.train)
                result = evaluate_synset(
                    syn, test, arch=arch, make_model=model_factory(self.plugins.archs, data.spec),
                    recipe=recipe, device=self.device, generator=generator,
                    dsa_strategy=data.spec.dsa_strategy, epochs=epochs, progress=progress,
                )
        finally:
            progress.close()
        record.update(
            arch=arch,
            status="ok",
            accuracy={"mean": round(result.mean, 4), "std": round(result.std, 4), "n": len(result.accuracies),
                      "values": [round(a, 4) for a in result.accuracies]},
            eval_seconds=round(m.seconds, 3),
            eval_train_seconds=round(result.train_seconds, 3),
            eval_test_seconds=round(result.test_seconds, 3),
            eval_peak_memory_bytes=m.peak_bytes,
            eval_epochs=result.epochs,
            eval_lr=result.lr,
            eval_soft_labels=result.soft_labels,
            division=recipe.division,
            storage_bytes=int(syn.storage_bytes or 0),
            num_images=int(syn.images.shape[0]),
            images_per_class=syn.per_class_counts(data.spec.num_classes),
            learned_lr=syn.learned_lr,
            input_transform=syn.transform,
            method_extra=_jsonable(syn.extra),
            finished_at=now_iso(),
        )
        say(f"  {arch}: {result.mean:.2f} ± {result.std:.2f} (n={len(result.accuracies)}) "
            f"in {m.seconds:.1f}s", self.options.quiet)
        return record

    # -- records ---------------------------------------------------------------------------
    def _base_record(self, cell: Cell) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "protocol": self.protocol.name,
            "protocol_hash": self.protocol.hash,
            "protocol_budget": self.protocol.budget,
            "distill_arch": self.protocol.distill_arch,
            "method": cell.method,
            "dataset": cell.dataset,
            "ipc": cell.ipc,
            "seed": cell.seed,
            "machine": machine_info(self.device),
            "commit": git_commit(),
            "code_digest": code_digest(),
            "started_at": now_iso(),
        }

    def _error(self, base: dict[str, Any], arch: str, exc: BaseException) -> dict[str, Any]:
        record = dict(base)
        message = str(exc) or type(exc).__name__
        if isinstance(exc, SystemExit):
            message = f"the cell called sys.exit({exc.code!r}); a method must raise an exception instead"
        record.update(
            arch=arch,
            status="error",
            error={"type": type(exc).__name__, "message": message,
                   "traceback": "".join(traceback.format_exception(exc))[-4000:],
                   "expected": isinstance(exc, BenchsuiteError)},
            finished_at=now_iso(),
        )
        say(f"  {arch}: ERROR {type(exc).__name__}: {message}", self.options.quiet)
        return record

    def _write(self, record: dict[str, Any]) -> dict[str, Any]:
        bad = non_finite_fields(record)
        if bad:  # never a NaN in a record: the cell becomes an error naming the fields
            base = {k: v for k, v in record.items() if k not in ("status", "accuracy") and not non_finite_fields(v)}
            record = self._error(base, record.get("arch", "?"), MethodError(
                f"the result holds NaN or infinite values in {', '.join(bad)}; nothing was ranked"))
        append_record(self.results_dir, record)
        self.plugins.notify_record(record)
        return record


def _config_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config):
        return _jsonable(dataclasses.asdict(config))
    return {"value": str(config)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist() if value.numel() <= 16 else f"<tensor {tuple(value.shape)}>"
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
