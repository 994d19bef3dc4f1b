"""Distil one cell outside a sweep, and build a method's caches ahead of a sweep.

:func:`probe` is the public "distill one cell" call: calibration, per-iteration timing, a quick
look at a method with other hyperparameters. It uses the same worker, context, contract and
evaluator as ``benchsuite run``, writes no record, and saves the set only when asked.
:func:`prepare` calls each method's :meth:`benchsuite.Method.prepare`, so that expert trajectories
and generative priors exist before the cells that read them. Both back command-line subcommands
(``benchsuite probe``, ``benchsuite prepare``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from benchsuite.api import SyntheticSet
from benchsuite.cell import Cell, CellTask, CellWorker, ProgressFactory, no_progress
from benchsuite.evaluate import EvalResult
from benchsuite.protocol import Protocol, load_protocol
from benchsuite.provenance import code_digest, git_commit
from benchsuite.runner import default_cache_dir, resolve_device


@dataclass
class ProbeResult:
    """What probing a cell gives: the resolved config, the set, its cost, and (unless skipped)
    the evaluation on one architecture."""

    config: Any
    synthetic: SyntheticSet
    distill_seconds: float
    distill_peak_memory_bytes: int
    evaluation: EvalResult | None = None
    saved_to: Path | None = None


def _protocol(protocol: str | Protocol, eval_changes: dict[str, Any] | None) -> Protocol:
    p = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    return p.with_overrides(eval=eval_changes) if eval_changes else p


def _plugins(plugins: Any) -> Any:
    if plugins is not None:
        return plugins
    from benchsuite.plugins import get_plugin_manager

    return get_plugin_manager()


def load_data(dataset: str, *, protocol: str | Protocol = "quick", device: str = "cpu", data_root: str | None = None,
              cache_dir: Path | None = None, allow_download: bool = True, plugins: Any = None) -> tuple[Any, Any]:
    """A dataset loaded as a cell would load it (the protocol's train cap, the cache): returns the
    :class:`~benchsuite.data.LoadedDataset` and the plugin set."""
    plugins = _plugins(plugins)
    proto = _protocol(protocol, None)
    torch_device = resolve_device(device)
    task = CellTask(cell=Cell("-", plugins.datasets.canonical(dataset), 0, 0), archs=proto.archs, protocol=proto,
                    results_dir="", cache_dir=str(cache_dir or default_cache_dir()), device=str(torch_device),
                    data_root=data_root, allow_download=allow_download)
    return CellWorker(plugins).dataset(task, torch_device), plugins


def probe(method: str, dataset: str = "fashionmnist", ipc: int = 1, *, protocol: str | Protocol = "quick",
          seed: int = 0, overrides: dict[str, Any] | None = None, eval_changes: dict[str, Any] | None = None,
          evaluate: bool = True, arch: str | None = None, save: Path | None = None, device: str = "auto",
          data_root: str | None = None, cache_dir: Path | None = None, allow_download: bool = True,
          plugins: Any = None, progress: ProgressFactory = no_progress) -> ProbeResult:
    """Distil ``method`` on (``dataset``, ``ipc``, ``seed``) with the protocol's budget and the
    ``overrides`` (method hyperparameters), then evaluate the set on ``arch`` (default: the
    protocol's distillation arch) with the protocol's recipe changed by ``eval_changes`` (for
    example ``{"models": 1, "epochs": 100}``). The same seed gives the same set as ``run``."""
    plugins = _plugins(plugins)
    proto = _protocol(protocol, eval_changes)
    name = plugins.methods.canonical(method)
    data_name = plugins.datasets.canonical(dataset)
    worker = CellWorker(plugins, progress)
    torch_device = resolve_device(device)
    with tempfile.TemporaryDirectory() as scratch:
        task = CellTask(cell=Cell(name, data_name, ipc, seed), archs=(arch or proto.distill_arch,), protocol=proto,
                        results_dir=scratch, cache_dir=str(cache_dir or default_cache_dir()),
                        device=str(torch_device), overrides=dict(overrides or {}), data_root=data_root,
                        allow_download=allow_download, tag="[probe]")
        data = worker.dataset(task, torch_device)
        method_cls = plugins.methods.get(name)
        config = method_cls.resolve_config(data.spec.name, ipc, proto, task.overrides)
        syn, m = worker.distill_fresh(task, method_cls, config, data, torch_device)
        result = ProbeResult(config, syn, m.seconds, m.peak_bytes)
        if save is not None:
            syn.save(Path(save), metadata={"method": name, "method_version": method_cls.version,
                                           "method_config": dataclasses.asdict(config), "dataset": data_name,
                                           "ipc": ipc, "seed": seed, "protocol": proto.name, "probe": True,
                                           "commit": git_commit(), "code_digest": code_digest()})
            result.saved_to = Path(save)
        if evaluate:
            result.evaluation, _ = worker.evaluate(task, task.archs[0], syn, data, torch_device)
    return result


@dataclass
class Prepared:
    method: str
    dataset: str
    ipc: int
    built: dict[str, Any] | None


def prepare(methods: list[str], protocol: str | Protocol = "quick", *, overrides: dict[str, dict[str, Any]] | None = None,
            device: str = "auto", data_root: str | None = None, cache_dir: Path | None = None,
            allow_download: bool = True, plugins: Any = None, progress: ProgressFactory = no_progress,
            on_done: Callable[[Prepared], None] | None = None) -> list[Prepared]:
    """Build every cache the protocol's cells of ``methods`` will read (each method's
    :meth:`~benchsuite.Method.prepare`, per dataset and IPC; caches are keyed, so a cell that
    shares a cache with another builds it once)."""
    plugins = _plugins(plugins)
    proto = _protocol(protocol, None)
    worker = CellWorker(plugins, progress)
    torch_device = resolve_device(device)
    out = []
    for dataset in proto.datasets:
        for ipc in proto.ipcs:
            for method in methods:
                name = plugins.methods.canonical(method)
                method_cls = plugins.methods.get(name)
                task = CellTask(cell=Cell(name, plugins.datasets.canonical(dataset), ipc, proto.seeds[0]),
                                archs=proto.archs, protocol=proto, results_dir="", device=str(torch_device),
                                cache_dir=str(cache_dir or default_cache_dir()),
                                overrides=dict((overrides or {}).get(name, {})), data_root=data_root,
                                allow_download=allow_download, tag="[prepare]")
                spec_name = plugins.datasets.canonical(dataset)
                method_cls.resolve_config(spec_name, ipc, proto, task.overrides)  # a bad --set fails here
                built = worker.prepare_isolated(task, f"[prepare] {name} {spec_name} ipc{ipc}")
                done = Prepared(name, spec_name, ipc, built)
                out.append(done)
                if on_done is not None:
                    on_done(done)
    return out
