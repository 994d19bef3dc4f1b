"""The public "distill one cell" call and the cache builder: the same set as a sweep's cell, and
caches built ahead so the sweep's cells train none."""

from __future__ import annotations

import torch

from benchsuite.api import SyntheticSet
from benchsuite.plugins import get_plugin_manager
from benchsuite.probe import prepare, probe
from benchsuite.protocol import load_protocol
from benchsuite.records import read_records
from benchsuite.runner import RunOptions, Runner
from conftest import run_cli


def test_probe_distils_the_same_set_as_the_sweep_and_evaluates_it(tmp_path):
    protocol = load_protocol("smoke").with_overrides(ipcs=[2], eval={"epochs": 2})
    plugins = get_plugin_manager(entry_points=False)
    options = RunOptions(results_dir=tmp_path / "r", cache_dir=tmp_path / "c", quiet=True, allow_download=False,
                         device="cpu")
    Runner(plugins, protocol, options).run(["dm"])
    [record] = read_records(tmp_path / "r")
    swept, _ = SyntheticSet.load(record.artifact)
    result = probe("dm", "synthetic", 2, protocol=protocol, device="cpu", cache_dir=tmp_path / "c",
                   allow_download=False, plugins=plugins, save=tmp_path / "probe.pt")
    assert torch.equal(result.synthetic.images, swept.images) and torch.equal(result.synthetic.labels, swept.labels)
    assert result.evaluation.accuracies == record.accuracy.values
    assert SyntheticSet.load(tmp_path / "probe.pt")[1]["probe"] is True
    assert not list((tmp_path / "r").glob("*.tmp")) and len(read_records(tmp_path / "r")) == 1


def test_probe_applies_overrides_and_can_skip_evaluation(tmp_path):
    result = probe("dm", "synthetic", 1, protocol="smoke", overrides={"iterations": 0}, evaluate=False,
                   device="cpu", cache_dir=tmp_path, allow_download=False)
    assert result.config.iterations == 0 and result.evaluation is None
    assert result.synthetic.images.shape == (10, 3, 16, 16)


def test_prepare_builds_the_experts_a_sweep_then_reuses(tmp_path):
    done = prepare(["mtt", "random"], "smoke", device="cpu", cache_dir=tmp_path / "c", allow_download=False)
    assert [(d.method, d.ipc, sorted(d.built or {})) for d in done] == [
        ("mtt", 1, ["experts"]), ("random", 1, []), ("mtt", 2, ["experts"]), ("random", 2, [])]
    assert done[0].built["experts"]["trained_now"] > 0 and done[2].built["experts"]["trained_now"] == 0
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 1})
    options = RunOptions(results_dir=tmp_path / "r", cache_dir=tmp_path / "c", quiet=True, allow_download=False,
                         device="cpu")
    Runner(get_plugin_manager(entry_points=False), protocol, options).run(["mtt"])
    [record] = read_records(tmp_path / "r")
    assert record.method_extra["experts"]["trained_now"] == 0


def test_probe_and_prepare_from_the_command_line(tmp_path, capsys):
    assert run_cli("probe", "random", "--dataset", "synthetic", "--protocol", "smoke", "--ipc", "2", "--eval",
                   "epochs=1", "--cache-dir", str(tmp_path), "--no-download", "--quiet") == 0
    out = capsys.readouterr().out
    assert "random synthetic ipc2 seed0" in out and "convnet-w32:" in out
    assert run_cli("probe", "dm", "--dataset", "synthetic", "--protocol", "smoke", "--set", "iterations=1",
                   "--set", "dm.batch_real=4", "--no-eval", "--cache-dir", str(tmp_path), "--quiet") == 0
    out = capsys.readouterr().out
    assert "iterations=1" in out and "batch_real=4" in out
    assert run_cli("probe", "dm", "--protocol", "smoke", "--set", "iterations=-1", "--cache-dir", str(tmp_path)) == 2
    assert run_cli("prepare", "--methods", "random", "--protocol", "smoke", "--cache-dir", str(tmp_path),
                   "--quiet") == 0
    assert "random synthetic ipc1: nothing to build" in capsys.readouterr().out
