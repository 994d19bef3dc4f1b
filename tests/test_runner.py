"""The runner: records, artifacts, error records, resume after a killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchsuite.api import SyntheticSet
from benchsuite.plugins import get_plugin_manager
from benchsuite.protocol import load_protocol
from benchsuite.records import read_records
from benchsuite.runner import Cell, RunOptions, Runner, plan

REQUIRED = {"schema_version", "status", "protocol", "protocol_hash", "method", "method_version", "method_config",
            "dataset", "ipc", "arch", "seed", "accuracy", "distill_seconds", "eval_seconds",
            "distill_peak_memory_bytes", "storage_bytes", "machine", "commit", "code_digest", "test_set",
            "dataset_provenance"}

FAILING_PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass
    import benchsuite

    @dataclass(frozen=True)
    class Cfg:
        pass

    class Exploding(benchsuite.Method):
        name = "exploding"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            raise benchsuite.MethodError("loss became NaN at iteration 3")

    @benchsuite.hookimpl
    def register_methods(register):
        register(Exploding)
''')


def _runner(tmp_path, plugins=None, **opts):
    protocol = load_protocol("smoke").with_overrides(eval={"epochs": 2})
    options = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                         allow_download=False, **opts)
    return Runner(plugins or get_plugin_manager(entry_points=False), protocol, options)


def test_plan_runs_ipc_independent_methods_once_per_dataset():
    p = load_protocol("smoke")
    cells = plan(p, ["random", "full"], ipc_independent=["full"])
    assert [c for c in cells if c.method == "full"] == [Cell("full", "synthetic", 0, 0)]
    assert {(c.method, c.ipc) for c in cells if c.method == "random"} == {("random", 1), ("random", 2)}


def test_records_have_every_field_and_artifacts_reload(tmp_path):
    runner = _runner(tmp_path)
    summary = runner.run(["random", "herding"])
    assert summary.ok_records == 4 and summary.error_records == 0
    records = read_records(tmp_path / "results")
    assert len(records) == 4
    for r in records:
        assert REQUIRED <= set(r.to_json()), REQUIRED - set(r.to_json())
        assert r.status == "ok" and r.accuracy.n == 1 and 0 <= r.accuracy.mean <= 100
        syn, meta = SyntheticSet.load(Path(r.artifact))
        assert syn.images.shape[0] == 10 * r.ipc and meta["method"] == r.method
        assert r.storage_bytes == syn.images.numel() * 4


def test_rerun_skips_done_cells_and_force_reruns(tmp_path):
    _runner(tmp_path).run(["random"])
    again = _runner(tmp_path).run(["random"])
    assert again.skipped == 2 and again.ok_records == 0
    forced = _runner(tmp_path, force=True).run(["random"])
    assert forced.ok_records == 2
    assert len(read_records(tmp_path / "results")) == 4


def test_adding_an_eval_arch_reuses_the_saved_sets_and_evaluates_only_the_new_arch(tmp_path):
    _runner(tmp_path).run(["herding"])
    protocol = load_protocol("smoke").with_overrides(eval={"epochs": 2}, archs=["convnet-w32", "mlp"])
    options = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                         allow_download=False)
    wider = Runner(get_plugin_manager(entry_points=False), protocol, options).run(["herding"])
    assert wider.ok_records == 2 and wider.skipped == 0
    records = read_records(tmp_path / "results")
    new = [r for r in records if r.arch == "mlp"]
    assert len(records) == 4 and len(new) == 2
    assert all(r.reused_artifact for r in new)
    assert len({r.protocol_hash for r in records}) == 1
    assert len(list((tmp_path / "results" / "artifacts").iterdir())) == 1


def test_failing_cell_becomes_error_record_and_sweep_goes_on(tmp_path):
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "exploding.py").write_text(FAILING_PLUGIN)
    plugins = get_plugin_manager([tmp_path / "plug"], entry_points=False)
    summary = _runner(tmp_path, plugins=plugins).run(["exploding", "random"])
    assert summary.error_records == 2 and summary.ok_records == 2
    errors = [r for r in read_records(tmp_path / "results") if r.status == "error"]
    assert {r.method for r in errors} == {"exploding"}
    assert "NaN at iteration 3" in errors[0].error.message
    assert errors[0].error.type == "MethodError"


def test_unknown_dataset_fails_before_any_work(tmp_path):
    from benchsuite.errors import UnknownNameError

    runner_protocol = load_protocol("smoke").with_overrides(datasets=["cifar11"])
    with pytest.raises(UnknownNameError, match="cifar10"):
        Runner(get_plugin_manager(entry_points=False), runner_protocol,
               RunOptions(results_dir=tmp_path, cache_dir=tmp_path, quiet=True))


def test_killed_run_resumes_without_redoing_finished_cells(tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "benchsuite", "run", "--methods", "random,kcenter,herding", "--protocol", "smoke",
           "--eval", "epochs=30", "--results", str(results), "--cache-dir", str(tmp_path / "cache"),
           "--quiet", "--no-download", "--no-report"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    records_file = results / "records.jsonl"
    while time.time() < deadline:
        if records_file.exists() and records_file.read_text().count("\n") >= 1:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_records(results)
    assert 1 <= len(before) < 6, "the kill should land mid-sweep"
    done_before = {(r.method, r.ipc) for r in before}

    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    after = read_records(results)
    keys = [(r.method, r.ipc) for r in after]
    assert sorted(set(keys)) == sorted({(m, i) for m in ("random", "kcenter", "herding") for i in (1, 2)})
    assert len(keys) == len(set(keys)), "finished cells must not be recomputed"
    assert done_before <= set(keys)


def test_torn_last_line_is_ignored(tmp_path):
    whole = {"schema_version": 1, "protocol_hash": "h", "method": "a", "dataset": "d", "ipc": 1, "arch": "convnet",
             "seed": 0, "status": "error"}
    (tmp_path / "records.jsonl").write_text(json.dumps(whole) + "\n" + '{"method": "b", "sta')
    assert [r.method for r in read_records(tmp_path)] == ["a"]
