"""Records and artifacts that survive faults: torn lines, junk lines, unknown schemas, corrupt
saved sets, a killed report, and two runs sharing one results folder."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from benchsuite import atomic
from benchsuite.api import SyntheticSet
from benchsuite.locks import cell_lock
from benchsuite.plugins import get_plugin_manager
from benchsuite.protocol import load_protocol
from benchsuite.records import SCHEMA_VERSION, append_record, read_records
from benchsuite.report import write_report
from benchsuite.runner import RunOptions, Runner
from conftest import run_cli
from installed import current


def record(method="random", ipc=1, **changes):
    r = {"schema_version": 1, "protocol": "smoke", "protocol_hash": "h", "method": method, "dataset": "synthetic",
         "ipc": ipc, "arch": "convnet-w32", "distill_arch": "convnet-w32", "seed": 0, "status": "ok",
         "accuracy": {"mean": 50.0, "std": 0.0, "n": 1, "values": [50.0]}}
    if method in ("dm", "random"):  # the reports rank them: as the installed methods make them
        r = current(r)
    return r | changes


def _line(r):
    return (json.dumps(r) + "\n").encode()


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path, caplog):
    append_record(tmp_path, record("a"))
    append_record(tmp_path, record("b"))
    path = tmp_path / "records.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 25])  # the writer of "b" was killed mid-line
    append_record(tmp_path, record("c"))
    with caplog.at_level(logging.WARNING, "benchsuite"):
        assert [r.method for r in read_records(tmp_path)] == ["a", "c"]
    assert "line 2" in caplog.text and "not valid JSON" in caplog.text


def test_junk_lines_are_skipped_with_one_warning_per_file_and_never_rewritten(tmp_path, caplog):
    path = tmp_path / "records.jsonl"
    content = (_line(record("a")) + b"\xff\xfe not utf-8\n" + b"{not json\n" + b"[1, 2, 3]\n"
               + _line(record("b", ipc="1")) + _line(record("c", status="finished")) + _line(record("d")))
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, "benchsuite"):
        assert [r.method for r in read_records(tmp_path)] == ["a", "d"]
    warnings = [r for r in caplog.records if "not run records" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "skipped 5 line(s)" in message and str(path) in message
    for n in (2, 3, 4, 5, 6):
        assert f"line {n}:" in message
    assert "not UTF-8" in message and "'ipc' is str" in message
    assert path.read_bytes() == content


def test_run_and_report_go_on_past_junk_lines(tmp_path, caplog):
    results = tmp_path / "results"
    results.mkdir()
    (results / "records.jsonl").write_bytes(b"\xff junk\n[1]\n")
    with caplog.at_level(logging.WARNING, "benchsuite"):
        rc = run_cli("run", "--methods", "random", "--protocol", "smoke", "--ipc", "1", "--eval", "epochs=1",
                     "--results", str(results), "--cache-dir", str(tmp_path / "c"), "--quiet", "--no-download")
        assert rc == 0
        assert run_cli("report", "--results", str(results)) == 0
    assert "random" in (results / "leaderboard.md").read_text()
    warnings = [r.getMessage() for r in caplog.records if "not run records" in r.getMessage()]
    assert warnings and all("skipped 2 line(s)" in w and "line 1: not UTF-8" in w for w in warnings)
    assert len(warnings) == 1, "a process says it once per file, not at every read"


def test_a_record_of_an_unknown_schema_version_is_not_ranked(tmp_path, caplog):
    (tmp_path / "records.jsonl").write_bytes(_line(record("dm")) + _line(record("future", schema_version=SCHEMA_VERSION + 1)))
    with caplog.at_level(logging.WARNING, "benchsuite"):
        board, _, summary = write_report(tmp_path)
    assert set(summary["method"]) == {"dm"}
    assert "future" not in board.read_text()
    assert "records.jsonl" in caplog.text and f"line 2: schema_version {SCHEMA_VERSION + 1}" in caplog.text


def test_a_nan_record_is_refused_by_the_writer(tmp_path):
    with pytest.raises(ValueError, match="accuracy.values"):
        append_record(tmp_path, record(accuracy={"values": [float("nan")]}))
    assert not (tmp_path / "records.jsonl").exists() or (tmp_path / "records.jsonl").read_text() == ""


def _runner(tmp_path, **opts):
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 1})
    options = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                         allow_download=False, **opts)
    return Runner(get_plugin_manager(entry_points=False), protocol, options)


def test_a_corrupt_saved_set_is_moved_aside_and_distilled_again(tmp_path):
    _runner(tmp_path).run(["herding"])
    [artifact] = (tmp_path / "results" / "artifacts").rglob("ipc1-seed0-*.pt")
    good = SyntheticSet.load(artifact)[0]
    artifact.write_bytes(artifact.read_bytes()[:100])  # a disk fault, or a copy cut short
    (tmp_path / "results" / "records.jsonl").unlink()
    summary = _runner(tmp_path).run(["herding"])
    assert summary.ok_records == 1 and summary.error_records == 0
    assert list(artifact.parent.glob(f"{artifact.name}.corrupt-*"))
    again = SyntheticSet.load(artifact)[0]
    assert (again.images == good.images).all()


def test_atomic_writes_leave_the_old_file_when_interrupted(tmp_path, monkeypatch):
    results = tmp_path
    (results / "records.jsonl").write_bytes(_line(record("dm")))
    board, summary_csv, _ = write_report(results)
    before = board.read_text(), summary_csv.read_text()

    def killed(fd):
        raise OSError("killed mid-write")

    monkeypatch.setattr(atomic.os, "fsync", killed)
    (results / "records.jsonl").write_bytes(_line(record("dm")) + _line(record("random")))
    with pytest.raises(OSError):
        write_report(results)
    assert (board.read_text(), summary_csv.read_text()) == before
    assert not list(results.glob(".*.tmp")), "no temporary file is left behind"


def test_two_writers_of_one_path_get_their_own_temporary_files(tmp_path):
    target = tmp_path / "set.pt"
    with atomic.replacing(target) as a, atomic.replacing(target) as b:
        assert a != b and a.parent == b.parent == tmp_path
        a.write_text("one")
        b.write_text("two")
    # b finished first, a last: the last rename wins with a whole file, and no temporary is left
    assert target.read_text() == "one" and sorted(p.name for p in tmp_path.iterdir()) == ["set.pt"]


def test_a_cell_another_run_holds_is_waited_for_then_run_once(tmp_path):
    runner = _runner(tmp_path)
    held = cell_lock(runner.results_dir, runner.protocol.hash, "random", "synthetic", 1, 0)
    held.acquire()
    box = {}
    worker = threading.Thread(target=lambda: box.update(summary=runner.run(["random", "herding"])))
    worker.start()
    deadline = time.time() + 120
    while time.time() < deadline:  # herding (not held) finishes while random waits
        if any(r.method == "herding" for r in read_records(runner.results_dir, warn=False)):
            break
        time.sleep(0.05)
    assert not any(r.method == "random" for r in read_records(runner.results_dir, warn=False))
    held.release()
    worker.join(timeout=120)
    summary = box["summary"]
    assert summary.waited == 1 and summary.ok_records == 2
    assert sorted(r.method for r in read_records(runner.results_dir)) == ["herding", "random"]


def test_two_runs_into_one_folder_never_duplicate_a_record(tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "benchsuite", "run", "--methods", "random,herding,kcenter", "--protocol", "smoke",
           "--eval", "epochs=5", "--results", str(results), "--cache-dir", str(tmp_path / "cache"), "--quiet",
           "--no-download", "--no-report"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    keys = [r.key for r in read_records(results)]
    assert len(keys) == 6 and len(set(keys)) == 6, "each cell ran exactly once"
