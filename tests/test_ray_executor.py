"""``--executor ray`` on a local Ray instance with 2 CPUs: the same records and sets as the serial
executor, one writer, resume after a killed driver, and retries of a worker that dies."""

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
import torch
from conftest import run_cli

from benchsuite.api import SyntheticSet
from benchsuite.errors import ConfigError

ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install "benchsuite[ray]"')

from benchsuite.ray_executor import ClusterError, RayExecutor, RayOptions, check_reachable  # noqa: E402

# Fields that differ between any two runs of the same cell: when, where, how long, which files.
VOLATILE = {"machine", "started_at", "finished_at", "distill_seconds", "eval_seconds", "eval_train_seconds",
            "eval_test_seconds", "distill_peak_memory_bytes", "eval_peak_memory_bytes", "artifact", "commit",
            "code_digest"}


@pytest.fixture(scope="module")
def local_ray():
    """One local instance for the module (the executor joins it instead of starting its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


def records_of(results: Path) -> list[dict]:
    return [json.loads(line) for line in (results / "records.jsonl").read_text().splitlines()]


# Inside method_extra: who built a shared cache (a prepare task, or the first cell), where, how long,
# and the feature extractor's training-set accuracy, a sanity figure of the cache: after other tests
# have run in this process it can differ in the last digit from the one a fresh worker computes,
# while the selected images (compared bit for bit below) and every accuracy are the same.
CACHE_PROVENANCE = {"dir", "path", "trained_now", "build_seconds", "train_seconds", "train_accuracy"}


def _without_cache_provenance(value):
    if isinstance(value, dict):
        return {k: _without_cache_provenance(v) for k, v in value.items() if k not in CACHE_PROVENANCE}
    return value


def comparable(record: dict) -> dict:
    out = {k: v for k, v in record.items() if k not in VOLATILE}
    out["method_extra"] = _without_cache_provenance(out.get("method_extra"))
    return out


@pytest.mark.slow
def test_the_smoke_sweep_under_ray_matches_the_serial_one(local_ray, serial_smoke_results, tmp_path):
    out = tmp_path / "ray"
    assert run_cli("--no-entry-points", "run", "--methods", "all", "--protocol", "smoke", "--results", str(out), "--cache-dir",
                   str(tmp_path / "cache"), "--device", "cpu", "--no-download", "--quiet",
                   "--executor", "ray", "--cpus-per-cell", "2") == 0
    serial = {(r["method"], r["ipc"], r["arch"]): r for r in records_of(serial_smoke_results)}
    remote = {(r["method"], r["ipc"], r["arch"]): r for r in records_of(out)}
    assert set(serial) == set(remote)
    for key in serial:
        assert comparable(remote[key]) == comparable(serial[key]), key
        if serial[key].get("artifact"):
            a, _ = SyntheticSet.load(Path(serial[key]["artifact"]))
            b, _ = SyntheticSet.load(Path(remote[key]["artifact"]))
            assert remote[key]["artifact"].startswith(str(out))  # the driver wrote it into its folder
            assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels), key
            assert a.learned_lr == b.learned_lr


def test_many_cells_finishing_together_give_each_record_once(local_ray, tmp_path):
    out = tmp_path / "many"
    seeds = ",".join(map(str, range(12)))
    assert run_cli("--no-entry-points", "run", "--methods", "random,kcenter", "--protocol", "smoke", "--seeds", seeds, "--results",
                   str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet", "--no-report",
                   "--executor", "ray", "--cpus-per-cell", "1") == 0
    lines = (out / "records.jsonl").read_text().splitlines()
    keys = [(r["method"], r["ipc"], r["seed"], r["arch"]) for r in map(json.loads, lines)]  # every line parses
    assert len(keys) == len(set(keys)) == 2 * 2 * 12


DYING_PLUGIN = textwrap.dedent('''
    import os, signal
    from dataclasses import dataclass
    from pathlib import Path
    import torch
    import benchsuite

    @dataclass(frozen=True)
    class Cfg:
        deaths: int = 1      # attempts that kill their own worker process before one succeeds
        folder: str = ""     # where attempts are counted

    class Dies(benchsuite.Method):
        name = "dies"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            folder = Path(self.config.folder)
            attempt = len(list(folder.glob("attempt-*")))
            (folder / f"attempt-{attempt}").touch()
            if attempt < self.config.deaths:
                os.kill(os.getpid(), signal.SIGKILL)
            imgs, labels = [], []
            for c, idx in enumerate(real.class_indices()):
                imgs.append(real.images[idx[:ipc]])
                labels.append(torch.full((ipc,), c))
            return benchsuite.SyntheticSet(torch.cat(imgs), torch.cat(labels))

    @benchsuite.hookimpl
    def register_methods(register):
        register(Dies)
''')


@pytest.mark.parametrize("deaths, status", [(1, "ok"), (5, "error")])
def test_a_worker_that_dies_is_retried_once_then_its_cell_is_an_error(local_ray, tmp_path, deaths, status):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "dies.py").write_text(DYING_PLUGIN)
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    out = tmp_path / "results"
    rc = run_cli("--plugins-dir", str(plugins), "--no-entry-points", "run", "--methods", "dies,random", "--protocol", "smoke", "--ipc",
                 "1", "--results", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--no-report", "--executor", "ray", "--cpus-per-cell", "1", "--set", f"dies.deaths={deaths}",
                 "--set", f"dies.folder={attempts}")
    records = {r["method"]: r for r in records_of(out)}
    assert records["random"]["status"] == "ok"  # the sweep went on
    assert records["dies"]["status"] == status
    assert len(list(attempts.glob("attempt-*"))) == 2  # the first try and one retry, never more
    if status == "error":
        assert rc == 1
        assert records["dies"]["error"]["type"] == "WorkerDied"
        assert "retry" in records["dies"]["error"]["message"]


def test_a_killed_driver_loses_only_its_cells_in_flight_and_a_rerun_completes(tmp_path):
    """A real driver process with its own local Ray instance, killed (with its Ray processes) after
    its first records; the rerun skips finished cells and adds each missing record once."""
    out = tmp_path / "results"
    command = [sys.executable, "-m", "benchsuite", "--no-entry-points", "run", "--methods", "random,dm", "--protocol",
               "smoke", "--seeds", "0,1,2", "--results", str(out), "--cache-dir", str(tmp_path / "cache"),
               "--quiet", "--no-report", "--executor", "ray", "--cpus-per-cell", "1"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    driver = subprocess.Popen(command, start_new_session=True, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    records = out / "records.jsonl"
    deadline = time.monotonic() + 120
    while not (records.exists() and records.read_text().count("\n") >= 2):
        assert driver.poll() is None and time.monotonic() < deadline, "the driver ended before any record"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = records.read_text().splitlines()
    assert 2 <= len(before) < 12
    assert subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=300).returncode == 0
    after = [json.loads(line) for line in records.read_text().splitlines()]
    keys = [(r["method"], r["ipc"], r["seed"]) for r in after]
    assert len(keys) == len(set(keys)) == 12
    assert [json.dumps(r, sort_keys=True) for r in after[:len(before)]] == \
        [json.dumps(json.loads(line), sort_keys=True) for line in before]  # nothing rewritten


def test_an_unreachable_address_fails_within_seconds():
    started = time.monotonic()
    with pytest.raises(ClusterError, match="no Ray cluster answers at 127.0.0.1:9"):
        check_reachable("127.0.0.1:9", timeout=2)
    assert time.monotonic() - started < 5
    with pytest.raises(ConfigError, match="not HOST:PORT"):
        check_reachable("nonsense")


def test_the_cli_reports_an_unreachable_cluster_as_a_usage_error(tmp_path, capsys):
    started = time.monotonic()
    rc = run_cli("run", "--methods", "random", "--protocol", "smoke", "--results", str(tmp_path / "r"),
                 "--executor", "ray", "--ray-address", "127.0.0.1:9", "--quiet")
    assert rc == 2 and time.monotonic() - started < 15
    assert "no Ray cluster answers" in capsys.readouterr().err


def test_cuda_on_a_cluster_without_gpus_is_refused_before_any_cell(local_ray, tmp_path, capsys):
    rc = run_cli("run", "--methods", "random", "--protocol", "smoke", "--results", str(tmp_path / "r"),
                 "--executor", "ray", "--device", "cuda", "--quiet")
    assert rc == 2
    assert "the Ray cluster has no GPU" in capsys.readouterr().err
    assert not (tmp_path / "r" / "records.jsonl").exists()


def test_resources_asked_beyond_the_cluster_are_refused(local_ray):
    from benchsuite.plugins import get_plugin_manager

    executor = RayExecutor(get_plugin_manager(entry_points=False), RayOptions(cpus_per_cell=64))
    with pytest.raises(ClusterError, match="asks for 64 CPU"):
        executor.resolve_device("cpu")


def test_ray_flags_without_the_ray_executor_are_a_usage_error(tmp_path, capsys):
    assert run_cli("run", "--methods", "random", "--protocol", "smoke", "--results", str(tmp_path),
                   "--cpus-per-cell", "2") == 2
    assert "need --executor ray" in capsys.readouterr().err


def test_a_missing_ray_names_the_extra(monkeypatch):
    import benchsuite.ray_executor as rx

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "benchsuite\[ray\]"'):
        rx.import_ray()


SLEEPING_PLUGIN = textwrap.dedent('''
    import time
    from dataclasses import dataclass
    import benchsuite

    @dataclass(frozen=True)
    class Cfg:
        pass

    class Sleeper(benchsuite.Method):
        name = "sleeper"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            time.sleep(600)

    @benchsuite.hookimpl
    def register_methods(register):
        register(Sleeper)
''')


def test_a_sleeping_method_is_ended_by_the_cell_timeout_on_ray(local_ray, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "sleeper.py").write_text(SLEEPING_PLUGIN)
    out = tmp_path / "results"
    start = time.monotonic()
    rc = run_cli("--plugins-dir", str(plugins), "--no-entry-points", "run", "--methods", "sleeper,random", "--protocol",
                 "smoke", "--ipc", "1", "--results", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--no-report", "--executor", "ray", "--cpus-per-cell", "1", "--cell-timeout", "4")
    assert time.monotonic() - start < 120
    records = {r["method"]: r for r in records_of(out)}
    assert rc == 1 and records["random"]["status"] == "ok"
    assert records["sleeper"]["status"] == "error" and records["sleeper"]["error"]["type"] == "CellTimeoutError"
