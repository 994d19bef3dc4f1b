"""The method under test distils in a process of its own, which holds the training split alone.

Why a process: a method is plugin code, and what it does to the objects it is handed (writing
into the real images, keeping references, changing module state) must not reach any other cell,
nor may it find the test split anywhere in memory. So each distillation runs in a fresh child
process that loads the training split from the dataset cache (never the test split's file),
builds the method's :class:`~benchsuite.api.RunContext` with the methods' cache folder (which
holds no dataset), distils, checks the set against the contract, and writes it to a scratch file.
The caller (the evaluating process) loads that file, so it never runs the method's code.

Children come from a fork server (:mod:`multiprocessing`'s ``forkserver``) that imported torch,
the suite and the bundled methods once, so a child starts in milliseconds rather than the seconds
a fresh interpreter needs to import torch; the fork server itself never runs a method. A child
watches its parent and exits when the parent is gone, so a killed run leaves no orphan.

The child's progress reports and log lines travel to the parent over a pipe. A time limit ends the
child (``SIGKILL``) and raises :class:`~benchsuite.errors.CellTimeoutError`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import tempfile
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from benchsuite.errors import BenchsuiteError, CellTimeoutError, IsolatedFailure

log = logging.getLogger("benchsuite")

#: Subfolder of the cache folder that methods are given as ``ctx.cache_dir`` (expert
#: trajectories, priors, extractors); the dataset cache lives beside it, out of their reach.
METHODS_CACHE_DIR = "methods"
#: Seconds between progress messages a child sends (a method may report every iteration).
PROGRESS_INTERVAL = 0.1
_SET_FILE = "set.pt"
#: The error type of a child that ended without sending a result (a signal, an abrupt exit).
WORKER_DIED = "WorkerDied"


def method_cache_dir(cache_root: str | Path) -> Path:
    """The folder a method's context names as its cache: ``<cache>/methods``."""
    return Path(cache_root) / METHODS_CACHE_DIR


@dataclass
class DistillResult:
    """What a child distilled: the set (loaded back in the caller) and its cost as measured there."""

    syn: Any
    seconds: float
    peak_bytes: int
    memory_kind: str
    extra_facts: dict[str, Any]


_CONTEXT: Any = None


def _context() -> Any:
    """The fork server context, started once per process with the heavy imports preloaded."""
    global _CONTEXT
    if _CONTEXT is None:
        methods = multiprocessing.get_all_start_methods()
        if "forkserver" in methods:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["benchsuite.isolation_child"])
        else:  # Windows: a fresh interpreter per child (slower start, same isolation)
            ctx = multiprocessing.get_context("spawn")
        _CONTEXT = ctx
    return _CONTEXT


def run_isolated(job: Any, *, progress: Callable[..., None] | None = None, timeout: float | None = None,
                 what: str = "distillation") -> DistillResult:
    """Run ``job`` (an :class:`~benchsuite.isolation_child.IsolatedJob`) in a child process and
    return its set and measurements.

    Raises :class:`CellTimeoutError` when the child runs past ``timeout`` seconds (it is killed),
    :class:`IsolatedFailure` carrying the child's exception when the method failed there,
    and :class:`KeyboardInterrupt` when the method (or the user) interrupted it.
    """
    from benchsuite.api import SyntheticSet
    from benchsuite.isolation_child import child_main

    if timeout is not None and timeout <= 0:
        raise CellTimeoutError(f"no time left for the {what} (cell time limit already spent)")
    ctx = _context()
    scratch = Path(tempfile.mkdtemp(prefix="benchsuite-distill-"))
    parent_end, child_end = ctx.Pipe(duplex=False)
    level = logging.getLogger("benchsuite").getEffectiveLevel()
    proc = ctx.Process(target=child_main, args=(job, str(scratch / _SET_FILE), child_end, torch.get_num_threads(),
                                                level, os.getpid()),
                       name=f"benchsuite-{what}", daemon=False)
    start = time.monotonic()
    try:
        with _main_not_reimported():
            proc.start()
        child_end.close()
        outcome = _wait(proc, parent_end, progress, timeout, start, what)
        if outcome[0] == "error":
            _, type_name, message, tb, expected, kind = outcome
            if kind == "keyboard_interrupt":
                raise KeyboardInterrupt(message)
            raise IsolatedFailure(type_name, message, tb, expected)
        facts = outcome[1]
        syn, _meta = SyntheticSet.load(scratch / _SET_FILE) if facts.get("saved", True) else (None, {})
        return DistillResult(syn, facts["seconds"], facts["peak_bytes"], facts["memory_kind"],
                             facts.get("extra_facts", {}))
    finally:
        if proc.is_alive():
            proc.kill()
        if proc.pid is not None:
            proc.join(timeout=10)
        parent_end.close()
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """While a child is started: tell multiprocessing that ``__main__`` needs no re-import there.

    A forkserver or spawn child normally re-imports the parent's main script (to unpickle objects
    defined in it); the child's entry point lives in this package, so that import would only cost
    time, or fail outright for a script read from standard input, or rerun an unguarded script.
    A main module whose spec is named ``__main__`` is one multiprocessing skips.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    had = "__spec__" in vars(main)
    saved = getattr(main, "__spec__", None)
    main.__spec__ = types.SimpleNamespace(name="__main__")  # type: ignore[assignment]
    try:
        yield
    finally:
        if had:
            main.__spec__ = saved
        else:
            del main.__spec__


def _wait(proc: Any, conn: Any, progress: Callable[..., None] | None, timeout: float | None, start: float,
          what: str) -> tuple:
    """Relay the child's messages until it sends its outcome; enforce the time limit."""
    while True:
        left = None if timeout is None else timeout - (time.monotonic() - start)
        if left is not None and left <= 0:
            proc.kill()
            raise CellTimeoutError(f"the {what} ran past the cell time limit of {timeout:g} s and was ended; "
                                   "raise --cell-timeout (or the protocol's cell_timeout), or lower the method's "
                                   "budget with --set")
        try:
            ready = conn.poll(0.2 if left is None else min(0.2, left))
        except (EOFError, OSError):
            ready = True
        if not ready:
            if not proc.is_alive() and not conn.poll(0):
                return _died(proc, what)
            continue
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return _died(proc, what)
        kind = message[0]
        if kind == "progress" and progress is not None:
            progress(*message[1], **message[2])
        elif kind == "log":
            _, name, levelno, text = message
            logging.getLogger(name).log(levelno, "%s", text)
        elif kind in ("done", "error"):
            return message


def _died(proc: Any, what: str) -> tuple:
    proc.join(timeout=10)
    code = proc.exitcode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
    hint = (" (out of memory? lower the method's budget with --set, or free memory)" if code == -9
            else " (a crash in native code, or os._exit in the method: run it with `benchsuite probe` to see)")
    return ("error", WORKER_DIED, f"the process running the {what} {how}{hint} before returning a set", "",
            False, "died")


def describe_failure(exc: BaseException) -> tuple[str, str, str, bool, str]:
    """``(type name, message, traceback, expected, kind)`` of an exception raised in a child."""
    if isinstance(exc, KeyboardInterrupt):
        kind = "keyboard_interrupt"
    elif isinstance(exc, SystemExit):
        kind = "system_exit"
    else:
        kind = "exception"
    message = str(exc) or type(exc).__name__
    if isinstance(exc, SystemExit):
        message = f"the cell called sys.exit({exc.code!r}); a method must raise an exception instead"
    tb = "".join(traceback.format_exception(exc))[-4000:]
    return type(exc).__name__, message, tb, isinstance(exc, BenchsuiteError), kind


def watch_parent(parent_pid: int) -> None:
    """In a child: exit at once when the process that started the job is gone (a killed run).
    The child's own parent is the fork server, which exits with the run, so a change of parent
    says the same as the run's pid disappearing."""
    first_parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except OSError:
                os._exit(70)
            if os.getppid() != first_parent:
                os._exit(70)

    threading.Thread(target=watch, daemon=True, name="benchsuite-parent-watch").start()
