"""The command line as a user drives it: ls, run, report, show, and its error messages."""

from __future__ import annotations

import csv

import pytest

from conftest import run_cli


def test_ls_everything(capsys):
    for what in ("methods", "datasets", "archs", "plugins", "protocols"):
        assert run_cli("ls", what) == 0
    out = capsys.readouterr().out
    for name in ("random", "herding", "kcenter", "full", "fashionmnist", "convnet", "resnet18bn", "timm:<name>",
                 "baselines/random", "quick", "paper", "smoke"):
        assert name in out


def test_unknown_method_says_did_you_mean(capsys, tmp_path):
    assert run_cli("run", "--methods", "herdng", "--protocol", "smoke", "--results", str(tmp_path)) == 2
    assert "Did you mean 'herding'" in capsys.readouterr().err


def test_unknown_arch_and_bad_set_are_clear(capsys, tmp_path):
    assert run_cli("run", "--methods", "random", "--protocol", "smoke", "--archs", "resnet19",
                   "--results", str(tmp_path)) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert run_cli("run", "--methods", "herding", "--protocol", "smoke", "--set", "herding.nope=1",
                   "--results", str(tmp_path)) == 2
    assert "no hyperparameter 'nope'" in capsys.readouterr().err


def test_run_then_report_then_show(tmp_path, capsys):
    results = tmp_path / "results"
    rc = run_cli("run", "--methods", "random,kcenter,full", "--protocol", "smoke", "--ipc", "1",
                 "--eval", "epochs=3", "--results", str(results), "--cache-dir", str(tmp_path / "cache"),
                 "--quiet", "--no-download")
    assert rc == 0
    board = (results / "leaderboard.md").read_text()
    assert "random" in board and "kcenter" in board and "upper bound" in board
    assert run_cli("report", "--results", str(results)) == 0
    rows = list(csv.DictReader((results / "summary.csv").open()))
    assert {r["method"] for r in rows} == {"random", "kcenter", "full"}
    assert all(0 <= float(r["acc_mean"]) <= 100 for r in rows)
    artifact = next((results / "artifacts").rglob("ipc1-seed0-*.pt"))
    png = tmp_path / "grid.png"
    assert run_cli("show", str(artifact), "--out", str(png)) == 0
    assert png.stat().st_size > 100 and png.read_bytes()[:4] == b"\x89PNG"


def test_report_without_records_is_an_error(tmp_path, capsys):
    assert run_cli("report", "--results", str(tmp_path)) == 2
    assert "run `benchsuite run` first" in capsys.readouterr().err


def test_cuda_request_without_cuda_is_clear(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert run_cli("run", "--methods", "random", "--protocol", "smoke", "--device", "cuda",
                   "--results", str(tmp_path)) == 2
    assert "no CUDA device" in capsys.readouterr().err
