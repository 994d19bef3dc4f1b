"""Run the grid's cells as Ray tasks, on a local Ray instance or an existing cluster.

The driver (:class:`benchsuite.runner.Runner`) stays the only writer: every task returns its
records, and the bytes of the distilled set it made, to the driving process, which writes the set
into the results folder and hands the records to the store. Workers therefore need no shared
filesystem with the driver for results; they work in a scratch folder of their own. A saved set
the driver already has travels to the worker with the task, so a rerun reuses it on any node.

Caches that several cells read (expert trajectories, generative priors) are built by one
*prepare* task per (method, dataset, IPC) before that group's cells start: the cells take the
prepare task's result as an argument, so Ray starts them only when it is done. The cache folder is
read and written in place, so on a cluster of several machines it must be a folder every node
sees (``--cache-dir`` on a shared filesystem); builders take a file lock on their cache entry,
so two tasks never build the same entry, and one that finds the entry built loads it. A worker
process that dies is retried once by Ray; a cell that still fails becomes ``error`` records.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from benchsuite import atomic
from benchsuite.cell import Cell, CellTask, CellWorker
from benchsuite.errors import BenchsuiteError, ConfigError
from benchsuite.executors import CellOutput, Executor
from benchsuite.provenance import now_iso
from benchsuite.records import RunRecord

log = logging.getLogger("benchsuite")

INSTALL_HINT = 'the Ray executor needs Ray: pip install "benchsuite[ray]"'
CONNECT_TIMEOUT_S = 5.0


class ClusterError(BenchsuiteError):
    """The Ray cluster cannot run this sweep (unreachable, or without the resources asked for)."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None        # None: start a local instance for this run, stop it after
    gpus_per_cell: float | None = None  # None: 1 on CUDA (fractions share a GPU), 0 on the CPU
    cpus_per_cell: int | None = None    # None: 1 on CUDA, 2 on the CPU; also the cell's torch threads
    max_retries: int = 1                # retries of a cell whose worker process died
    local_cpus: int | None = None       # CPUs of a local instance (None: all of this machine's)


@dataclass
class ShippedCell:
    """What a cell task returns: its records, and the bytes of the set it saved (``None`` when it
    saved none, or reused the set it was given)."""

    records: list[dict[str, Any]]
    saved_set: bytes | None = None
    worker: dict[str, Any] = field(default_factory=dict)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds when nothing listens at ``address`` (``host:port`` or
    ``ray://host:port``); Ray itself would retry for much longer. ``auto`` is left to Ray."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r} is not HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` "
                           f"and pass the address it prints, or leave --ray-address out for a local instance"
                           ) from None


# -- what runs on a worker ------------------------------------------------------------------------

_WORKERS: dict[tuple, CellWorker] = {}


def _worker_for(task: CellTask) -> CellWorker:
    """One :class:`CellWorker` per worker process and plugin set, so a Ray worker that runs several
    cells of a dataset loads the plugins and the dataset once."""
    key = (task.plugin_dirs, task.entry_points)
    if key not in _WORKERS:
        from benchsuite.plugins import get_plugin_manager

        _WORKERS.clear()
        _WORKERS[key] = CellWorker(get_plugin_manager(list(task.plugin_dirs), entry_points=task.entry_points))
    return _WORKERS[key]


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def run_shipped_cell(task: CellTask, saved_set: bytes | None, threads: int | None = None,
                     prepared: Any = None) -> ShippedCell:
    """Run ``task`` in a scratch results folder of this process's machine and return its records
    with the artifact path the driver will write, plus the set's bytes when a new one was saved.
    ``prepared`` is the result of the cell's prepare task (only there to order the two)."""
    _set_threads(threads)
    with tempfile.TemporaryDirectory(prefix="benchsuite-cell-") as scratch:
        local = dataclasses.replace(task, results_dir=scratch)
        if saved_set is not None:
            local.artifact_path.parent.mkdir(parents=True, exist_ok=True)
            local.artifact_path.write_bytes(saved_set)
        records = list(_worker_for(task).run(local))
        made = None
        if local.artifact_path.exists():
            data = local.artifact_path.read_bytes()
            made = None if data == saved_set else data
    for record in records:
        if record.get("artifact") == str(local.artifact_path):
            record["artifact"] = str(task.artifact_path)
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if isinstance(prepared, dict) and not prepared.get("ok", True):
        info["prepare_error"] = prepared.get("error")
    return ShippedCell(records, made, info)


def run_prepare(task: CellTask, threads: int | None = None, marker: str | None = None) -> dict[str, Any]:
    """Build the caches ``task``'s method reads (its :meth:`~benchsuite.Method.prepare`). Errors are
    returned, not raised: the cells then run and report the real error themselves."""
    _set_threads(threads)
    try:
        if marker is not None and not Path(marker).exists():
            raise ClusterError(f"the cache folder {task.cache_dir} is not the driver's on {socket.gethostname()}: "
                               "put --cache-dir on a filesystem every node shares, or each node builds its own")
        # like a distillation, in a child process that holds the training split alone
        built = _worker_for(task).prepare_isolated(task)
        return {"ok": True, "built": built}
    except Exception as exc:  # noqa: BLE001 - reported by the driver; the cells fail on their own
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


# -- the driver's side ------------------------------------------------------------------------------


def _absolute(task: CellTask) -> CellTask:
    """Paths a worker can use whatever its working directory (the driver keeps its own task)."""
    data_root = task.data_root or os.environ.get("BENCHSUITE_DATA")
    return dataclasses.replace(
        task, cache_dir=str(Path(task.cache_dir).resolve()),
        data_root=str(Path(data_root).resolve()) if data_root and "://" not in data_root else data_root,
        plugin_dirs=tuple(str(Path(p).resolve()) for p in task.plugin_dirs))


def _has_prepare(plugins: Any, method: str) -> bool:
    from benchsuite.api import Method

    cls = plugins.methods.get(method)
    return getattr(cls, "prepare", None) is not Method.prepare


class RayExecutor(Executor):
    """Cells as Ray tasks. A local instance is started (and stopped) unless ``options.address``
    names a running cluster or Ray is already initialised in this process."""

    def __init__(self, plugins: Any, options: RayOptions | None = None) -> None:
        self.plugins = plugins
        self.options = options or RayOptions()
        self.ray = import_ray()
        self._started_here = False
        self.device: torch.device | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        ray = self.ray
        if self.options.address:
            check_reachable(self.options.address)  # within seconds, whatever Ray would do
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING}
        if self.options.address:
            try:
                ray.init(address=self.options.address, **kwargs)
            except Exception as exc:  # noqa: BLE001 - Ray's own connection errors vary by version
                raise ClusterError(f"could not join the Ray cluster at {self.options.address}: {exc}") from None
        else:
            ray.init(num_cpus=self.options.local_cpus, **kwargs)
            self._started_here = True

    def close(self) -> None:
        if self._started_here and self.ray.is_initialized():
            self.ray.shutdown()
        self._started_here = False

    def resolve_device(self, name: str) -> torch.device:
        """The cells' device, judged by the cluster's resources, not the driver's."""
        self.start()
        gpus = float(self.ray.cluster_resources().get("GPU", 0))
        if name == "auto":
            device = torch.device("cuda" if gpus > 0 else "cpu")
        else:
            try:
                device = torch.device(name)
            except RuntimeError as exc:
                raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from exc
            if device.type == "cuda" and gpus <= 0:
                raise ClusterError("--device cuda was asked for, but the Ray cluster has no GPU; add GPU nodes "
                                   "or use --device cpu")
            if device.type not in ("cpu", "cuda"):
                raise ConfigError(f"device {name!r} is not supported; use auto, cpu or cuda")
            if device.type == "cuda":
                device = torch.device("cuda")  # each cell sees only its own GPU(s), as cuda:0
        self.device = device
        need = self.resources()
        have = self.ray.cluster_resources()
        for kind, amount in (("CPU", need["num_cpus"]), ("GPU", need["num_gpus"])):
            if amount > float(have.get(kind, 0)):
                raise ClusterError(f"a cell asks for {amount:g} {kind}(s) but the whole cluster has "
                                   f"{float(have.get(kind, 0)):g}; lower --cpus-per-cell / --gpus-per-cell")
        return device

    def resources(self) -> dict[str, float]:
        cuda = self.device is not None and self.device.type == "cuda"
        gpus = self.options.gpus_per_cell if self.options.gpus_per_cell is not None else (1.0 if cuda else 0.0)
        cpus = self.options.cpus_per_cell if self.options.cpus_per_cell is not None else (1 if cuda else 2)
        if cpus < 1:
            raise ConfigError(f"--cpus-per-cell must be >= 1, got {cpus}")
        if cuda and not 0 < gpus <= 8:
            raise ConfigError(f"--gpus-per-cell must be in (0, 8], got {gpus}")
        return {"num_cpus": int(cpus), "num_gpus": float(gpus)}

    def slots(self) -> int:
        """How many cells fit on the cluster at once (at least one)."""
        need, have = self.resources(), self.ray.cluster_resources()
        fits = [float(have.get("CPU", 0)) // need["num_cpus"]]
        if need["num_gpus"] > 0:
            fits.append(float(have.get("GPU", 0)) // need["num_gpus"])
        return max(1, int(min(fits)))

    # -- the sweep ------------------------------------------------------------------------------
    def map(self, tasks: Iterable[CellTask]) -> Iterator[CellOutput]:
        ray = self.ray
        self.start()
        need = self.resources()
        threads = int(need["num_cpus"])
        cell_fn = ray.remote(run_shipped_cell).options(max_retries=self.options.max_retries, **need)
        prep_fn = ray.remote(run_prepare).options(max_retries=self.options.max_retries, **need)
        marker: str | None = None
        prepared: dict[tuple, Any] = {}
        running: dict[Any, tuple[CellTask, float]] = {}
        source = iter(tasks)
        exhausted = False
        window = self.slots()
        try:
            while True:
                # Claim (pull) only as many cells as can run now: a killed driver loses only those.
                while not exhausted and len(running) < window:
                    task = next(source, None)
                    if task is None:
                        exhausted = True
                        break
                    remote_task = _absolute(task)
                    if marker is None:
                        marker = _cache_marker(remote_task.cache_dir)
                    dependency = None
                    if _has_prepare(self.plugins, task.cell.method):
                        group = (task.cell.method, task.cell.dataset, task.cell.ipc)
                        if group not in prepared:
                            prepared[group] = prep_fn.remote(remote_task, threads, marker)
                        dependency = prepared[group]
                    saved = (task.artifact_path.read_bytes()
                             if task.artifact_path.exists() and not task.force else None)
                    ref = cell_fn.remote(remote_task, saved, threads, dependency)
                    running[ref] = (task, time.perf_counter())
                if not running:
                    return
                done, _ = ray.wait(list(running), num_returns=1)
                ref = done[0]
                task, _t0 = running.pop(ref)
                yield from self._collect(ref, task)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
            for ref in prepared.values():
                ray.cancel(ref, force=True)
            if marker is not None:
                Path(marker).unlink(missing_ok=True)
            self.close()

    def _collect(self, ref: Any, task: CellTask) -> Iterator[CellOutput]:
        try:
            shipped: ShippedCell = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the worker died twice, or Ray lost the task
            reason = _ray_failure(exc)
            log.warning("%s failed on the cluster: %s", task.cell.label(), reason)
            records = [_lost_cell_record(task, arch, reason, self.options.max_retries) for arch in task.archs]
            yield CellOutput(task, records, finished=True)
            return
        if shipped.worker.get("prepare_error"):
            log.warning("building the caches of %s failed (%s); the cell built them itself",
                        task.cell.label(), shipped.worker["prepare_error"])
        if shipped.saved_set is not None:
            # the set first: a record never points to a file that is not there yet
            atomic.write_bytes(task.artifact_path, shipped.saved_set)
        yield CellOutput(task, shipped.records, finished=True)

def _cache_marker(cache_dir: str) -> str:
    """A file in the cache folder that a prepare task on another machine checks for: missing
    there means the folder is not shared, and that node would build its caches again."""
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".driver-{socket.gethostname()}-{os.getpid()}"
    marker.write_text(now_iso())
    return str(marker)


def _ray_failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:500]


def _lost_cell_record(task: CellTask, arch: str, reason: str, retries: int) -> dict[str, Any]:
    c: Cell = task.cell
    p = task.protocol
    facts = {"protocol": p.name, "protocol_hash": p.hash, "protocol_budget": p.budget, "distill_arch": p.distill_arch,
             "method": c.method, "dataset": c.dataset, "ipc": c.ipc, "seed": c.seed, "started_at": now_iso()}
    exc = ClusterError(f"the cell's worker failed ({retries} retr{'y' if retries == 1 else 'ies'}): {reason}")
    return RunRecord.failed(facts, arch=arch, exc=exc, finished_at=now_iso()).to_json()
