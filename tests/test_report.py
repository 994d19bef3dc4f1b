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
    two_sets = lambda method, values, h: [record(method, "convnet", v, protocol_hash=h) | {"seed": s}
                                          for s, v in enumerate(values)]
    board, summary = write(tmp_path, [
        *two_sets("dm", [[70.0, 70.5], [71.0, 70.9]], "aaaa"),
        *two_sets("random", [[50.0, 50.4], [50.5, 51.5]], "aaaa"),
        *two_sets("random", [[90.0, 90.2], [89.0, 89.4]], "bbbb"),
    ])
    assert board.count("## Protocol `quick`") == 2
    ranks = {(r.protocol_hash, r.method): r["rank"] for _, r in summary.iterrows()}
    assert ranks == {("aaaa", "dm"): 1, ("aaaa", "random"): 2, ("bbbb", "random"): 1}


def test_a_cell_of_one_set_is_shown_but_never_tested_or_ranked(tmp_path):
    board, summary = write(tmp_path, [record("dm", "convnet", [70.0, 71.0]), record("random", "convnet", [50.0, 51.0])])
    assert summary["rank"].isna().all() and summary["p_vs_random"].isna().all()
    assert set(summary.loc[summary["method"] == "dm", "test_vs_random"]) == {"one set: not tested"}
    table = board.split("### Versus random")[0]
    assert "70.50 [64.15, 76.85] (n=2, 1 set)" in table and "#" not in table.split("| method")[1]
    assert "not estimable: one set per cell" in table
    assert "one set: not tested" in board.split("### Versus random")[1]


def test_rows_follow_the_means_and_the_column_says_what_it_can_detect(tmp_path):
    sets = lambda method, means: [record("dm" if method == "dm" else method, "convnet", [m - 0.2, m + 0.2]) |
                                  {"seed": s} for s, m in enumerate(means)]
    board, summary = write(tmp_path, [*sets("random", [50.0, 51.0, 49.0]), *sets("dm", [70.0, 70.5, 69.8])])
    rows = [line.split("|")[1].strip() for line in board.split("### Versus random")[0].splitlines()
            if line.startswith("| ") and not line.startswith("| method")]
    assert rows[:2] == ["dm", "random"] and rows[-1] == "detectable difference"
    detectable = summary["detectable"].dropna().unique()
    assert len(detectable) == 1 and detectable[0] > 0
    assert f"{detectable[0]:.2f} points" in board


def test_storage_bands_by_the_pixel_budget():
    from benchsuite.report import storage_band

    per_ipc = 10 * 28 * 28 * 4  # Fashion-MNIST: one float32 image per class
    assert storage_band(per_ipc, 1, per_ipc) == (1.0, "pixels")
    assert storage_band(per_ipc * 10 * 0.5, 10, per_ipc) == (0.5, "pixels")   # a container under budget
    assert storage_band(per_ipc * 33, 1, per_ipc) == (33.0, "32× pixels")       # H-PD's latents and layers
    assert storage_band(None, 1, per_ipc) == (None, "pixels")


def test_methods_are_ranked_only_within_their_storage_band_and_label_regime(tmp_path):
    per_ipc = 10 * 28 * 28 * 4

    def cell(method, means, storage, soft=False):
        return [record(method, "convnet", [m - 0.2, m + 0.2]) | {"seed": s, "storage_bytes": storage,
                                                                 "eval_soft_labels": soft}
                for s, m in enumerate(means)]
    board, summary = write(tmp_path, [*cell("random", [50.0, 51.0, 49.5], per_ipc),
                                      *cell("dm", [70.0, 70.6, 69.7], per_ipc),
                                      *cell("hpd-dm", [60.0, 60.4, 59.8], per_ipc * 32),
                                      *cell("mtt", [75.0, 75.5, 74.6], per_ipc, soft=True)])
    by = {r.method: r for r in summary.itertuples()}
    assert (by["dm"].band, by["hpd-dm"].band, by["mtt"].labels) == ("pixels", "32× pixels", "soft")
    # dm is first among the pixel, hard-label cells; hpd-dm and mtt are alone in their own views
    assert (by["dm"].rank, by["random"].rank, by["hpd-dm"].rank, by["mtt"].rank) == (1, 2, 1, 1)
    table = board.split("### Versus random")[0]
    hpd = next(line for line in table.splitlines() if line.startswith("| hpd-dm"))
    assert "◇ 32× pixels, hard labels" in hpd
    assert "◇" not in next(line for line in table.splitlines() if line.startswith("| dm "))
    assert "◇ pixels, soft labels" in next(line for line in table.splitlines() if line.startswith("| mtt"))
    # the storage view puts the cells of one size together, best first
    equal = board.split("### At equal storage")[1].split("###")[0]
    assert "mtt IPC 1: 75.03 (soft labels); dm IPC 1: 70.10 (hard labels); random IPC 1: 50.17" in equal
    assert "hpd-dm IPC 1: 60.07" in equal
