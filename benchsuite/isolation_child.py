"""What runs in the child process a method distils in (see :mod:`benchsuite.isolation`).

The fork server imports this module once, which imports torch, the suite and the bundled method
modules, so each child forked from it starts with them loaded. Nothing here loads a dataset or
runs a method at import time.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchsuite.cell import CellTask, check_set, make_context
from benchsuite.data import DataSources, load_dataset
from benchsuite.isolation import PROGRESS_INTERVAL, describe_failure, watch_parent
from benchsuite.measure import measure

_PLUGIN_SETS: dict[tuple, Any] = {}


@dataclass(frozen=True)
class IsolatedJob:
    """One cell's work for a child: ``distill`` (write the checked set) or ``prepare`` (build the
    caches the method reads, return their description)."""

    task: CellTask
    mode: str = "distill"


def plugin_set(plugin_dirs: tuple[str, ...], entry_points: bool) -> Any:
    key = (tuple(plugin_dirs), bool(entry_points))
    if key not in _PLUGIN_SETS:
        from benchsuite.plugins import get_plugin_manager

        _PLUGIN_SETS[key] = get_plugin_manager(list(plugin_dirs), entry_points=entry_points)
    return _PLUGIN_SETS[key]


#: Modules torch imports lazily on first use, each child would otherwise import again: the first
#: optimizer a method builds pulls in ``torch._dynamo`` (measured 1.2-1.7 s per child on 2 cores,
#: more than a smoke cell's whole distillation). Imports only: nothing is computed in the server,
#: so no thread pool exists there when it forks.
LAZY_TORCH_MODULES = ("torch.optim", "torch._dynamo", "torch.func", "torch.nn.functional")


def _preload() -> None:
    """Import the bundled methods and torch's lazily imported parts in the fork server (a broken
    plugin must not stop the server: the child that needs it reports the error)."""
    import importlib

    for name in LAZY_TORCH_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a torch without it: the child imports what it needs
            pass
    try:
        plugin_set((), False)
    except Exception:  # noqa: BLE001 - reported by the child that loads the plugins again
        _PLUGIN_SETS.clear()


class _PipeLogHandler(logging.Handler):
    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.conn.send(("log", record.name, record.levelno, record.getMessage()))
        except Exception:  # noqa: BLE001 - a log line is not worth failing the cell for
            pass


class _ProgressSender:
    """``progress(step, total, **info)`` in the child: at most one message per interval (and the
    last step always), so a method reporting each iteration costs little."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.last = 0.0

    def __call__(self, step: int, total: int | None = None, **info: Any) -> None:
        import time

        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL and step != total:
            return
        self.last = now
        try:
            self.conn.send(("progress", (step, total), {k: _plain(v) for k, v in info.items()}))
        except Exception:  # noqa: BLE001 - the parent stopped listening; the result still counts
            pass


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else str(tuple(value.shape))
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def child_main(job: IsolatedJob, out_path: str, conn: Any, threads: int, log_level: int, parent_pid: int) -> None:
    """The child's entry point: run ``job``, send ``("done", facts)`` or ``("error", ...)``."""
    watch_parent(parent_pid)
    torch.set_num_threads(threads)
    root = logging.getLogger("benchsuite")
    root.handlers[:] = [_PipeLogHandler(conn)]
    root.setLevel(log_level)
    root.propagate = False
    try:
        facts = _run(job, Path(out_path), _ProgressSender(conn))
        conn.send(("done", facts))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the runner, which decides
        try:
            conn.send(("error", *describe_failure(exc)))
        except Exception:  # noqa: BLE001 - an unpicklable detail: send the bare facts
            conn.send(("error", type(exc).__name__, str(exc)[:2000], "", False, "exception"))
    finally:
        conn.close()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed stream
                pass
        # Leave at once: atexit handlers and threads a method started must not outlive the cell.
        os._exit(0)


def _run(job: IsolatedJob, out_path: Path, progress: Any) -> dict[str, Any]:
    task = job.task
    cell = task.cell
    device = torch.device(task.device)
    plugins = plugin_set(task.plugin_dirs, task.entry_points)
    method_cls = plugins.methods.get(cell.method)
    entry = plugins.datasets.get(plugins.datasets.canonical(cell.dataset))
    sources = DataSources.resolve(task.data_root, allow_download=task.allow_download)
    # The training split alone: the test split's cache file is never opened here.
    data = load_dataset(entry, sources, Path(task.cache_dir), device,
                        train_limit_per_class=task.protocol.train_limit_per_class, splits=("train",))
    config = method_cls.resolve_config(data.spec.name, cell.ipc, task.protocol, task.overrides)
    ctx = make_context(task, plugins.archs, data.spec, device, progress)
    method = method_cls(config)
    if job.mode == "prepare":
        built = method.prepare(data.train, cell.ipc, ctx)
        return {"saved": False, "seconds": 0.0, "peak_bytes": 0, "memory_kind": "rss",
                "extra_facts": {"built": built}}
    counts = data.train.class_counts()
    with measure(device) as m:
        syn = method.distill(data.train, cell.ipc, ctx)
    del data, ctx  # nothing the method was handed is needed any more
    check_set(syn, cell, method_cls, spec=entry.spec, train_counts=counts, device=device)
    syn.save(out_path)
    return {"saved": True, "seconds": m.seconds, "peak_bytes": m.peak_bytes, "memory_kind": m.memory_kind}


_preload()
