"""``benchsuite plan``: the grid and its estimate, from known timing records and from calibration."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from benchsuite.plan import cache_seconds_in, make_plan
from benchsuite.protocol import load_protocol
from benchsuite.records import RunRecord


def record(method="dm", ipc=1, arch="convnet-w32", device="cpu", distill=10.0, iterations=5, train=6.0,
           test=0.3, models=3, epochs=10, reused=False, extra=None, dataset="synthetic", config=None):
    facts = {"protocol": "timing", "protocol_hash": "x", "method": method, "dataset": dataset, "ipc": ipc,
             "seed": 0, "machine": {"device": device}, "distill_seconds": distill, "reused_artifact": reused,
             "method_config": config if config is not None else {"iterations": iterations}}
    return RunRecord.ok(facts, arch=arch, accuracies=[50.0] * models, eval_train_seconds=train,
                        eval_test_seconds=test, eval_epochs=epochs, num_images=ipc * 10,
                        method_extra=extra).to_json()


def write(folder, *records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def smoke_with(**changes):
    return load_protocol("smoke").with_overrides(**changes)


def test_estimates_scale_recorded_seconds_by_iterations_models_and_epochs(plugins, tmp_path):
    folder = write(tmp_path / "r", record())
    plan = make_plan(smoke_with(ipcs=[1], seeds=[0, 1, 2]), ["dm"], plugins=plugins, device_kind="cpu",
                     results_dirs=[folder], overrides={"dm": {"iterations": 50}})
    (g,) = plan.groups
    assert (g.method, g.ipc, g.cells, g.iterations) == ("dm", 1, 3, 50)
    assert g.distill.seconds == pytest.approx(10.0 / 5 * 50)
    # recorded: 6 s for 3 models x 10 epochs x 1 step; the smoke recipe: 1 model x 10 epochs x 1 step,
    # plus one test pass (0.3 s / 3 models)
    assert g.evaluation.seconds == pytest.approx(1 * (10 * 1 * 6.0 / 30) + 0.1)
    assert g.total_seconds == pytest.approx(3 * (100.0 + 2.1))
    assert plan.known_seconds == pytest.approx(g.total_seconds) and plan.unknown == []
    assert "s/iteration from 5 iterations" in g.distill.source


def test_records_of_another_device_or_a_reused_set_are_not_timings(plugins, tmp_path):
    folder = write(tmp_path / "r", record(device="cuda"), record(reused=True, distill=999.0))
    plan = make_plan(smoke_with(ipcs=[1]), ["dm"], plugins=plugins, device_kind="cpu", results_dirs=[folder])
    (g,) = plan.groups
    assert g.distill is None  # the cuda record is another device; the reused one carries an old time
    assert g.evaluation is not None  # evaluation times of a reused set are its own
    assert plan.unknown == [g]


def test_cache_building_is_taken_out_of_distillation_and_counted_once(plugins, tmp_path):
    experts = {"experts": {"build_seconds": 8.0, "count": 4, "trained_now": 2, "epochs": 2}}
    config = {"iterations": 3, "num_experts": 4, "expert_train_epochs": 2, "expert_subset_per_class": 8}
    folder = write(tmp_path / "r", record(method="mtt", distill=7.0, extra=experts, config=config))
    assert cache_seconds_in(RunRecord.from_json(record(method="mtt", distill=7.0, extra=experts, config=config))) == 4.0
    plan = make_plan(smoke_with(), ["mtt"], plugins=plugins, device_kind="cpu", results_dirs=[folder])
    one, two = plan.groups
    assert one.distill.seconds == pytest.approx(7.0 - 4.0)  # 2 of 4 experts were trained in that cell
    assert one.prerequisites is not None and two.prerequisites is None  # IPC 1 and 2 share the experts
    assert "experts" in one.prerequisites.source


def test_an_architecture_without_timings_borrows_a_relative_and_says_so(plugins, tmp_path):
    folder = write(tmp_path / "r", record(arch="resnet18"), record(arch="convnet-w32"))
    plan = make_plan(smoke_with(ipcs=[1], archs=["resnet18bn", "alexnet"]), ["dm"], plugins=plugins,
                     device_kind="cpu", results_dirs=[folder])
    (g,) = plan.groups
    assert "no resnet18bn timing: assumed as costly as resnet18" in g.evaluation.source
    assert "no alexnet timing" in g.evaluation.source


def test_calibration_times_a_short_run_when_no_record_exists(plugins, tmp_path):
    plan = make_plan(smoke_with(ipcs=[1]), ["dm", "random"], plugins=plugins, device_kind="cpu", results_dirs=[],
                     calibrate=True, device="cpu", cache_dir=tmp_path / "cache")
    dm, rnd = plan.groups
    assert dm.distill.seconds > 0 and dm.evaluation.seconds > 0
    assert "s/iteration" in dm.distill.source and "calibration" in rnd.distill.source
    assert plan.unknown == []


def test_the_cli_prints_the_grid_the_total_and_how_it_was_estimated(tmp_path, capsys):
    folder = write(tmp_path / "r", record(ipc=1), record(ipc=2))
    out = tmp_path / "plan.json"
    assert run_cli("plan", "--methods", "dm", "--protocol", "smoke", "--device", "cpu", "--results", str(folder),
                   "--workers", "2", "--json", str(out)) == 0
    text = capsys.readouterr().out
    assert "2 cell(s) in 2 group(s) on cpu" in text and "CPU-machine-hours" in text
    assert "with 2 workers" in text and "how estimated:" in text
    saved = json.loads(out.read_text())
    assert saved["cells"] == 2 and saved["groups_without_estimate"] == 0
    # no records at all: the plan says which groups lack an estimate and how to get one
    assert run_cli("plan", "--methods", "dm", "--protocol", "smoke", "--device", "cpu", "--results",
                   str(tmp_path / "none")) == 0
    assert "no estimate for 2 group(s)" in capsys.readouterr().out


def test_bad_plan_input_is_a_usage_error(tmp_path, capsys):
    assert run_cli("plan", "--methods", "dm", "--protocol", "smoke", "--workers", "0") == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert run_cli("plan", "--methods", "dm", "--protocol", "smoke", "--device", "tpu") == 2
