"""The run's side effects are plugins on hooks, called through pluggy, and cells cross an executor
seam as plain values: a user observer needs no change to the core, and another executor (here a
process pool) runs the same cells to the same records."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import textwrap
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, Iterator

from benchsuite.cell import Cell, CellTask
from benchsuite.executors import CellOutput, Executor, run_in_this_process
from benchsuite.plugins import get_plugin_manager
from benchsuite.protocol import load_protocol
from benchsuite.records import read_records
from benchsuite.runner import RunOptions, Runner
from conftest import run_cli

OBSERVER = textwrap.dedent('''
    import json
    from pathlib import Path
    import benchsuite

    LOG = Path(__file__).with_name("observed.jsonl")

    @benchsuite.hookimpl
    def run_started(protocol, cells):
        LOG.open("a").write(json.dumps({"event": "start", "cells": len(cells)}) + "\\n")

    @benchsuite.hookimpl
    def record_ready(record, run_record, results_dir):
        on_disk = (Path(results_dir) / "records.jsonl").read_text().count("\\n")
        LOG.open("a").write(json.dumps({"event": "record", "method": run_record.method,
                                        "acc": record["accuracy"]["values"], "lines_on_disk": on_disk}) + "\\n")

    @benchsuite.hookimpl
    def run_finished(summary):
        LOG.open("a").write(json.dumps({"event": "finish", "ok": summary.ok_records}) + "\\n")
''')

FAILING_OBSERVER = textwrap.dedent('''
    import benchsuite

    @benchsuite.hookimpl
    def record_ready(record):
        raise RuntimeError("the tracking server is down")
''')


def _run(tmp_path, plugin_dir, *extra):
    return run_cli("--plugins-dir", str(plugin_dir), "run", "--methods", "random,herding", "--protocol", "smoke",
                   "--ipc", "1", "--eval", "epochs=1", "--results", str(tmp_path / "results"), "--cache-dir",
                   str(tmp_path / "cache"), "--quiet", "--no-download", *extra)


def test_a_user_observer_sees_every_record_after_it_is_stored(tmp_path):
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "observer.py").write_text(OBSERVER)
    assert _run(tmp_path, folder) == 0
    events = [json.loads(line) for line in (folder / "observed.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "record", "record", "finish"]
    assert events[0]["cells"] == 2 and events[-1]["ok"] == 2
    records = read_records(tmp_path / "results")
    assert [e["method"] for e in events[1:3]] == [r.method for r in records]
    assert [e["acc"] for e in events[1:3]] == [r.accuracy.values for r in records]
    assert [e["lines_on_disk"] for e in events[1:3]] == [1, 2], "the store runs first"


def test_a_failing_observer_does_not_stop_the_run(tmp_path, caplog):
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "failing.py").write_text(FAILING_OBSERVER)
    assert _run(tmp_path, folder) == 0
    assert len(read_records(tmp_path / "results")) == 2
    assert "a plugin failed in record_ready" in caplog.text


def test_every_run_hook_goes_through_pluggy_and_the_store_is_a_registered_plugin(tmp_path):
    plugins = get_plugin_manager(entry_points=False)
    calls, registered = [], []

    def before(hook_name, hook_impls, kwargs):
        calls.append((hook_name, [i.plugin_name for i in hook_impls]))
        if hook_name == "record_ready":
            registered.extend(name for name, _ in plugins.pm.list_name_plugin())

    undo = plugins.pm.add_hookcall_monitoring(before, lambda *a: None)
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 1})
    options = RunOptions(results_dir=tmp_path / "r", cache_dir=tmp_path / "c", quiet=True, allow_download=False)
    Runner(plugins, protocol, options).run(["random"])
    undo()
    names = [name for name, _ in calls]
    assert names[0] == "run_started" and names[-1] == "run_finished"
    assert {"pending_archs", "cell_started", "record_ready", "make_progress"} <= set(names)
    assert dict(calls)["record_ready"] == ["benchsuite.record-store"]
    assert "benchsuite.record-store" in registered
    assert "benchsuite.record-store" not in [n for n, _ in plugins.pm.list_name_plugin()], "unregistered after"


def test_a_cell_task_and_its_records_are_plain_picklable_values(tmp_path):
    task = CellTask(cell=Cell("random", "synthetic", 1, 0), archs=("convnet-w32",),
                    protocol=load_protocol("smoke").with_overrides(eval={"epochs": 1}), results_dir=str(tmp_path),
                    cache_dir=str(tmp_path / "c"), allow_download=False)
    assert pickle.loads(pickle.dumps(task)) == task
    records = run_in_this_process(task)
    assert pickle.loads(pickle.dumps(records)) == records and records[0]["status"] == "ok"


class ProcessPoolCells(Executor):
    """Another executor through the same seam: each cell in a fresh worker process."""

    def map(self, tasks: Iterable[CellTask]) -> Iterator[CellOutput]:
        # spawn, not fork: a forked copy of a process whose torch threads already ran can deadlock
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            for task in tasks:
                yield CellOutput(task, pool.submit(run_in_this_process, task).result(), finished=True)


def test_another_executor_gives_the_same_records_as_the_serial_one(tmp_path):
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 2})

    def run(folder, executor=None):
        options = RunOptions(results_dir=tmp_path / folder, cache_dir=tmp_path / "c", quiet=True,
                             allow_download=False, device="cpu")
        Runner(get_plugin_manager(entry_points=False), protocol, options, executor=executor).run(["random", "dm"])
        return {(r.method, r.arch): r.accuracy.values for r in read_records(tmp_path / folder)}

    serial = run("serial")
    assert run("pool", ProcessPoolCells()) == serial and len(serial) == 2
