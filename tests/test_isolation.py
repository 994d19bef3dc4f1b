"""The method under test distils in a process of its own: what it does to its input never reaches
another cell, the test split is nowhere it can look, and a method that never returns is ended by
the cell time limit."""

from __future__ import annotations

import gc
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

from benchsuite.plugins import get_plugin_manager
from benchsuite.protocol import load_protocol
from benchsuite.records import read_records
from benchsuite.runner import RunOptions, Runner

HOSTILE = textwrap.dedent('''
    import gc, inspect, os, time
    from dataclasses import dataclass
    from pathlib import Path
    import torch
    import benchsuite

    @dataclass(frozen=True)
    class Cfg:
        pidfile: str = ""

    def first_per_class(real, ipc):
        imgs, labels = [], []
        for c, idx in enumerate(real.class_indices()):
            imgs.append(real.images[idx[:ipc]].clone())
            labels.append(torch.full((ipc,), c))
        return torch.cat(imgs), torch.cat(labels)

    class Zeroer(benchsuite.Method):
        """Returns a valid set, then destroys the real images it was handed."""
        name = "zeroer"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            x, y = first_per_class(real, ipc)
            real.images.mul_(0)
            real.labels.zero_()
            return benchsuite.SyntheticSet(x, y)

    class Sleeper(benchsuite.Method):
        name = "sleeper"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            Path(self.config.pidfile).write_text(str(os.getpid()))
            time.sleep(600)
            return benchsuite.SyntheticSet(*first_per_class(real, ipc))

    @benchsuite.hookimpl
    def register_methods(register):
        register(Zeroer)
        register(Sleeper)
''')

# Searches everything a method can reach for the synthetic dataset's test split, as uint8 or
# normalised: its arguments, its context, every file under the cache folder it is given, the
# frames that called it, and every object the garbage collector knows.
SNOOP = textwrap.dedent('''
    import gc, inspect, types
    from dataclasses import dataclass
    from pathlib import Path
    import torch
    import benchsuite
    from benchsuite.data.synthetic import make_synthetic

    @dataclass(frozen=True)
    class Cfg:
        pass

    def is_test(t, targets):
        if not isinstance(t, torch.Tensor) or t.device.type == "meta" or t.ndim != 4 or t.shape[0] < 200:
            return False
        if any(t is target for target in targets):
            return False  # the search's own copies
        for target in targets:
            if tuple(t.shape[1:]) == tuple(target.shape[1:]) and t.dtype == target.dtype:
                for start in range(0, t.shape[0] - 199, 100):
                    if torch.equal(t[start:start + 200], target):
                        return True
        return False

    def walk(obj, targets, seen, depth=0):
        if id(obj) in seen or depth > 6 or isinstance(obj, types.ModuleType):
            return False
        seen.add(id(obj))
        if is_test(obj, targets):
            return True
        if isinstance(obj, dict):
            return any(walk(v, targets, seen, depth + 1) for v in list(obj.values()))
        if isinstance(obj, (list, tuple, set)):
            return any(walk(v, targets, seen, depth + 1) for v in list(obj))
        d = getattr(obj, "__dict__", None)
        if isinstance(d, dict) and not isinstance(obj, type):
            return any(walk(v, targets, seen, depth + 1) for v in list(d.values()))
        return False

    def search(real, ctx):
        from benchsuite.data.loading import normalise
        x_u8 = make_synthetic().x_test
        # the suite holds the split normalised with the dataset's mean and std
        targets = [x_u8, normalise(x_u8, real.spec, torch.device("cpu"))]
        found = []
        if walk(real, targets, set()):
            found.append("arguments")
        if ctx is not None and walk(ctx, targets, set()):
            found.append("context")
        if ctx is not None:
            for path in Path(ctx.cache_dir).rglob("*"):
                if path.is_file():
                    try:
                        payload = torch.load(path, map_location="cpu", weights_only=True)
                    except Exception:
                        continue
                    if walk(payload, targets, set()):
                        found.append(f"cache file {path.name}")
        for info in inspect.stack()[1:]:
            if walk(info.frame.f_locals, targets, set()):
                found.append(f"frame {info.function}")
        for obj in gc.get_objects():
            if isinstance(obj, torch.Tensor) and is_test(obj, targets):
                found.append("garbage collector")
                break
        import sys
        for name, module in list(sys.modules.items()):
            if name.startswith("benchsuite") and walk(vars(module), targets, set()):
                found.append(f"module {name}")
        return found

    class Snoop(benchsuite.Method):
        name = "snoop"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            found = search(real, ctx)
            imgs, labels = [], []
            for c, idx in enumerate(real.class_indices()):
                imgs.append(real.images[idx[:ipc]])
                labels.append(torch.full((ipc,), c))
            return benchsuite.SyntheticSet(torch.cat(imgs), torch.cat(labels), extra={"found": found or ["nothing"]})

    @benchsuite.hookimpl
    def register_methods(register):
        register(Snoop)
''')


@pytest.fixture
def plugin_dir(tmp_path):
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "hostile.py").write_text(HOSTILE)
    (folder / "snoop.py").write_text(SNOOP)
    return folder


def _run(tmp_path, folder, methods, results="results", **options):
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 3, "models": 2})
    opts = RunOptions(results_dir=tmp_path / results, cache_dir=tmp_path / "cache", quiet=True,
                      allow_download=False, device="cpu", **options)
    summary = Runner(get_plugin_manager([folder], entry_points=False), protocol, opts).run(methods)
    return summary, {r.method: r for r in read_records(tmp_path / results)}


def test_a_method_that_zeroes_its_input_leaves_the_next_cells_as_they_are_alone(tmp_path, plugin_dir):
    _, alone = _run(tmp_path, plugin_dir, ["random", "dm"], results="alone")
    _, after = _run(tmp_path, plugin_dir, ["zeroer", "random", "dm"], results="after")
    assert after["zeroer"].status == "ok"
    for method in ("random", "dm"):
        assert after[method].status == "ok"
        assert after[method].accuracy.values == alone[method].accuracy.values, method


def test_the_test_split_is_nowhere_a_method_can_look(tmp_path, plugin_dir, synthetic):
    # the search itself works: in this process (the test split is in memory) it finds it
    namespace: dict = {}
    exec(compile(SNOOP, "snoop", "exec"), namespace)
    here = namespace["search"](synthetic.train, None)
    assert "garbage collector" in here
    _, records = _run(tmp_path, plugin_dir, ["snoop"])
    assert records["snoop"].status == "ok"
    assert records["snoop"].method_extra["found"] == ["nothing"]


def test_the_dataset_cache_is_outside_the_methods_cache_folder(tmp_path, plugin_dir):
    _run(tmp_path, plugin_dir, ["herding"])  # a method that builds a cache of its own
    cache = tmp_path / "cache"
    assert (cache / "methods").is_dir()
    assert list((cache / "methods" / "extractors").iterdir())  # herding's trained extractor went here
    assert not (cache / "methods" / "datasets").exists()


def test_a_sleeping_method_is_ended_by_the_cell_timeout_and_the_sweep_goes_on(tmp_path, plugin_dir):
    pidfile = tmp_path / "sleeper.pid"
    start = time.monotonic()
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 2, "models": 1})
    opts = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                      allow_download=False, device="cpu", cell_timeout=3.0,
                      method_overrides={"sleeper": {"pidfile": str(pidfile)}})
    plugins = get_plugin_manager([plugin_dir], entry_points=False)
    summary = Runner(plugins, protocol, opts).run(["sleeper", "random"])
    assert time.monotonic() - start < 60
    records = {r.method: r for r in read_records(tmp_path / "results")}
    assert records["sleeper"].status == "error" and records["random"].status == "ok"
    assert records["sleeper"].error.type == "CellTimeoutError"
    assert "time limit of 3 s" in records["sleeper"].error.message
    with pytest.raises(ProcessLookupError):  # the process it slept in is gone
        os.kill(int(pidfile.read_text()), 0)
    assert summary.error_records == 1
    # a rerun tries the cell again (an error is not a result)
    pidfile.unlink()
    again = Runner(plugins, protocol, opts).run(["sleeper", "random"])
    assert pidfile.exists() and again.skipped == 1


def test_the_cell_timeout_comes_from_the_protocol_when_not_given(tmp_path, plugin_dir):
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], cell_timeout=2.0)
    opts = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                      allow_download=False, device="cpu",
                      method_overrides={"sleeper": {"pidfile": str(tmp_path / "pid")}})
    runner = Runner(get_plugin_manager([plugin_dir], entry_points=False), protocol, opts)
    assert runner.cell_timeout == 2.0
    assert protocol.hash == load_protocol("smoke").with_overrides(ipcs=[1]).hash  # not part of the hash
    runner.run(["sleeper"])
    assert read_records(tmp_path / "results")[0].error.type == "CellTimeoutError"


def test_a_killed_run_leaves_no_distilling_process_behind(tmp_path, plugin_dir):
    pidfile = tmp_path / "sleeper.pid"
    command = [sys.executable, "-m", "benchsuite", "--no-entry-points", "--plugins-dir", str(plugin_dir), "run",
               "--methods", "sleeper", "--protocol", "smoke", "--ipc", "1", "--results", str(tmp_path / "results"),
               "--cache-dir", str(tmp_path / "cache"), "--quiet", "--no-report", "--set",
               f"sleeper.pidfile={pidfile}"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pidfile.exists(), "the method never started"
    child = int(pidfile.read_text())
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a zombie of an exited process counts as gone
        try:
            if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
                break
        except OSError:
            break
        time.sleep(0.3)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the distilling process outlived its run")


def test_the_cell_timeout_flag_is_checked(tmp_path):
    from conftest import run_cli

    with pytest.raises(SystemExit) as exit_:
        run_cli("run", "--methods", "random", "--protocol", "smoke", "--cell-timeout", "-1", "--results", str(tmp_path))
    assert exit_.value.code == 2
