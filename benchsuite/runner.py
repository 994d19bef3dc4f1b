"""The driver of a run: plan the grid, check it, claim each cell, hand it to an executor, and pass
every record that comes back to the ``record_ready`` hook.

A cell is (method, dataset, ipc, seed): the method distils once, then every protocol architecture
evaluates the set, one record each (:mod:`benchsuite.cell`). Storing records, resuming and terminal
output are plugins on the run hooks (:mod:`benchsuite.record_store`, :mod:`benchsuite.terminal`);
the built-in store appends and fsyncs each record as it arrives, so killing the process loses only
the cell in flight, and a rerun skips what already has an ``ok`` record of the same identity
(:meth:`Runner.identity`): a change of method version, config, source or data runs the cell again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from benchsuite import preflight
from benchsuite.cell import Cell, CellTask, CellWorker, config_dict, stable_seed  # noqa: F401 - stable_seed re-exported
from benchsuite.data import DataSources
from benchsuite.data.loading import dataset_fingerprint
from benchsuite.identity import cell_identity
from benchsuite.devices import resolve_device  # noqa: F401 - re-exported
from benchsuite.errors import ConfigError, MethodError
from benchsuite.executors import Executor, SerialExecutor
from benchsuite.locks import FileLock, Timeout, cell_lock
from benchsuite.plugins import PluginSet
from benchsuite.protocol import Protocol
from benchsuite.record_store import RecordStore, RecordStoreError
from benchsuite.records import FIELD_NAMES, RunRecord, non_finite_fields, read_records

log = logging.getLogger("benchsuite")

CACHE_ENV = "BENCHSUITE_CACHE"


def default_cache_dir() -> Path:
    """``$BENCHSUITE_CACHE``, else the user cache folder (``$XDG_CACHE_HOME/benchsuite``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "benchsuite"


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
    # seconds a method may distil one cell for (None: the protocol's cell_timeout, else no limit)
    cell_timeout: float | None = None


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
    def __init__(self, plugins: PluginSet, protocol: Protocol, options: RunOptions,
                 executor: Executor | None = None) -> None:
        self.plugins = plugins
        self.protocol = protocol
        self.options = options
        self.results_dir = Path(options.results_dir)
        self.cache_dir = Path(options.cache_dir)
        self._validate()
        self._fingerprints: dict[str, str | None] = {}
        self._identities: dict[Cell, dict[str, Any]] = {}
        self.executor = executor or SerialExecutor(CellWorker(plugins, self._progress))
        self.device = self.executor.resolve_device(options.device)

    @property
    def hook(self) -> Any:
        return self.plugins.pm.hook

    def _progress(self, description: str) -> Any:
        return self.hook.make_progress(description=description) or (lambda *a, **k: None)

    # -- checks ----------------------------------------------------------------------------
    def _validate(self) -> None:
        """Fail before any work on names that do not exist (with 'did you mean')."""
        for d in self.protocol.datasets:
            self.plugins.datasets.canonical(d)
        for a in self.protocol.archs:
            if not a.startswith("timm:"):
                self.plugins.archs.canonical(a)
        for name in self.options.method_overrides:
            self.plugins.methods.canonical(name)
        timeout = self.options.cell_timeout
        if timeout is not None and not (timeout > 0 and timeout != float("inf")):
            raise ConfigError(f"--cell-timeout must be a number of seconds > 0, got {timeout}")

    @property
    def cell_timeout(self) -> float | None:
        """The distillation time limit of every cell: ``--cell-timeout``, else the protocol's."""
        return self.options.cell_timeout if self.options.cell_timeout is not None else self.protocol.cell_timeout

    def preflight(self, cells: list[Cell]) -> None:
        """Everything that can be checked before the first cell: the folders, the ``timm:``
        architectures, every cell's hyperparameters and IPC. Raises :class:`ConfigError`."""
        preflight.check_writable_folder(self.results_dir, "results folder")
        preflight.check_writable_folder(self.cache_dir, "cache folder")
        preflight.check_archs(self.protocol.archs)
        preflight.check_cells(cells, self.plugins, self.protocol, self.options.method_overrides)

    def artifact_path(self, cell: Cell) -> Path:
        return self._task(cell, self.protocol.archs).artifact_path

    # -- the sweep -------------------------------------------------------------------------
    def run(self, methods: list[str]) -> RunSummary:
        summary = RunSummary()
        t0 = time.perf_counter()
        independent = [m for m in methods if getattr(self.plugins.methods.get(m), "ipc_independent", False)]
        cells = plan(self.protocol, methods, independent)
        summary.cells = len(cells)
        self.preflight(cells)
        store = RecordStore(self.results_dir, {name: bool(getattr(cls, "container", False))
                                               for name, cls in self.plugins.methods.items()})
        self.plugins.pm.register(store, name="benchsuite.record-store")
        leases: dict[Cell, FileLock] = {}
        try:
            read_records(self.results_dir, containers=store.containers)  # once with warnings; later reads are quiet
            self.hook.run_started(protocol=self.protocol, cells=cells, results_dir=self.results_dir)
            for output in self.executor.map(self._claimed_tasks(cells, summary, leases)):
                for record in output.records:
                    self._deliver(record, output.task, summary)
                if output.finished:
                    leases.pop(output.task.cell).release()
                    self.hook.cell_finished(cell=output.task.cell)
            summary.seconds = time.perf_counter() - t0
            self.hook.run_finished(summary=summary)
        finally:
            for lock in leases.values():
                lock.release()
            self.plugins.pm.unregister(store)
        return summary

    # -- identity --------------------------------------------------------------------------
    def _fingerprint(self, dataset: str) -> str | None:
        """The dataset's content fingerprint, read once per run (``None`` when the data cannot be
        read here: the cell then runs and its worker reports why)."""
        if dataset not in self._fingerprints:
            try:
                name = self.plugins.datasets.canonical(dataset)
                sources = DataSources.resolve(self.options.data_root, allow_download=self.options.allow_download)
                self._fingerprints[dataset] = dataset_fingerprint(self.plugins.datasets.get(name), sources,
                                                                  self.cache_dir)
            except Exception as exc:  # noqa: BLE001 - the cell's own error record says it properly
                log.debug("no fingerprint for %s: %s", dataset, exc)
                self._fingerprints[dataset] = None
        return self._fingerprints[dataset]

    def identity(self, cell: Cell) -> dict[str, Any]:
        """What the cell would run with now: method version, config and source digests, dataset
        fingerprint, and the set identity they make (:func:`benchsuite.identity.cell_identity`)."""
        if cell not in self._identities:
            method_cls = self.plugins.methods.get(cell.method)
            fingerprint = self._fingerprint(cell.dataset)
            overrides = self.options.method_overrides.get(cell.method, {})
            try:
                config = method_cls.resolve_config(self.plugins.datasets.canonical(cell.dataset), cell.ipc,
                                                   self.protocol, overrides)
                found = cell_identity(method_cls, config_dict(config), self.protocol, cell, fingerprint, overrides)
            except Exception as exc:  # noqa: BLE001 - the worker's error record names it
                log.debug("no identity for %s: %s", cell.label(), exc)
                found = {"config_digest": None, "source_digest": None, "set_identity": None}
            self._identities[cell] = {"method_version": method_cls.version, "dataset_fingerprint": fingerprint,
                                      **found}
        return self._identities[cell]

    def _task(self, cell: Cell, archs: Iterable[str], tag: str = "") -> CellTask:
        return CellTask(
            cell=cell, archs=tuple(archs), protocol=self.protocol, results_dir=str(self.results_dir),
            cache_dir=str(self.cache_dir), device=str(self.device),
            overrides=dict(self.options.method_overrides.get(cell.method, {})), data_root=self.options.data_root,
            allow_download=self.options.allow_download, force=self.options.force,
            plugin_dirs=tuple(self.plugins.plugin_dirs), entry_points=self.plugins.entry_points, tag=tag,
            set_identity=self.identity(cell).get("set_identity"), cell_timeout=self.cell_timeout,
        )

    def _claimed_tasks(self, cells: list[Cell], summary: RunSummary, leases: dict[Cell, FileLock]
                       ) -> Iterator[CellTask]:
        """Tasks for the cells that need work, each with its lock held (released when its last
        output arrives). Cells another run holds come last, after waiting for that run."""
        busy = []
        total = len(cells)
        for i, cell in enumerate(cells, 1):
            task = self._claim(cell, i, total, summary, leases, wait=False)
            if task is _BUSY:
                busy.append((i, cell))
            elif task is not None:
                yield task
        for i, cell in busy:
            self.hook.cell_waiting(cell=cell, index=i, total=total)
            summary.waited += 1
            task = self._claim(cell, i, total, summary, leases, wait=True)
            if task is not None:
                yield task

    def _claim(self, cell: Cell, index: int, total: int, summary: RunSummary, leases: dict[Cell, FileLock],
               wait: bool) -> Any:
        if not self._pending(cell):
            summary.skipped += 1
            reason = "finished by another run, skipped" if wait else "done already, skipped (use --force to rerun)"
            self.hook.cell_skipped(cell=cell, index=index, total=total, reason=reason)
            return None
        lock = cell_lock(self.results_dir, self.protocol.hash, cell.method, cell.dataset, cell.ipc, cell.seed)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            self.hook.cell_skipped(cell=cell, index=index, total=total,
                                   reason="another run is on it; coming back to it at the end")
            return _BUSY
        pending = self._pending(cell)  # the other run may have finished it meanwhile
        if not pending:
            lock.release()
            summary.skipped += 1
            self.hook.cell_skipped(cell=cell, index=index, total=total, reason="finished by another run, skipped")
            return None
        leases[cell] = lock
        self.hook.cell_started(cell=cell, index=index, total=total)
        return self._task(cell, pending, tag=f"[{index}/{total}]")

    def _pending(self, cell: Cell) -> list[str]:
        """The evaluation archs of ``cell`` without an ``ok`` record (all of them under --force)."""
        archs = list(self.protocol.archs)
        if self.options.force:
            return archs
        answer = self.hook.pending_archs(cell=cell, archs=archs, protocol_hash=self.protocol.hash,
                                         results_dir=self.results_dir, identity=self.identity(cell))
        return archs if answer is None else list(answer)

    def _deliver(self, record: dict[str, Any], task: CellTask, summary: RunSummary) -> None:
        """Hand one record to the observers (the store first); a record with NaN becomes an error."""
        bad = non_finite_fields(record)
        if bad:  # the worker refuses these already; the driver never writes one either
            facts = {k: v for k, v in record.items() if k in FIELD_NAMES
                     and k not in ("status", "accuracy", "error", "arch") and not non_finite_fields(v)}
            record = RunRecord.failed(facts, arch=str(record.get("arch")), exc=MethodError(
                f"the result holds NaN or infinite values in {', '.join(bad)}; nothing was ranked")).to_json()
        run_record = RunRecord.from_json(record)
        try:
            self.hook.record_ready(record=record, run_record=run_record, results_dir=self.results_dir)
        except RecordStoreError:
            raise
        except Exception:  # an observer must not end a sweep: the record is on disk already
            log.exception("a plugin failed in record_ready; the record is stored and the run goes on")
        if run_record.status == "ok":
            summary.ok_records += 1
        else:
            summary.error_records += 1
            summary.errors.append(f"{task.cell.label()} {run_record.arch}: {run_record.error.message}")


_BUSY = object()
