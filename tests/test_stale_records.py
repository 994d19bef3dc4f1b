"""What the report ranks: records of the installed code only (stale ones are counted and left out,
or kept and marked with --include-stale), overrides under their own name, the newest record of a
cell and name, and methods that are not installed listed apart."""

from __future__ import annotations

import csv
import html
import json
import logging
import re

from conftest import run_cli
from installed import current, installed_identity

from benchsuite.fidelity import reproduction_lines
from benchsuite.report import write_report
from benchsuite.site import write_site


def record(method, values=(70.0,), seed=0, **changes):
    r = current({"schema_version": 3, "protocol": "quick", "protocol_hash": "h", "method": method,
                 "dataset": "fashionmnist", "ipc": 1, "arch": "convnet", "distill_arch": "convnet", "seed": seed,
                 "status": "ok", "division": "closed", "test_set": "official",
                 "accuracy": {"values": list(values), "mean": sum(values) / len(values)}})
    return r | changes


def write(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def ranking(board: str) -> str:
    return board.split("### Efficiency")[0]


def leaderboard_rows(board: str) -> dict[str, list[str]]:
    """The first table of the leaderboard (the ranking), by the name in its first column."""
    table = board.split("| method", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table)}
    rows.pop("detectable difference", None)  # the column's design, not a method
    return rows


def stale_set():
    herding = installed_identity("herding")["method_version"]
    old_version = str(int(herding) - 1)
    records = [
        record("kcenter", [60.0]),                                   # current
        record("herding", [65.0], method_version=old_version),       # another version
        record("dm", [70.0], source_digest="0" * 16),                 # other source code
        record("random", [50.0]),                                    # no source digest: cannot be compared
    ]
    del records[3]["source_digest"]
    return records, f"1 record of herding version {old_version} (installed: {herding})"


def test_stale_records_are_left_out_by_default_and_the_report_says_how_many_and_why(tmp_path, caplog):
    records, herding_reason = stale_set()
    write(tmp_path, records)
    with caplog.at_level(logging.WARNING, "benchsuite"):
        board, _, summary = write_report(tmp_path)
    assert set(summary["method"]) == {"kcenter"}
    text = board.read_text()
    reasons = [herding_reason, "1 record of dm made by other source code than the installed one",
               "1 record made before source digests were recorded (random)"]
    assert all(r in text for r in reasons), text
    assert all(m not in ranking(text).split("Left out of the ranking")[0] for m in ("herding", "dm", "random"))
    warnings = [r.getMessage() for r in caplog.records if "Left out of the ranking" in r.getMessage()]
    assert len(warnings) == 1 and all(r in warnings[0] for r in reasons)


def test_include_stale_keeps_them_ranked_and_marked(tmp_path):
    records, herding_reason = stale_set()
    write(tmp_path, records)
    board, _, summary = write_report(tmp_path, include_stale=True)
    assert set(summary["method"]) == {"kcenter", "herding", "dm", "random"}
    stale = dict(zip(summary["method"], summary["stale"].fillna("")))
    assert stale["kcenter"] == "" and stale["random"] == "made before source digests were recorded"
    rows = leaderboard_rows(board.read_text())
    assert "‡" not in rows["kcenter"][0] and all("‡" in rows[m][0] for m in ("herding", "dm", "random"))
    assert "Cells marked ‡ are stale (kept by `--include-stale`)" in board.read_text()
    assert herding_reason in board.read_text()


def test_the_command_line_option_include_stale(tmp_path):
    records, _ = stale_set()
    write(tmp_path, records)
    assert run_cli("--no-entry-points", "report", "--results", str(tmp_path), "--no-site") == 0
    assert {r["method"] for r in csv.DictReader((tmp_path / "summary.csv").open())} == {"kcenter"}
    assert run_cli("--no-entry-points", "report", "--results", str(tmp_path), "--no-site", "--include-stale") == 0
    assert len(list(csv.DictReader((tmp_path / "summary.csv").open()))) == 4


def test_a_stale_record_superseded_by_a_current_rerun_is_neither_shown_nor_counted(tmp_path):
    old = record("random", [40.0], source_digest="0" * 16)
    write(tmp_path, [old, record("random", [50.0])])
    board, _, summary = write_report(tmp_path, include_stale=True)
    assert list(summary["acc_mean"]) == [50.0] and list(summary["stale"].fillna("")) == [""]
    text = board.read_text()
    assert "Left out of the ranking" not in text and "‡" not in text


def test_a_cell_run_with_overrides_is_a_row_of_its_own(tmp_path):
    write(tmp_path, [record("dm", [70.0], config_digest="a" * 16),
                     record("dm", [60.0], config_digest="b" * 16, method_overrides={"iterations": 50})])
    board, _, summary = write_report(tmp_path)
    assert dict(zip(summary["method"], summary["acc_mean"])) == {"dm": 70.0, "dm [iterations=50]": 60.0}
    assert set(summary["base_method"]) == {"dm"}
    assert sorted(leaderboard_rows(board.read_text())) == ["dm", "dm [iterations=50]"]


def test_two_records_of_one_cell_and_name_are_not_pooled_the_newest_counts(tmp_path):
    # an old configuration (A), a newer one (B), then A again: A's rerun is the newest line
    write(tmp_path, [record("dm", [60.0], config_digest="a" * 16), record("dm", [70.0], config_digest="b" * 16),
                     record("dm", [80.0], config_digest="a" * 16)])
    _, _, summary = write_report(tmp_path)
    assert list(summary["acc_mean"]) == [80.0] and list(summary["n"]) == [1]


def test_a_method_that_is_not_installed_is_listed_apart_and_never_ranked(tmp_path, caplog):
    gone = record("dm", [99.0]) | {"method": "gone-method"}
    failed = record("dm", seed=1) | {"method": "gone-method", "status": "error",
                                     "error": {"type": "MethodError", "message": "it broke"}}
    del failed["accuracy"]
    write(tmp_path, [record("random", [50.0]), gone, failed])
    with caplog.at_level(logging.WARNING, "benchsuite"):
        board, _, summary = write_report(tmp_path)
    assert set(summary["method"]) == {"random"}
    text = board.read_text()
    assert "gone-method" not in text.split("## Not installed")[0]
    section = text.split("## Not installed")[1]
    assert re.search(r"\| gone-method \| +2 \| +1 \|", section), section
    assert "## Failed cells" not in text  # its failure is not one of the ranked cells'
    assert "not ranked, as their methods are not installed: 2 records of gone-method" in caplog.text


def test_the_site_shows_overrides_stale_and_not_installed_records_as_the_report_does(tmp_path, plugins):
    records, _ = stale_set()
    gone = record("kcenter", [99.0]) | {"method": "gone-method"}
    override = record("kcenter", [55.0], config_digest="c" * 16, method_overrides={"extractor_epochs": 1})
    write(tmp_path, [*records, gone, override])
    page = html.unescape(write_site(tmp_path, plugins=plugins).read_text())
    leaderboard, cells = page.split("<h3>Every cell</h3>")[0], page.split("<h3>Every cell</h3>")[1]
    assert "kcenter [extractor_epochs=1]" in leaderboard and "55.00" in leaderboard
    assert "herding" not in leaderboard.split("Left out of the ranking")[1].split("</p>", 1)[1]
    assert "stale ‡: made before source digests were recorded; not ranked" in cells
    assert "<h2>Not installed</h2>" in page and "gone-method" in page.split("<h2>Not installed</h2>")[1]
    assert "99.00" not in leaderboard
    marked = html.unescape(write_site(tmp_path, plugins=plugins, include_stale=True).read_text())
    assert "stale: made before source digests were recorded" in marked.split("<h3>Every cell</h3>")[0]


def test_fidelity_pairs_an_override_with_its_method_and_leaves_stale_records_out(tmp_path, plugins):
    import pandas as pd

    write(tmp_path / "a", [record("dm", [70.0], method_config={"iterations": 20000}, config_digest="a" * 16,
                                  method_overrides={"iterations": 20000})])
    stale = record("dm", [20.0], method_config={"iterations": 20000})
    del stale["source_digest"]
    write(tmp_path / "b", [stale])
    table = pd.DataFrame([{"method": "dm", "dataset": "fashionmnist", "ipc": 1, "arch": "convnet", "accuracy": 70.5,
                           "std": 0.5, "n": 10, "source": "DM paper", "reliability": "paper",
                           "reported_value": "final", "eval_epochs": 300, "eval_augment": "", "labels": "hard",
                           "zca": "no", "images_per_stored": "1", "notes": ""}])
    lines = reproduction_lines([tmp_path / "a", tmp_path / "b"], plugins, table)
    assert [(ln.suite.name, ln.suite.mean, ln.verdict) for ln in lines] == [
        ("dm [iterations=20000]", 70.0, "inconclusive (n too small)")]  # one distilled set
    kept = reproduction_lines([tmp_path / "a", tmp_path / "b"], plugins, table, include_stale=True)
    assert sorted(ln.suite.mean for ln in kept) == [20.0, 70.0]
    # a kept stale figure is marked on the page, and the page says why
    from benchsuite.fidelity import fidelity_markdown

    page = fidelity_markdown(kept)
    rows = {line.split("|")[4].strip() for line in page.splitlines() if line.startswith("| dm ")}
    assert rows == {"20.00 [20.00, 20.00] (n=1) ‡", "70.00 [70.00, 70.00] (n=1)"}
    assert "made before source digests were recorded" in page
