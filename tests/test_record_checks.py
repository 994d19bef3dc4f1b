"""Records are checked when read: impossible accuracies, per-class counts and timings are named
with their line number once per file and left out of every table, and of resume."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from installed import current

from benchsuite.record_checks import record_problems
from benchsuite.record_store import IDENTITY_FIELDS, RecordStore
from benchsuite.records import RunRecord, read_records
from benchsuite.report import write_report


def record(method="dm", ipc=1, values=(70.0,), **changes):
    r = current({"schema_version": 3, "protocol": "quick", "protocol_hash": "h", "method": method,
                 "dataset": "fashionmnist", "ipc": ipc, "arch": "convnet", "distill_arch": "convnet", "seed": 0,
                 "status": "ok", "division": "closed", "test_set": "official",
                 "method_kind": "select" if method in ("random", "herding", "kcenter") else "distill",
                 "accuracy": {"values": list(values), "mean": sum(values) / len(values)},
                 "images_per_class": [ipc] * 10, "num_images": 10 * ipc,
                 "eval_seconds": 5.0, "eval_train_seconds": 3.0, "eval_test_seconds": 1.9,
                 "started_at": "2026-01-01T10:00:00+00:00", "finished_at": "2026-01-01T10:05:00+00:00"})
    return r | changes


def write(folder, records):
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def ranking(board: str) -> str:
    return board.split("### Efficiency")[0]


IMPOSSIBLE_ACCURACIES = {
    "above 100": {"values": [250.0], "mean": 250.0},
    "negative": {"values": [-5.0], "mean": -5.0},
    "a value only": {"values": [60.0, 140.0], "mean": 100.0},
    "the mean only": {"values": [60.0], "mean": 250.0},
}


@pytest.mark.parametrize("accuracy", IMPOSSIBLE_ACCURACIES.values(), ids=IMPOSSIBLE_ACCURACIES.keys())
def test_an_impossible_accuracy_is_named_by_line_and_never_ranked(tmp_path, caplog, accuracy):
    write(tmp_path, [record("dm", values=[70.0]), record("random", values=[50.0]),
                     record("kcenter", accuracy=accuracy)])
    with caplog.at_level(logging.WARNING, "benchsuite"):
        board, _, summary = write_report(tmp_path)
    assert set(summary["method"]) == {"dm", "random"}
    text = board.read_text()
    assert "kcenter" not in ranking(text)
    assert "line 3: accuracy" in text and "outside [0, 100]" in text  # the leaderboard says what it left out
    warnings = [r.getMessage() for r in caplog.records if "no run can produce" in r.getMessage()]
    assert len(warnings) == 1 and "line 3: accuracy" in warnings[0] and "records.jsonl" in warnings[0]


def test_a_hand_edited_rerun_does_not_replace_the_true_number(tmp_path):
    # the same cell edited to 250 below its real record: the real one stays, the edit is not #1
    write(tmp_path, [record("dm", values=[70.0]), record("random", values=[50.0]),
                     record("random", values=[250.0])])
    _, _, summary = write_report(tmp_path)
    scores = dict(zip(summary["method"], summary["acc_mean"]))
    assert scores == {"dm": 70.0, "random": 50.0}


def test_the_warning_is_given_once_per_file(tmp_path, caplog):
    write(tmp_path, [record("dm"), record("random", values=[250.0])])
    with caplog.at_level(logging.WARNING, "benchsuite"):
        read_records(tmp_path)
        read_records(tmp_path)
    assert sum("no run can produce" in r.getMessage() for r in caplog.records) == 1


WRONG_COUNTS = {
    "one class with two": {"images_per_class": [1] * 9 + [2], "num_images": 11},
    "two per class at IPC 1": {"images_per_class": [2] * 10, "num_images": 20},
    "num_images not the sum": {"num_images": 12},
}


@pytest.mark.parametrize("changes", WRONG_COUNTS.values(), ids=WRONG_COUNTS.keys())
def test_per_class_counts_that_disagree_with_the_ipc_are_left_out(tmp_path, caplog, changes):
    write(tmp_path, [record("random", values=[50.0]), record("dm", **changes)])
    with caplog.at_level(logging.WARNING, "benchsuite"):
        _, _, summary = write_report(tmp_path)
    assert set(summary["method"]) == {"random"}
    assert "line 2:" in caplog.text and ("images_per_class" in caplog.text or "num_images" in caplog.text)


def test_a_container_is_checked_for_balance_only(tmp_path):
    # HMN decodes to more images per class than IPC: balanced is right, unbalanced is not
    write(tmp_path, [record("hmn", images_per_class=[8] * 10, num_images=80),
                     record("hmn", seed=1, images_per_class=[8] * 9 + [7], num_images=79)])
    _, _, summary = write_report(tmp_path)
    assert list(summary["method"]) == ["hmn"] and list(summary["seeds"]) == [1]


def test_without_the_installed_methods_a_distill_record_is_checked_for_balance_and_a_selection_exactly():
    hmn_like = RunRecord.from_json(record("dm", images_per_class=[8] * 10, num_images=80))
    assert record_problems(hmn_like) == []  # the record alone does not say dm is no container
    assert record_problems(hmn_like, {"dm": False}) == ["images_per_class [8, 8, 8, 8, 8, 8, 8, 8, 8, 8] is not 1 in "
                                                        "every class (IPC 1)"]
    selection = RunRecord.from_json(record("random", images_per_class=[2] * 10, num_images=20))
    assert record_problems(selection) != []
    whole = RunRecord.from_json(record("full", ipc=0, images_per_class=[6000, 5000], num_images=11000))
    assert record_problems(whole) == []  # the whole train set keeps the train set's counts


IMPOSSIBLE_TIMINGS = {
    "negative distill time": {"distill_seconds": -1.0},
    "negative eval time": {"eval_seconds": -3.0, "eval_train_seconds": 0.0, "eval_test_seconds": 0.0},
    "parts above the whole": {"eval_seconds": 5.0, "eval_train_seconds": 30.0, "eval_test_seconds": 20.0},
    "finished before started": {"finished_at": "2026-01-01T09:00:00+00:00"},
    "a time that is not a time": {"started_at": "yesterday"},
}


@pytest.mark.parametrize("changes", IMPOSSIBLE_TIMINGS.values(), ids=IMPOSSIBLE_TIMINGS.keys())
def test_impossible_timings_are_left_out(tmp_path, changes):
    write(tmp_path, [record("random", values=[50.0]), record("dm", **changes)])
    _, _, summary = write_report(tmp_path)
    assert set(summary["method"]) == {"random"}


def test_rounding_of_the_timed_parts_is_not_impossible():
    r = RunRecord.from_json(record("dm", eval_seconds=5.0, eval_train_seconds=3.0004, eval_test_seconds=2.0004))
    assert record_problems(r, {"dm": False}) == []


def test_an_impossible_record_does_not_count_as_done_so_its_cell_runs_again(tmp_path):
    write(tmp_path, [record("dm", arch="convnet"), record("dm", arch="resnet18", values=[250.0])])
    cell = SimpleNamespace(method="dm", dataset="fashionmnist", ipc=1, seed=0)
    identity = {k: v for k, v in record("dm").items() if k in IDENTITY_FIELDS}
    assert RecordStore(tmp_path).pending_archs(cell, ["convnet", "resnet18"], "h", identity) == ["resnet18"]
