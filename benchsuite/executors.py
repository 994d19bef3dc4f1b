"""Executors run the cells the driver hands them and give back their records.

The driver (:class:`benchsuite.runner.Runner`) plans the grid, claims each cell (its lock), and
passes :class:`CellTask` values (plain and picklable) to an executor's :meth:`Executor.map`. The
executor yields :class:`CellOutput` values in the driving process, which alone writes records.
:class:`SerialExecutor` runs cells one after another in this process; an executor for a cluster
plugs in here the same way.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import torch

from benchsuite.cell import CellTask, CellWorker
from benchsuite.devices import resolve_device


@dataclass
class CellOutput:
    """Records of ``task`` (JSON objects) as they come; ``finished`` marks the task's last output."""

    task: CellTask
    records: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False


class Executor(abc.ABC):
    def resolve_device(self, name: str) -> torch.device:
        """The device the cells run on (``auto``, ``cpu``, ``cuda``), checked where they run: this
        machine for the serial executor, the cluster's resources for a cluster's."""
        return resolve_device(name)

    def close(self) -> None:
        """Release what the executor holds (a cluster connection); safe to call twice."""

    @abc.abstractmethod
    def map(self, tasks: Iterable[CellTask]) -> Iterator[CellOutput]:
        """Run ``tasks`` (pulled lazily: the driver claims a cell as it hands it over) and yield their
        outputs; every task ends with one output whose ``finished`` is true."""


class SerialExecutor(Executor):
    """One cell at a time in this process; each record is yielded as soon as it exists."""

    def __init__(self, worker: CellWorker) -> None:
        self.worker = worker

    def map(self, tasks: Iterable[CellTask]) -> Iterator[CellOutput]:
        for task in tasks:
            for record in self.worker.run(task):
                yield CellOutput(task, [record])
            yield CellOutput(task, finished=True)


def run_in_this_process(task: CellTask) -> list[dict[str, Any]]:
    """Run ``task`` in a process that has no plugins loaded yet (another worker process, a cluster
    node): load the plugins the task names, then return all its records. What a remote executor
    calls; its records go back to the driver, which writes them."""
    from benchsuite.plugins import get_plugin_manager

    plugins = get_plugin_manager(task.plugin_dirs, entry_points=task.entry_points)
    return list(CellWorker(plugins).run(task))
