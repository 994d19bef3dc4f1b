"""Shared fixtures: the plugin set, the smoke protocol, the synthetic dataset, a RunContext factory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("BENCHSUITE_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def plugins():
    from benchsuite.plugins import get_plugin_manager

    return get_plugin_manager()


@pytest.fixture(scope="session")
def smoke():
    from benchsuite.protocol import load_protocol

    return load_protocol("smoke")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def synthetic(plugins, cache_dir):
    from benchsuite.data import DataSources, load_dataset

    entry = plugins.datasets.get("synthetic")
    return load_dataset(entry, DataSources(root=None, allow_download=False), cache_dir, torch.device("cpu"))


@pytest.fixture
def make_ctx(plugins, smoke, synthetic, cache_dir):
    from benchsuite.api import RunContext
    from benchsuite.modeling import model_factory

    def make(seed: int = 0, protocol=None):
        protocol = protocol or smoke
        return RunContext(
            device=torch.device("cpu"),
            generator=torch.Generator().manual_seed(seed),
            cache_dir=cache_dir,
            make_model=model_factory(plugins.archs, synthetic.spec),
            protocol=protocol,
            dataset=synthetic.spec,
            default_arch=protocol.distill_arch,
            seed=seed,
        )

    return make


def run_cli(*args: str) -> int:
    from benchsuite.cli import main

    return main(list(args))


@pytest.fixture(scope="session")
def serial_smoke_results(tmp_path_factory):
    """The whole smoke sweep (every method) run once by the serial executor: its results folder.
    The golden test pins its numbers; the Ray test compares its own sweep with it."""
    from benchsuite.plugins import get_plugin_manager
    from benchsuite.protocol import load_protocol
    from benchsuite.runner import RunOptions, Runner

    root = tmp_path_factory.mktemp("serial-smoke")
    plugins = get_plugin_manager(entry_points=False)
    options = RunOptions(results_dir=root / "results", cache_dir=root / "cache", quiet=True,
                         allow_download=False, device="cpu")
    summary = Runner(plugins, load_protocol("smoke"), options).run(sorted(plugins.methods))
    assert summary.error_records == 0, summary.errors
    return root / "results"
