"""Where the report writes: a folder it cannot write is one line and exit status 2, and every
file the suite writes gets the permissions records.jsonl gets (the umask's), not 0600."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys

import pytest
import torch
from installed import current

from benchsuite import atomic
from benchsuite.records import append_record
from benchsuite.report import write_report
from benchsuite.site import write_site


def record(method="random", **changes):
    return current({"schema_version": 3, "protocol": "smoke", "protocol_hash": "h", "method": method,
                    "dataset": "synthetic", "ipc": 1, "arch": "convnet-w32", "distill_arch": "convnet-w32",
                    "seed": 0, "status": "ok", "accuracy": {"values": [50.0], "mean": 50.0}}) | changes


def report_stderr(*args: str) -> subprocess.CompletedProcess:
    """``benchsuite report`` in its own process: what a user's terminal shows, logging included."""
    return subprocess.run([sys.executable, "-m", "benchsuite", "--no-entry-points", "report", *args],
                          capture_output=True, text=True, timeout=300)


def test_report_into_a_path_under_a_file_is_one_line_and_status_2(tmp_path):
    results = tmp_path / "results"
    append_record(results, record())
    append_record(results, {k: v for k, v in record("dm").items() if k != "source_digest"})  # stale: warns
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "out"
    done = report_stderr("--results", str(results), "--out", str(out))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("benchsuite: error:")


def _writes_despite_mode(folder) -> bool:
    """Whether this process can write into a folder without write permission (root can)."""
    probe = folder / ".probe"
    try:
        probe.write_text("x")
    except PermissionError:
        return False
    probe.unlink()
    return True


def test_report_into_a_read_only_folder_is_one_line_and_status_2(tmp_path):
    results = tmp_path / "results"
    append_record(results, record())
    results.chmod(0o555)
    try:
        if _writes_despite_mode(results):
            pytest.skip("this process writes into read-only folders (root); the path-under-a-file test covers it")
        done = report_stderr("--results", str(results))
    finally:
        results.chmod(0o755)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and str(results) in lines[0] and "Traceback" not in done.stderr, done.stderr


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640)])
def test_every_written_file_gets_the_permissions_of_the_records(tmp_path, plugins, mask, expected):
    results = tmp_path / "results"
    with umask(mask):
        append_record(results, record())
        board, summary, _ = write_report(results, plugins=plugins)
        index = write_site(results, plugins=plugins)
        atomic.torch_save({"images": torch.zeros(1)}, results / "artifacts" / "set.pt")
        atomic.write_bytes(results / "blob.bin", b"x")
    written = [board, summary, index, results / "artifacts" / "set.pt", results / "blob.bin"]
    assert _mode(results / "records.jsonl") == expected
    assert {p.name: _mode(p) for p in written} == {p.name: expected for p in written}


def test_a_replaced_file_takes_the_umask_of_the_moment_it_is_written(tmp_path):
    target = tmp_path / "page.html"
    with umask(0o077):
        atomic.write_text(target, "one")
    assert _mode(target) == 0o600
    with umask(0o022):
        atomic.write_text(target, json.dumps("two"))
    assert _mode(target) == 0o644 and not list(tmp_path.glob(".*.tmp"))
