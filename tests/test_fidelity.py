"""The reproduction table's logic: verdicts, reasons, caveats, and the published table itself."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from installed import current

from benchsuite.fidelity import SuiteCell, fidelity_markdown, reproduction_lines, verdict
from benchsuite.published import COLUMNS, load_published
from benchsuite.records import RunRecord


def published(**changes):
    row = {"method": "dm", "dataset": "cifar10", "ipc": 1, "arch": "convnet", "accuracy": 26.0, "std": 0.8,
           "n": 100, "source": "DM paper", "reliability": "paper", "reported_value": "final", "eval_epochs": 1000,
           "eval_augment": "dsa", "labels": "hard", "zca": "no", "images_per_stored": "1", "notes": ""}
    return row | changes


def cell(**changes):
    base = dict(protocol="p", protocol_hash="h", results="r", mean=27.0, ci_low=26.0, ci_high=28.0, n=2,
                iterations=20000, division="closed", eval_epochs=1000, eval_augment="dsa", test_set="official",
                sets=3, set_sd=0.4)
    return SuiteCell(**(base | changes))


def test_a_wide_interval_or_one_set_is_inconclusive_with_the_sets_that_would_settle_it():
    # within 2 points of 26.0, but the interval over 3 sets is [23.0, 31.0]: half-width 4 > 2
    v, reasons, _ = verdict(published(), cell(mean=27.0, ci_low=23.0, ci_high=31.0, set_sd=1.62), 20000)
    assert v == "inconclusive (n too small)"
    # sets of sd 1.62: t(0.975, 5) * 1.62 / sqrt 6 = 1.70 <= 2, t(0.975, 4) * 1.62 / sqrt 5 = 2.01 > 2
    assert "[23.00, 31.00] of 3 sets" in reasons[0] and "about 6 sets would settle it" in reasons[0]
    v, reasons, _ = verdict(published(), cell(mean=27.0, sets=1, set_sd=None), 20000)
    assert v == "inconclusive (n too small)" and "one distilled set" in reasons[0]
    # a narrow interval of several sets gets its verdict
    assert verdict(published(), cell(mean=27.0, ci_low=26.2, ci_high=27.8), 20000)[0] == "within 2 points"


def test_verdicts():
    assert verdict(published(), None, 20000) == ("not run", [], [])
    assert verdict(published(), cell(mean=27.9), 20000)[0] == "within 2 points"
    assert verdict(published(), cell(mean=23.0), 20000)[0] == "gap -3.0"
    assert verdict(published(), cell(mean=29.5), 20000)[0] == "gap +3.5"


def test_a_smaller_budget_or_hard_labels_are_not_comparable_with_the_reason():
    v, reasons, _ = verdict(published(), cell(iterations=1000), 20000)
    assert v == "not comparable" and reasons == ["different budget: 1,000 of the published 20,000 iterations"]
    v, reasons, _ = verdict(published(method="pad", labels="soft"), cell(), 20000)
    assert v == "not comparable" and "soft labels" in reasons[0]
    # the open division trains on the method's soft labels: comparable again
    assert verdict(published(method="pad", labels="soft"), cell(division="open"), 20000)[0] == "within 2 points"
    # selection baselines have no distillation budget to fall short of
    assert verdict(published(method="random"), cell(iterations=None), None)[0] == "within 2 points"


def test_caveats_name_what_shifts_a_figure():
    _, _, caveats = verdict(published(reported_value="best", eval_epochs=300, eval_augment="none"),
                            cell(test_set="cifar10 (offline test: 1000 exact + 9000 JPEG)"), 20000)
    assert any("offline test set" in c for c in caveats)
    assert "evaluation epochs 1000 (published 300)" in caveats
    assert "evaluation augmentation dsa (published none)" in caveats
    assert any("best checkpoint" in c for c in caveats)


def write_records(folder, protocol, records):
    folder.mkdir(parents=True)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def record(method, dataset, ipc, accs, protocol="quick", protocol_hash="qh", iterations=100, seed=0):
    facts = current({"protocol": protocol, "protocol_hash": protocol_hash, "method": method, "dataset": dataset,
                     "ipc": ipc, "seed": seed, "method_config": {"iterations": iterations}, "division": "closed",
                     "test_set": "official"})
    return RunRecord.ok(facts, arch="convnet", accuracies=accs, eval_epochs=300).to_json()


def test_lines_pair_each_published_row_with_every_protocol_that_has_the_cell(tmp_path, plugins):
    write_records(tmp_path / "a", "quick", [record("dm", "fashionmnist", 1, [70.0, 71.0])])
    # three distilled sets, so the verdict has an interval of sets to rest on
    write_records(tmp_path / "b", "other", [record("dm", "fashionmnist", 1, [69.0 + s / 10, 70.0], "other", "oh", 20000,
                                                   seed=s) for s in range(3)])
    table = pd.DataFrame([published(dataset="fashionmnist", accuracy=70.7, std=0.6),
                          published(dataset="fashionmnist", ipc=10, accuracy=83.5)])
    lines = reproduction_lines([tmp_path / "a", tmp_path / "b"], plugins, table)
    got = sorted((ln.published["ipc"], ln.suite.protocol if ln.suite else None, ln.verdict) for ln in lines)
    assert got == [(1, "other", "within 2 points"),
                   (1, "quick", "not comparable"),   # 100 of dm's published 20,000 iterations
                   (10, None, "not run")]
    text = fidelity_markdown(lines)
    assert "not run" in text and "Counts: not comparable 1, not run 1, within 2 points 1" in text


def test_the_published_table_is_well_formed_and_keeps_disagreeing_sources():
    table = load_published()
    assert list(table.columns) == list(COLUMNS)
    assert table["accuracy"].between(0, 100).all()
    assert set(table["reported_value"]) <= {"final", "best", ""}
    assert set(table["labels"]) <= {"hard", "soft"}
    kcenter = table[(table["method"] == "kcenter") & (table["dataset"] == "cifar10") & (table["ipc"] == 10)]
    assert sorted(kcenter["accuracy"]) == [14.7, 36.4]  # the DC and the DM paper, both kept
    assert not table["source"].str.contains("METHODS[.]md|ANCHORS[.]md").any()
    dc_table1 = table[(table["source"].str.startswith("DC paper")) & (table["dataset"] == "cifar10")]
    assert {(r.method, r.ipc): r.accuracy for r in dc_table1.itertuples()} == pytest.approx({
        ("random", 1): 14.4, ("random", 10): 26.0, ("random", 50): 43.4, ("herding", 1): 21.5,
        ("herding", 10): 31.6, ("herding", 50): 40.4, ("kcenter", 1): 21.5, ("kcenter", 10): 14.7,
        ("kcenter", 50): 27.0})


def test_a_cell_measured_at_several_budgets_becomes_a_curve_with_its_figure(tmp_path, plugins):
    from benchsuite.fidelity import convergence_curves, write_fidelity

    for it, accs in ((1000, [30.0, 31.0]), (100, [20.0, 22.0]), (300, [25.0, 26.0])):
        write_records(tmp_path / f"dm-{it}it", "dm-recipe", [record("dm", "cifar10", 1, accs, "dm-recipe", "dh", it)])
    # another protocol with one budget only: no curve of its own
    write_records(tmp_path / "quick", "quick", [record("dm", "cifar10", 1, [24.0, 24.0])])
    table = pd.DataFrame([published(), published(accuracy=25.5, source="another paper")])
    lines = reproduction_lines(sorted(tmp_path.iterdir()), plugins, table)
    # within a published row, a protocol's cells come in increasing iterations
    dm_recipe = [ln.suite.iterations for ln in lines if ln.suite.protocol == "dm-recipe"]
    assert dm_recipe == [100, 300, 1000, 100, 300, 1000]
    (curve,) = convergence_curves(lines)
    assert (curve.method, curve.dataset, curve.ipc, curve.protocol) == ("dm", "cifar10", 1, "dm-recipe")
    assert [(p.iterations, p.mean) for p in curve.points] == [(100, 21.0), (300, 25.5), (1000, 30.5)]
    assert [p["accuracy"] for p in curve.published] == [26.0, 25.5]  # both sources of the cell
    assert curve.paper_iterations == 20000  # dm's published budget, where the published figure sits

    out = write_fidelity(tmp_path, plugins=plugins, published=table)
    text = out.read_text()
    assert "## Convergence toward the published figure" in text
    assert "26.0 (DM paper); 25.5 (another paper), after the published 20,000 iterations" in text
    figure = tmp_path / "fidelity-curves" / f"{curve.name}.png"
    assert figure.stat().st_size > 0 and f"(fidelity-curves/{curve.name}.png)" in text

    # a figure of a curve that has gone (here: an unrelated name) is removed when the page is rewritten
    stale = tmp_path / "fidelity-curves" / "dc-cifar10-ipc1-gone.png"
    stale.write_bytes(b"old")
    write_fidelity(tmp_path, plugins=plugins, published=table)
    assert not stale.exists() and figure.exists()


def test_the_cifar10_quick_step_runs_every_method_of_the_default_grid(plugins):
    """tools/fidelity_cifar10.sh's `quick` step lists its methods by name; a method added to the
    suite must join it, or the claim that every method's quick cell runs on CIFAR-10 goes stale."""
    import re
    from pathlib import Path

    script = (Path(__file__).resolve().parents[1] / "tools" / "fidelity_cifar10.sh").read_text()
    step = script.split("    quick)", 1)[1].split(";;", 1)[0]
    (listed,) = re.findall(r"--methods ([\w,-]+)", step)
    names = listed.split(",")
    assert len(names) == len(set(names))
    assert set(names) == set(plugins.methods) - {"full"}
