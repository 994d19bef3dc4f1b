"""One cell of the grid, as a worker runs it: distil (or reuse the saved set), check the set
against the method contract, evaluate it on each architecture, and return the records.

A :class:`CellTask` holds only plain, picklable values (names, numbers, the frozen protocol, paths)
so that an executor can ship it to another process or machine; the worker rebuilds what it needs
(the plugins, the dataset) there. The worker never writes records: it returns them as JSON objects
to the driving process, the only writer of ``records.jsonl``.

The method itself never runs in the worker: it distils in a child process that holds the training
split alone (:mod:`benchsuite.isolation`), and the worker evaluates the set the child wrote. A saved
set is reused only under the same identity (:mod:`benchsuite.identity`), which its file name carries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from benchsuite import atomic, preflight
from benchsuite.api import Method, RunContext, SyntheticSet
from benchsuite.contract import check_synthetic_set
from benchsuite.data import DataSources, LoadedDataset, load_dataset
from benchsuite.data.spec import DatasetSpec
from benchsuite.errors import ArtifactError, ContractError, IsolatedFailure, MethodError
from benchsuite.evaluate import EvalResult, eval_space_testset, evaluate_synset
from benchsuite.identity import cell_identity
from benchsuite.isolation import WORKER_DIED, method_cache_dir, run_isolated
from benchsuite.measure import Measurement, measure
from benchsuite.modeling import model_factory
from benchsuite.protocol import Protocol
from benchsuite.provenance import code_digest, git_commit, machine_info, now_iso
from benchsuite.records import RunRecord, non_finite_fields

log = logging.getLogger("benchsuite")

ProgressFactory = Callable[[str], Callable[..., None]]


def no_progress(description: str) -> Callable[..., None]:
    return lambda *args, **kwargs: None


@dataclass(frozen=True)
class Cell:
    method: str
    dataset: str
    ipc: int
    seed: int

    def label(self) -> str:
        return f"{self.method} {self.dataset} ipc{self.ipc} seed{self.seed}"


@dataclass(frozen=True)
class CellTask:
    """Everything a worker needs to run one cell, as plain values."""

    cell: Cell
    archs: tuple[str, ...]
    protocol: Protocol
    results_dir: str
    cache_dir: str
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    allow_download: bool = True
    force: bool = False
    # where a worker in another process finds the plugins (the serial worker reuses the driver's)
    plugin_dirs: tuple[str, ...] = ()
    entry_points: bool = True
    tag: str = ""
    # the identity of the set the driver expects (names the saved set; the worker recomputes it)
    set_identity: str | None = None
    # seconds the method may distil for before it is ended (None: no limit)
    cell_timeout: float | None = None

    @property
    def artifact_path(self) -> Path:
        return artifact_path(self, self.set_identity)


def artifact_path(task: CellTask, set_identity: str | None) -> Path:
    """Where the set of ``task`` with ``set_identity`` is saved: the identity is in the file name,
    so a set made by other code, config or data is never found under this one's name."""
    c = task.cell
    suffix = f"-{set_identity}" if set_identity else ""
    return (Path(task.results_dir) / "artifacts" / f"{task.protocol.name}-{task.protocol.hash}" / c.dataset
            / c.method / f"ipc{c.ipc}-seed{c.seed}{suffix}.pt")


def stable_seed(*parts: Any) -> int:
    """A seed from names and numbers that is the same on every machine and Python run."""
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & (2**63 - 1)


class CellWorker:
    """Runs cells in one process, keeping one dataset in memory between cells of that dataset."""

    def __init__(self, plugins: Any, progress: ProgressFactory = no_progress) -> None:
        self.plugins = plugins
        self.progress = progress
        self._datasets: dict[tuple, LoadedDataset] = {}

    def dataset(self, task: CellTask, device: torch.device) -> LoadedDataset:
        name = self.plugins.datasets.canonical(task.cell.dataset)
        key = (name, str(device), task.protocol.train_limit_per_class, task.data_root, task.cache_dir)
        if key not in self._datasets:
            self._datasets.clear()  # one dataset in memory at a time
            entry = self.plugins.datasets.get(name)
            sources = DataSources.resolve(task.data_root, allow_download=task.allow_download)
            # load_dataset logs what it read, from where, and how long it took
            self._datasets[key] = load_dataset(entry, sources, Path(task.cache_dir), device,
                                               train_limit_per_class=task.protocol.train_limit_per_class)
        return self._datasets[key]

    def run(self, task: CellTask) -> Iterator[dict[str, Any]]:
        """Distil (or reuse the saved set), then evaluate on each of the task's archs; yields each
        record's JSON object as soon as it exists."""
        cell, protocol = task.cell, task.protocol
        device = torch.device(task.device)
        facts: dict[str, Any] = {
            "protocol": protocol.name, "protocol_hash": protocol.hash, "protocol_budget": protocol.budget,
            "distill_arch": protocol.distill_arch, "method": cell.method, "dataset": cell.dataset,
            "ipc": cell.ipc, "seed": cell.seed, "machine": machine_info(device), "commit": git_commit(),
            "code_digest": code_digest(), "started_at": now_iso(),
        }
        try:
            data = self.dataset(task, device)
            facts.update(dataset_provenance=data.provenance, test_set=data.test_set,
                         train_images=len(data.train), test_images=len(data.test))
            method_cls = self.plugins.methods.get(cell.method)
            if not method_cls.ipc_independent:
                preflight.check_ipc_fits(cell.ipc, data.spec, None, data.train.class_counts())
            config = method_cls.resolve_config(data.spec.name, cell.ipc, protocol, task.overrides)
            facts.update(method_version=method_cls.version, method_kind=method_cls.kind,
                         method_config=config_dict(config), dataset_fingerprint=data.fingerprint)
            facts.update(cell_identity(method_cls, config_dict(config), protocol, cell, data.fingerprint,
                                       task.overrides))
            syn, distill_facts = self._distill(task, method_cls, config, data, device, facts)
            facts.update(distill_facts)
        except KeyboardInterrupt:
            raise
        # One failed cell becomes records and the sweep goes on; SystemExit too: a plugin that
        # calls sys.exit() must not end everyone else's cells (Ctrl-C still stops the sweep).
        except (Exception, SystemExit) as exc:
            for arch in task.archs:
                yield RunRecord.failed(facts, arch=arch, exc=exc, finished_at=now_iso()).to_json()
            return
        for arch in task.archs:
            try:
                record = self._evaluate(task, arch, syn, data, facts, device)
            except KeyboardInterrupt:
                raise
            except (Exception, SystemExit) as exc:
                record = RunRecord.failed(facts, arch=arch, exc=exc, finished_at=now_iso())
            yield record.to_json()

    # -- distillation ------------------------------------------------------------------------
    def _distill(self, task: CellTask, method_cls: type[Method], config: Any, data: LoadedDataset,
                 device: torch.device, facts: dict[str, Any]) -> tuple[SyntheticSet, dict[str, Any]]:
        cell = task.cell
        path = artifact_path(task, facts["set_identity"])
        if path.exists() and not task.force:
            reused = self._reuse(path, task, method_cls, data, facts["set_identity"])
            if reused is not None:
                return reused
        syn, m = self.distill_fresh(task, method_cls, config, data, device)
        info = {"distill_seconds": round(m.seconds, 3), "distill_peak_memory_bytes": m.peak_bytes,
                "memory_kind": m.memory_kind}
        if syn.extra.get("full_dataset"):
            # The whole train set is not worth a copy on disk; "distilling" it again is free.
            return syn, info | {"reused_artifact": False}
        identity = {k: facts.get(k) for k in ("set_identity", "config_digest", "source_digest", "dataset_fingerprint",
                                              "method_overrides")}
        syn.save(path, metadata={"method": cell.method, "method_version": method_cls.version,
                                 "method_config": config_dict(config), "protocol": task.protocol.name,
                                 "protocol_hash": task.protocol.hash, "dataset": cell.dataset, "ipc": cell.ipc,
                                 "seed": cell.seed, "commit": facts.get("commit"),
                                 "code_digest": facts.get("code_digest"), **identity, **info})
        log.info("%s distilled in %.1fs, peak memory %.2f GiB", cell.label(), m.seconds, m.peak_bytes / 2**30)
        return syn, info | {"artifact": str(path), "reused_artifact": False}

    def context(self, task: CellTask, data: LoadedDataset, device: torch.device,
                progress: Callable[..., None] | None = None) -> RunContext:
        """The :class:`RunContext` of a cell (its seeded generator, the methods' cache, model factory)."""
        return make_context(task, self.plugins.archs, data.spec, device, progress)

    def distill_fresh(self, task: CellTask, method_cls: type[Method], config: Any, data: LoadedDataset,
                      device: torch.device) -> tuple[SyntheticSet, Measurement]:
        """Distil the cell in a child process of its own (no saved set is read or written here) and
        check the set against the contract; returns it with the time and memory measured there.
        ``config`` and ``data`` are what the caller resolved; the child resolves and loads its own
        (the same config from the same task, the training split alone)."""
        cell = task.cell
        progress = self.progress(f"{task.tag} distill {cell.method} ipc{cell.ipc}")
        from benchsuite.isolation_child import IsolatedJob

        try:
            # A process killed from outside (the kernel's OOM killer, a stray signal) may not be the
            # method's fault: one retry, as a cluster retries a lost worker.
            for attempt in (1, 2):
                try:
                    result = run_isolated(IsolatedJob(task), progress=progress, timeout=task.cell_timeout)
                    break
                except IsolatedFailure as exc:
                    if exc.type_name != WORKER_DIED:
                        raise
                    if attempt == 2:
                        raise IsolatedFailure(WORKER_DIED, f"{exc.message}, on the first try and on its one retry",
                                              exc.traceback_text, exc.expected) from None
                    log.warning("%s: %s; retrying once", cell.label(), exc.message)
        finally:
            getattr(progress, "close", lambda: None)()
        syn = result.syn
        # checked in the child on its device, and again here as loaded (a set is never saved unchecked)
        check_set(syn, cell, method_cls, spec=data.spec, train_counts=data.train.class_counts())
        return syn, Measurement(result.seconds, result.peak_bytes, result.memory_kind)

    def prepare_isolated(self, task: CellTask, description: str | None = None) -> Any:
        """Build the caches the method of ``task`` reads (its :meth:`~benchsuite.Method.prepare`),
        in a child process like a distillation; returns the method's description of them."""
        from benchsuite.isolation_child import IsolatedJob

        progress = self.progress(description or f"{task.tag} prepare {task.cell.method} ipc{task.cell.ipc}")
        try:
            result = run_isolated(IsolatedJob(task, mode="prepare"), progress=progress, timeout=task.cell_timeout,
                                  what="cache build")
        finally:
            getattr(progress, "close", lambda: None)()
        return result.extra_facts.get("built")

    def _reuse(self, path: Path, task: CellTask, method_cls: type[Method], data: LoadedDataset,
               set_identity: str) -> tuple[SyntheticSet, dict[str, Any]] | None:
        """The saved set of this cell when it is whole, valid and of this identity; a corrupt
        or contract-breaking file is moved aside (``None``: distil again)."""
        try:
            syn, meta = SyntheticSet.load(path)
            check_set(syn, task.cell, method_cls, spec=data.spec, train_counts=data.train.class_counts())
        except (ArtifactError, ContractError) as exc:
            moved = atomic.move_aside(path)
            log.warning("saved set %s unusable (%s); moved to %s, distilling again", path, exc, moved.name)
            return None
        if meta.get("set_identity") != set_identity:
            return None
        log.info("reusing distilled set %s", path)
        kept = {k: meta[k] for k in ("distill_seconds", "distill_peak_memory_bytes", "memory_kind") if k in meta}
        return syn, kept | {"artifact": str(path), "reused_artifact": True}

    # -- evaluation --------------------------------------------------------------------------
    def _evaluate(self, task: CellTask, arch: str, syn: SyntheticSet, data: LoadedDataset, facts: dict[str, Any],
                  device: torch.device) -> RunRecord:
        result, m = self.evaluate(task, arch, syn, data, device)
        return RunRecord.ok(
            facts, arch=arch, accuracies=result.accuracies,
            eval_seconds=round(m.seconds, 3),
            eval_train_seconds=round(result.train_seconds, 3),
            eval_test_seconds=round(result.test_seconds, 3),
            eval_peak_memory_bytes=m.peak_bytes,
            eval_epochs=result.epochs,
            eval_lr=result.lr,
            eval_soft_labels=result.soft_labels,
            division=task.protocol.eval.division,
            storage_bytes=int(syn.storage_bytes or 0),
            num_images=int(syn.images.shape[0]),
            images_per_class=syn.per_class_counts(data.spec.num_classes),
            learned_lr=syn.learned_lr,
            input_transform=syn.transform,
            method_extra=jsonable(syn.extra),
            finished_at=now_iso(),
        )

    def evaluate(self, task: CellTask, arch: str, syn: SyntheticSet, data: LoadedDataset,
                 device: torch.device) -> tuple[EvalResult, Any]:
        """Train the protocol's evaluation models on ``syn`` and test them; a non-finite accuracy
        is a :class:`MethodError`. Returns the result and its time and memory measurement."""
        cell, recipe = task.cell, task.protocol.eval
        full = bool(syn.extra.get("full_dataset"))
        epochs = recipe.full_epochs if (full and recipe.full_epochs) else recipe.epochs
        # Evaluation models depend on the cell, not on the method: methods are compared on the
        # same initialisations (a paired comparison).
        generator = torch.Generator().manual_seed(stable_seed("eval", cell.dataset, cell.ipc, cell.seed, arch))
        progress = self.progress(f"{task.tag} eval {cell.method} ipc{cell.ipc} on {arch}")
        try:
            with measure(device) as m:
                # A whitened set is tested on whitened test images (the same fit on the train set).
                test = eval_space_testset(syn, data.test, data.train)
                result = evaluate_synset(
                    syn, test, arch=arch, make_model=model_factory(self.plugins.archs, data.spec),
                    recipe=recipe, device=device, generator=generator,
                    dsa_strategy=data.spec.dsa_strategy, epochs=epochs, progress=progress,
                )
        finally:
            getattr(progress, "close", lambda: None)()
        if non_finite_fields(result.accuracies):
            raise MethodError(f"evaluation on {arch} gave non-finite accuracy values {result.accuracies}; "
                              "nothing was ranked")
        return result, m


def make_context(task: CellTask, archs: Any, spec: DatasetSpec, device: torch.device,
                 progress: Callable[..., None] | None = None) -> RunContext:
    """The :class:`RunContext` a method distils with: a generator seeded by the cell, the methods'
    cache folder (``<cache>/methods``: it holds no dataset), and a model factory for the protocol's
    architectures."""
    cell = task.cell
    generator = torch.Generator().manual_seed(stable_seed("distill", cell.method, cell.dataset, cell.ipc, cell.seed))
    return RunContext(
        device=device,
        generator=generator,
        cache_dir=method_cache_dir(task.cache_dir),
        make_model=model_factory(archs, spec),
        protocol=task.protocol,
        dataset=spec,
        progress=progress or (lambda *a, **k: None),
        default_arch=task.protocol.distill_arch,
        seed=cell.seed,
    )


def check_set(syn: SyntheticSet, cell: Cell, method_cls: type[Method], *, spec: DatasetSpec,
              train_counts: list[int], device: torch.device | None = None) -> None:
    """The method contract for ``cell``'s set (:func:`benchsuite.contract.check_synthetic_set`)."""
    check_synthetic_set(syn, method=cell.method, shape=spec.shape, num_classes=spec.num_classes,
                        ipc=cell.ipc, container=bool(getattr(method_cls, "container", False)),
                        ipc_independent=bool(getattr(method_cls, "ipc_independent", False)),
                        train_counts=train_counts, device=device)


def config_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config):
        return jsonable(dataclasses.asdict(config))
    return {"value": str(config)}


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist() if value.numel() <= 16 else f"<tensor {tuple(value.shape)}>"
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
