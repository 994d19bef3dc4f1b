"""The tables derived from records: ranking within a protocol, and where each cell was measured."""

from __future__ import annotations

import json

from installed import current

from benchsuite.report import machine_label, write_report

CPU = {"device": "cpu", "device_name": "x86_64", "cpu_count": 2, "torch": "2.14.1"}
GPU = {"device": "cuda", "device_name": "NVIDIA H100", "cpu_count": 16, "torch": "2.11.0"}


def record(method, arch, values, machine=CPU, protocol_hash="aaaa", ipc=1):
    return current({"schema_version": 1, "protocol": "quick", "protocol_hash": protocol_hash, "method": method,
            "dataset": "fashionmnist",
            "test_set": "official", "ipc": ipc, "arch": arch, "distill_arch": "convnet", "seed": 0,
            "status": "ok", "accuracy": {"values": values}, "distill_seconds": 1.0, "eval_seconds": 2.0,
            "storage_bytes": 100, "division": "closed", "machine": machine})


def write(tmp_path, records):
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    board, _, summary = write_report(tmp_path)
    return board.read_text(), summary


def test_machine_label_names_device_and_torch():
    assert machine_label(CPU) == "x86_64 (cpu, 2 cores, torch 2.14.1)"
    assert machine_label(GPU) == "NVIDIA H100 (cuda, torch 2.11.0)"
    assert machine_label(None) == "unknown machine"


def test_cells_from_another_machine_are_marked(tmp_path):
    board, summary = write(tmp_path, [
        record("dm", "convnet", [70.0, 72.0]),
        record("random", "convnet", [50.0, 52.0]),
        record("dm", "resnet18", [66.0, 68.0]),
        record("random", "resnet18", [51.0, 53.0], machine=GPU),
    ])
    assert "cells marked † ran on NVIDIA H100 (cuda, torch 2.11.0)" in board
    assert "most cells ran on x86_64 (cpu, 2 cores, torch 2.14.1)" in board
    cross = board.split("### Cross-architecture transfer")[1]
    random_row = next(line for line in cross.splitlines() if line.startswith("| random"))
    dm_row = next(line for line in cross.splitlines() if line.startswith("| dm"))
    cells = [c.strip() for c in random_row.split("|")]
    assert cells[4:6] == ["51.00 ± 1.00", "52.00 ± 1.00 †"]  # convnet on the usual CPU, resnet18 on the GPU
    assert "†" not in dm_row
    assert set(summary["machine"]) == {machine_label(CPU), machine_label(GPU)}


def test_one_machine_gives_no_marks(tmp_path):
    board, _ = write(tmp_path, [record("dm", "convnet", [70.0]), record("dm", "resnet18", [66.0])])
    assert "†" not in board and "Machines:" not in board


def test_protocols_are_ranked_apart(tmp_path):
    board, summary = write(tmp_path, [
        record("dm", "convnet", [70.0], protocol_hash="aaaa"),
        record("random", "convnet", [50.0], protocol_hash="aaaa"),
        record("random", "convnet", [90.0], protocol_hash="bbbb"),
    ])
    assert board.count("## Protocol `quick`") == 2
    ranks = {(r.protocol_hash, r.method): r["rank"] for _, r in summary.iterrows()}
    assert ranks == {("aaaa", "dm"): 1, ("aaaa", "random"): 2, ("bbbb", "random"): 1}
