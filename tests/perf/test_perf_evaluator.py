"""Evaluator micro-benchmarks: the suite's training loop and test pass against an official-style
loop, in the same run. `tox -e perf` (or `pytest tests/perf -m perf --benchmark-enable`).

Uses real Fashion-MNIST when the shared data folder is beside the repo, else random tensors of
the same shape (timings depend on shapes, not values).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchsuite.evaluate import test_accuracy as suite_test_accuracy, train_model
from benchsuite.ops.dsa import DSA
from benchsuite.ops.matching import forward_chunk

from official_style_loop import official_style_embed, official_style_test, official_style_train
from one_model import ANCHORS_IPC1_MODEL_S, first_per_class, network
from perf_data import fashionmnist

pytestmark = pytest.mark.perf

EPOCHS = 30  # per benchmark round; the protocol's 300 epochs scale linearly


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return fashionmnist(tmp_path_factory.mktemp("cache"), fallback_train=1000, fallback_test=10000)


def test_official_style_network_is_the_suites_function():
    suite, official = network("suite").eval(), network("official_style").eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(suite(x), official(x))
        assert torch.equal(suite.embed(x), official_style_embed(official, x))


@pytest.mark.parametrize("ipc", [1, 10])
@pytest.mark.parametrize("impl", ["suite", "official_style"])
def test_train(benchmark, fmnist, ipc, impl):
    x, y = first_per_class(fmnist[0], ipc)
    dsa = DSA("color_crop_cutout_flip_scale_rotate")
    g = torch.Generator().manual_seed(0)
    benchmark.extra_info.update(epochs=EPOCHS, ipc=ipc, impl=impl)

    def run():
        model = network(impl)
        if impl == "suite":
            # as evaluate_synset calls it: minibatch gradients accumulated over 16-image chunks
            train_model(model, x, y, epochs=EPOCHS, lr=0.01, generator=g, augment=dsa,
                        chunk=forward_chunk("cpu", x.shape[1:]))
        else:
            official_style_train(model, x, y, EPOCHS, augment=dsa, generator=g)

    # IPC-1 rounds take under a second, so more of them steady the minimum on a noisy machine.
    benchmark.pedantic(run, rounds=8 if ipc == 1 else 3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["suite", "official_style"])
def test_test_pass(benchmark, fmnist, impl):
    test = fmnist[1]
    model = network(impl)
    benchmark.extra_info.update(images=len(test), impl=impl)
    if impl == "suite":
        # The warm-up round pays the one-off compile of the test pass (about 10 s per process and
        # architecture; docs/performance.md, "What makes the evaluator fast"); every later model reuses it.
        benchmark.pedantic(lambda: suite_test_accuracy(model, test, 500), rounds=3, iterations=1, warmup_rounds=1)
    else:
        benchmark.pedantic(lambda: official_style_test(model, test.images, test.labels), rounds=2, iterations=1)


def test_dataset_load_from_cache(benchmark, tmp_path):
    from conftest import SHARED_DATA
    from benchsuite.data import DataSources, builtin_entry, load_dataset

    if not (SHARED_DATA / "fashion_mnist").exists():
        pytest.skip("shared data folder not beside the repo")
    sources = DataSources(root=SHARED_DATA, allow_download=False)
    load_dataset(builtin_entry("fashionmnist"), sources, tmp_path, torch.device("cpu"))  # first time fills the cache
    benchmark.pedantic(lambda: load_dataset(builtin_entry("fashionmnist"), sources, tmp_path, torch.device("cpu")),
                       rounds=5, iterations=1)


@pytest.mark.parametrize("impl", ["suite", "avg_pool2d"])
def test_pool_forward_backward(benchmark, impl):
    """ConvNet's 2x2 average pooling (bitwise ``avg_pool2d``'s results) against ``avg_pool2d``, on the
    first block's map of an IPC-1 training step (10 x 128 x 32 x 32, NCHW)."""
    from benchsuite.archs.norms import AvgPool2x2

    pool = AvgPool2x2() if impl == "suite" else torch.nn.AvgPool2d(2, 2)
    x = torch.randn(10, 128, 32, 32, requires_grad=True)
    g = torch.randn(10, 128, 16, 16)

    def run():
        for _ in range(10):
            torch.autograd.grad(pool(x), x, g)

    benchmark.extra_info.update(impl=impl, calls=10)
    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)


def test_ipc1_model_against_official_style(benchmark, fmnist, tmp_path):
    """The quantity the speed target names: one IPC-1 model at the protocol's 300 epochs with DSA, then
    the 10,000-image test pass, through the suite's ``evaluate_synset`` and through the official-style
    loop. Each side runs in a fresh process of its own (``one_model.py``), as a real run would,
    alternating so both see the same machine. The ratio of the minima is in ``extra_info`` (and
    printed with ``-s``); the benchmark's own time is one pair, process start-up included."""
    script = Path(__file__).with_name("one_model.py")
    times: dict[str, list[float]] = {"suite": [], "official_style": []}
    accuracy: dict[str, float] = {}

    def pair():
        for impl in times:
            proc = subprocess.run([sys.executable, str(script), impl, str(tmp_path)],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"{script.name} {impl} failed:\n{proc.stderr[-3000:]}"
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            times[impl].append(result["seconds"])
            accuracy[impl] = result["accuracy"]

    benchmark.pedantic(pair, rounds=3, iterations=1)
    best = {k: min(v) for k, v in times.items()}
    ratio = best["suite"] / best["official_style"]
    benchmark.extra_info.update(suite_s=round(best["suite"], 2), official_style_s=round(best["official_style"], 2),
                                ratio=round(ratio, 3), anchors_official_s=ANCHORS_IPC1_MODEL_S,
                                ratio_to_anchors=round(best["suite"] / ANCHORS_IPC1_MODEL_S, 3))
    print(f"\nIPC-1 model: suite {best['suite']:.2f} s, official-style {best['official_style']:.2f} s "
          f"(same run), ratio {ratio:.2f}; against the official code's {ANCHORS_IPC1_MODEL_S} s: "
          f"{best['suite'] / ANCHORS_IPC1_MODEL_S:.2f}; accuracy {accuracy}")
