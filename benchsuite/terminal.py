"""Terminal output of a run, as a plugin: the command line registers it unless ``--quiet``.

It prints one line per cell and per record, draws the progress bars (``make_progress``), and shows
the library's INFO log lines (dataset loaded, set distilled or reused) without breaking the bars.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from benchsuite.hookspecs import hookimpl
from benchsuite.progress import Progress, say


def _key(cell: Any) -> tuple:
    return (cell.method, cell.dataset, cell.ipc, cell.seed)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


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
        self._total, self._skipped, self._done = len(cells), 0, 0
        self._t0 = time.monotonic()
        self._running: dict[tuple, float] = {}
        self._last_started: tuple | None = None
        say(f"protocol {protocol.name} ({protocol.hash}): {len(cells)} cell(s); eval on {', '.join(protocol.archs)}")

    @hookimpl
    def cell_started(self, cell: Any, index: int, total: int) -> None:
        self._running[_key(cell)] = time.monotonic()
        self._last_started = _key(cell)
        say(f"[{index}/{total}] {cell.label()}")

    @hookimpl
    def cell_skipped(self, cell: Any, index: int, total: int, reason: str) -> None:
        if not reason.startswith("another run is on it"):  # that one comes back later
            self._skipped += 1
        say(f"[{index}/{total}] {cell.label()}: {reason}")

    @hookimpl
    def cell_waiting(self, cell: Any, index: int, total: int) -> None:
        say(f"[{index}/{total}] {cell.label()}: waiting for the other run that holds it")

    @hookimpl
    def record_ready(self, run_record: Any) -> None:
        r = run_record
        key = (r.method, r.dataset, r.ipc, r.seed)
        # With several cells running at once, a record line names its cell.
        who = "" if key == self._last_started and len(self._running) <= 1 else \
            f"{r.method} {r.dataset} ipc{r.ipc} seed{r.seed} "
        if r.status == "ok":
            seconds = f" in {r.eval_seconds:.1f}s" if r.eval_seconds is not None else ""
            say(f"  {who}{r.arch}: {r.accuracy.mean:.2f} ± {r.accuracy.std:.2f} (n={r.accuracy.n}){seconds}")
        else:
            say(f"  {who}{r.arch}: ERROR {r.error.type}: {r.error.message}")

    @hookimpl
    def cell_finished(self, cell: Any) -> None:
        self._running.pop(_key(cell), None)
        self._done += 1
        say("  " + self.status_line(time.monotonic()))

    def status_line(self, now: float) -> str:
        """Cells done of those to run, elapsed, an estimate of what is left, and the running cells."""
        to_run = max(self._total - self._skipped, self._done)
        elapsed = now - self._t0
        left = elapsed / self._done * (to_run - self._done) if self._done else None
        line = f"{self._done}/{to_run} cell(s) done, {_duration(elapsed)} elapsed"
        if left is not None and to_run > self._done:
            line += f", about {_duration(left)} left"
        if self._running:
            line += "; running: " + ", ".join(f"{m} {d} ipc{i} seed{s} ({_duration(now - t)})"
                                              for (m, d, i, s), t in self._running.items())
        return line

    @hookimpl
    def run_finished(self, summary: Any) -> None:
        waited = f" ({summary.waited} waited for another run)" if summary.waited else ""
        say(f"done in {summary.seconds:.0f}s: {summary.ok_records} ok record(s), {summary.error_records} error(s), "
            f"{summary.skipped} cell(s) skipped{waited}")

    @hookimpl
    def make_progress(self, description: str) -> Callable[..., None]:
        return Progress(description)
