"""The hooks a benchsuite plugin may implement. Built-in features use the same hooks.

Mark implementations with ``@benchsuite.hookimpl``; a misspelt hook name is caught at start-up by
``check_pending`` and reported with the plugin's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pluggy

PROJECT = "benchsuite"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register(MethodClass)`` for each :class:`benchsuite.Method`
    subclass this plugin provides. The class's ``name`` must be unique across all plugins."""


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register(entry)`` with a :class:`benchsuite.data.DatasetEntry`
    (a :class:`DatasetSpec` plus a reader of uint8 arrays) for each dataset provided."""


@hookspec
def register_architectures(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register(name, factory, description="")`` where
    ``factory(channels, num_classes, image_size)`` returns a fresh ``nn.Module`` with ``forward``
    (logits) and ``embed`` (features before the classifier)."""


# -- the run: the suite's own store and terminal output are plugins on these hooks too -------


@hookspec
def run_started(protocol: Any, cells: list[Any], results_dir: Path) -> None:
    """Called once before the first cell, after every check passed. ``cells`` is the planned grid
    (:class:`benchsuite.cell.Cell`: method, dataset, ipc, seed), in the order it runs."""


@hookspec(firstresult=True)
def pending_archs(cell: Any, archs: list[str], protocol_hash: str, results_dir: Path,
                  identity: dict[str, Any]) -> list[str] | None:
    """Which of ``archs`` still need a record for ``cell``; the first non-``None`` answer wins. The
    built-in record store answers from ``records.jsonl`` (resume): an arch is done when an ``ok``
    record of the same identity exists. ``identity`` holds what the cell would run with now:
    ``method_version``, ``config_digest``, ``source_digest``, ``dataset_fingerprint`` (a record
    that differs in any of them is another result, so the cell runs again). Not called under
    ``--force``."""


@hookspec
def cell_started(cell: Any, index: int, total: int) -> None:
    """A cell is about to distil (or reuse its saved set) and evaluate; ``index`` is 1-based."""


@hookspec
def cell_finished(cell: Any) -> None:
    """Every record of ``cell`` has been through ``record_ready`` (ok or error)."""


@hookspec
def cell_skipped(cell: Any, index: int, total: int, reason: str) -> None:
    """A cell needs no work (``reason``: done already, or finished by another run), or another run
    holds it and this run will come back to it at the end."""


@hookspec
def cell_waiting(cell: Any, index: int, total: int) -> None:
    """This run now waits for another run that holds ``cell``."""


@hookspec
def record_ready(record: dict[str, Any], run_record: Any, results_dir: Path) -> None:
    """Called for each run record (status ``ok`` or ``error``): ``record`` is its JSON object (as
    written to ``records.jsonl``), ``run_record`` the typed :class:`benchsuite.records.RunRecord`.
    The built-in store runs first (``tryfirst``) and appends the line; observers (loggers,
    trackers) see a record that is already on disk. An observer's exception is logged and the run
    goes on; the store's stops the run."""


@hookspec
def run_finished(summary: Any) -> None:
    """Called once after the last cell with the :class:`benchsuite.runner.RunSummary`."""


@hookspec(firstresult=True)
def make_progress(description: str) -> Callable[..., None] | None:
    """A ``progress(step, total, **info)`` callable for one phase of a cell (distil, evaluate),
    optionally with ``close()``; the first non-``None`` answer wins (the terminal's bars). Without
    one, progress is not shown."""
