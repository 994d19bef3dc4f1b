"""Terminal output of a run, as a plugin: the command line registers it unless ``--quiet``.

It prints one line per cell and per record, draws the progress bars (``make_progress``), and shows
the library's INFO log lines (dataset loaded, set distilled or reused) without breaking the bars.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from benchsuite.hookspecs import hookimpl
from benchsuite.progress import Progress, say


class _BarSafeHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        prefix = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        say(f"  {prefix}{self.format(record)}")


class TerminalReporter:
    def __init__(self) -> None:
        self._handler = _BarSafeHandler(logging.INFO)
        self._logger = logging.getLogger("benchsuite")
        self._level, self._propagate = self._logger.level, self._logger.propagate

    def attach(self) -> "TerminalReporter":
        """Show the suite's log lines (INFO and up) through this reporter only, while a run lasts."""
        self._logger.addHandler(self._handler)
        if self._logger.getEffectiveLevel() > logging.INFO:
            self._logger.setLevel(logging.INFO)
        self._logger.propagate = False
        return self

    def detach(self) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._level)
        self._logger.propagate = self._propagate

    @hookimpl
    def run_started(self, protocol: Any, cells: list[Any]) -> None:
        say(f"protocol {protocol.name} ({protocol.hash}): {len(cells)} cell(s); eval on {', '.join(protocol.archs)}")

    @hookimpl
    def cell_started(self, cell: Any, index: int, total: int) -> None:
        say(f"[{index}/{total}] {cell.label()}")

    @hookimpl
    def cell_skipped(self, cell: Any, index: int, total: int, reason: str) -> None:
        say(f"[{index}/{total}] {cell.label()}: {reason}")

    @hookimpl
    def cell_waiting(self, cell: Any, index: int, total: int) -> None:
        say(f"[{index}/{total}] {cell.label()}: waiting for the other run that holds it")

    @hookimpl
    def record_ready(self, run_record: Any) -> None:
        r = run_record
        if r.status == "ok":
            seconds = f" in {r.eval_seconds:.1f}s" if r.eval_seconds is not None else ""
            say(f"  {r.arch}: {r.accuracy.mean:.2f} ± {r.accuracy.std:.2f} (n={r.accuracy.n}){seconds}")
        else:
            say(f"  {r.arch}: ERROR {r.error.type}: {r.error.message}")

    @hookimpl
    def run_finished(self, summary: Any) -> None:
        waited = f" ({summary.waited} waited for another run)" if summary.waited else ""
        say(f"done in {summary.seconds:.0f}s: {summary.ok_records} ok record(s), {summary.error_records} error(s), "
            f"{summary.skipped} cell(s) skipped{waited}")

    @hookimpl
    def make_progress(self, description: str) -> Callable[..., None]:
        return Progress(description)
