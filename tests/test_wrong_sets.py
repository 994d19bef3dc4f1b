"""A wrong set is never ranked: the runner holds every returned set to the method contract, and
non-finite numbers from a method or a result become error records, never NaN in a file."""

from __future__ import annotations

import json
import textwrap

from plugin_text import PLUGIN_PRELUDE

import pytest
import torch

from benchsuite.api import SyntheticSet
from benchsuite.contract import check_synthetic_set
from benchsuite.errors import ContractError
from benchsuite.plugins import get_plugin_manager
from benchsuite.protocol import load_protocol
from benchsuite.records import read_records
from benchsuite.runner import RunOptions, Runner
from conftest import run_cli

# Each method breaks one rule; `honest` keeps them all. The class count of `synthetic` is 10.
BAD_METHODS = PLUGIN_PRELUDE + textwrap.dedent('''
    import math

    class TooMany(Base):
        name = "too-many"
        def distill(self, real, ipc, ctx):
            return benchsuite.SyntheticSet(*per_class(real, ipc + 3))

    class OneClass(Base):
        name = "one-class"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x, torch.zeros_like(y))

    class LabelTen(Base):
        name = "label-ten"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x, torch.where(y == 9, 10, y))

    class NanLr(Base):
        name = "nan-lr"
        def distill(self, real, ipc, ctx):
            return benchsuite.SyntheticSet(*per_class(real, ipc), learned_lr=math.nan)

    class FatContainer(Base):
        name = "fat-container"
        container = True
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x, y, storage_bytes=10 * x.numel() * 4)

    class Honest(Base):
        name = "honest"
        def distill(self, real, ipc, ctx):
            return benchsuite.SyntheticSet(*per_class(real, ipc))

    @benchsuite.hookimpl
    def register_methods(register):
        for cls in (TooMany, OneClass, LabelTen, NanLr, FatContainer, Honest):
            register(cls)
''')

RULES = {"too-many": "images per class", "one-class": "images per class", "label-ten": "labels in range",
         "nan-lr": "learned_lr finite and positive", "fat-container": "storage within budget"}


def strict_json_lines(path):
    """Every line parsed as strict JSON: a NaN or Infinity literal fails the test."""
    def refuse(literal):
        raise AssertionError(f"{path} holds the non-JSON number {literal}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.fixture
def bad_plugins(tmp_path):
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "bad_methods.py").write_text(BAD_METHODS)
    return folder


def _options(tmp_path):
    return RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True, allow_download=False)


def test_sets_that_break_the_contract_become_error_records_and_are_never_ranked(tmp_path, bad_plugins):
    plugins = get_plugin_manager([bad_plugins], entry_points=False)
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 1})
    summary = Runner(plugins, protocol, _options(tmp_path)).run([*RULES, "honest"])
    assert summary.error_records == len(RULES) and summary.ok_records == 1
    records = {r.method: r for r in read_records(tmp_path / "results")}
    for method, rule in RULES.items():
        assert records[method].status == "error", method
        assert records[method].error.type == "ContractError"
        assert f"contract rule '{rule}'" in records[method].error.message, records[method].error.message
    assert records["honest"].status == "ok"
    saved = {p.parent.name for p in (tmp_path / "results" / "artifacts").rglob("*.pt")}
    assert saved == {"honest"}, "a set that breaks the contract is never saved"
    from benchsuite.report import write_report

    board = write_report(tmp_path / "results", plugins=plugins)[0].read_text()
    ranking = board.split("### Efficiency")[0]
    assert "honest" in ranking and not any(m in ranking for m in RULES)
    assert all(m in board.split("## Failed cells")[1] for m in RULES)


def test_a_nan_learned_lr_does_not_crash_the_rerun(tmp_path, bad_plugins):
    args = ["--plugins-dir", str(bad_plugins), "run", "--methods", "nan-lr,honest", "--protocol", "smoke",
            "--ipc", "1", "--eval", "epochs=1", "--results", str(tmp_path / "r"), "--cache-dir",
            str(tmp_path / "c"), "--quiet", "--no-download"]
    assert run_cli(*args) == 1
    assert run_cli(*args) == 1  # the bad cell is tried again and fails the same way, no crash
    strict_json_lines(tmp_path / "r" / "records.jsonl")
    assert [r.status for r in read_records(tmp_path / "r") if r.method == "nan-lr"] == ["error", "error"]


def test_a_nan_accuracy_becomes_an_error_record(tmp_path, monkeypatch):
    import benchsuite.cell as runner_module

    real_evaluate = runner_module.evaluate_synset

    def nan_accuracy(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        result.accuracies = [float("nan")] * len(result.accuracies)
        return result

    monkeypatch.setattr(runner_module, "evaluate_synset", nan_accuracy)
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 1})
    summary = Runner(get_plugin_manager(entry_points=False), protocol, _options(tmp_path)).run(["random"])
    assert summary.error_records == 1 and summary.ok_records == 0
    [record] = strict_json_lines(tmp_path / "results" / "records.jsonl")
    assert record["status"] == "error" and "accuracy" in record["error"]["message"]


def test_the_contract_function_accepts_honest_sets_and_names_each_broken_rule():
    def check(syn, **kw):
        args = dict(method="m", shape=(1, 2, 2), num_classes=2, ipc=1) | kw
        check_synthetic_set(syn, **args)

    x = torch.zeros(2, 1, 2, 2)
    check(SyntheticSet(x, torch.tensor([0, 1])))
    check(SyntheticSet(x, torch.tensor([[0.9, 0.1], [0.2, 0.8]])))
    check(SyntheticSet(x, torch.tensor([0, 1]), learned_lr=0.01))
    cases = [
        (SyntheticSet(torch.zeros(2, 1, 3, 3), torch.tensor([0, 1])), {}, "image shape"),
        (SyntheticSet(x.clone().fill_(float("nan")), torch.tensor([0, 1])), {}, "finite images"),
        (SyntheticSet(x, torch.tensor([0, 2])), {}, "labels in range"),
        (SyntheticSet(x, torch.tensor([-1, 1])), {}, "labels in range"),
        (SyntheticSet(x, torch.tensor([0.0, 1.0])), {}, "int64 hard labels"),
        (SyntheticSet(x, torch.ones(2, 3)), {}, "labels in range"),
        (SyntheticSet(x, torch.tensor([0, 1]), learned_lr=-0.1), {}, "learned_lr"),
        (SyntheticSet(x, torch.tensor([0, 1]), learned_lr=float("inf")), {}, "learned_lr"),
        (SyntheticSet(x, torch.tensor([0, 0])), {}, "images per class"),
        (SyntheticSet(x, torch.tensor([0, 0])), {"container": True}, "balanced classes"),
        (SyntheticSet(x, torch.tensor([0, 1])), {"ipc_independent": True, "train_counts": [5, 5]},
         "images per class"),
        ("not a set", {}, "returns a SyntheticSet"),
    ]
    for syn, kw, rule in cases:
        with pytest.raises(ContractError, match=rule):
            check(syn, **kw)
