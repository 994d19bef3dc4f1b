"""The floor under one IPC-1 evaluation model on this machine: what its convolutions alone cost.

The IPC-1 speed target is half of the official code's measured time per model (docs/performance.md,
"The official code's cost on the project's machine"). These benchmarks
measure the convolutions of the suite's ConvNet-3 at the evaluator's own shapes and layouts (a
10-image training step in NCHW; a 16-image test chunk in channels-last), turn them into
GFLOP/s with the counted arithmetic (``conv_work.py``), and add them up over one model: 300
training steps and 10,000 test images. They also time the matrix products that a Winograd
F(4x4, 3x3) convolution would do instead of block 2's direct one, the largest convolution.
docs/performance.md ("The IPC-1 target") gives the figures.

`pytest tests/perf/test_perf_ceiling.py -m perf --benchmark-enable -s`
"""

from __future__ import annotations

import copy
import time
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchsuite.ops.matching import forward_chunk

from conv_work import layer_work
from one_model import ANCHORS_IPC1_MODEL_S, network, warm_suite_process
from perf_data import fashionmnist

TRAIN_BATCH = 10  # IPC 1 of 10 classes: each step is the whole set
TRAIN_STEPS = 300  # the quick protocol's epochs, one step each
TEST_IMAGES = 10_000
TEST_CHUNK = forward_chunk("cpu", (1, 28, 28))  # the evaluator's test-pass chunk


def test_flop_count_of_convnet3_matches_hand_count():
    """ConvNet-3 (width 128) on 28x28 inputs, whose first conv is padded to a 32x32 map."""
    model = network("suite")
    work = layer_work(model, torch.zeros(1, 1, 28, 28))
    hand = [32 * 32 * 128 * 1 * 9, 16 * 16 * 128 * 128 * 9, 8 * 8 * 128 * 128 * 9, 128 * 4 * 4 * 10]
    assert [w.name for w in work] == ["features.conv1", "features.conv2", "features.conv3", "classifier"]
    assert [w.macs for w in work] == hand
    assert [w.takes_network_input for w in work] == [True, False, False, False]
    step = layer_work(model, torch.zeros(TRAIN_BATCH, 1, 28, 28))
    assert sum(w.training_flops for w in step) == TRAIN_BATCH * 2 * (2 * hand[0] + 3 * sum(hand[1:]))


def _min_seconds(fn: Callable[[], object], rounds: int) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.perf
def test_convolution_floor_of_one_ipc1_model(benchmark, tmp_path):
    """Benchmarks the convolutions of one training step (forward, weight and input gradients, as
    the evaluator trains); times those of one test chunk alongside; prints what 300 steps and
    10,000 test images of convolution alone take, against half of the official code's model. The
    process is first warmed as a run's evaluation finds it (``warm_suite_process``): cold, fresh
    output pages make the first conv several times slower."""
    warm_suite_process(*fashionmnist(tmp_path, fallback_train=1000, fallback_test=10000))
    model = network("suite").train()
    train_work = [w for w in layer_work(model, torch.zeros(TRAIN_BATCH, 1, 28, 28)) if isinstance(w.module, nn.Conv2d)]
    train_in = [torch.randn(w.input_shape, requires_grad=not w.takes_network_input) for w in train_work]
    train_grad = [torch.randn_like(w.module(x)) for w, x in zip(train_work, train_in)]

    def train_step_convs():
        for w, x, g in zip(train_work, train_in, train_grad):
            wrt = [w.module.weight, w.module.bias] + ([] if w.takes_network_input else [x])
            torch.autograd.grad(w.module(x), wrt, g)

    # The test pass runs the model in channels-last layout (``evaluate.test_accuracy``).
    cl = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    cl_modules = dict(cl.named_modules())
    test_work = [w for w in layer_work(model, torch.zeros(TEST_CHUNK, 1, 28, 28)) if isinstance(w.module, nn.Conv2d)]
    test_in = [torch.randn(w.input_shape).contiguous(memory_format=torch.channels_last) for w in test_work]

    def test_chunk_convs():
        with torch.inference_mode():
            for w, x in zip(test_work, test_in):
                cl_modules[w.name](x)

    benchmark.pedantic(train_step_convs, rounds=30, iterations=1, warmup_rounds=3)
    step_s = benchmark.stats.stats.min
    chunk_s = _min_seconds(test_chunk_convs, rounds=30)
    step_flops = sum(w.training_flops for w in train_work)
    chunk_flops = sum(w.forward_flops for w in test_work)
    train_total = TRAIN_STEPS * step_s
    test_total = TEST_IMAGES / TEST_CHUNK * chunk_s
    target = ANCHORS_IPC1_MODEL_S / 2
    benchmark.extra_info.update(
        step_ms=round(step_s * 1e3, 2), step_gflops=round(step_flops / step_s / 1e9),
        chunk_ms=round(chunk_s * 1e3, 2), chunk_gflops=round(chunk_flops / chunk_s / 1e9),
        model_train_conv_s=round(train_total, 2), model_test_conv_s=round(test_total, 2),
        model_conv_s=round(train_total + test_total, 2), target_s=target)
    print(f"\nconvolutions of one IPC-1 model: training {TRAIN_STEPS} x {step_s * 1e3:.2f} ms "
          f"({step_flops / step_s / 1e9:.0f} GFLOP/s) = {train_total:.2f} s; test "
          f"{TEST_IMAGES // TEST_CHUNK} x {chunk_s * 1e3:.2f} ms ({chunk_flops / chunk_s / 1e9:.0f} GFLOP/s) = "
          f"{test_total:.2f} s; together {train_total + test_total:.2f} s against the target's {target:.2f} s "
          f"(half of the official code's {ANCHORS_IPC1_MODEL_S} s)")


@pytest.mark.perf
@pytest.mark.parametrize("impl", ["direct", "winograd_products"])
def test_block2_conv_against_winograd_products(benchmark, impl):
    """Block 2's convolution on one test chunk (16 x 128 x 16 x 16, channels-last) as oneDNN runs it,
    against only the 36 matrix products that Winograd F(4x4, 3x3) replaces it with: 4x fewer
    multiplications, with the input, filter and output transforms left out. If the products alone
    are not much faster than the direct convolution, transforms cannot be paid for."""
    channels, size = 128, 16
    if impl == "direct":
        x = torch.randn(TEST_CHUNK, channels, size, size).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(channels, channels, 3, 3).contiguous(memory_format=torch.channels_last)
        flops = 2 * TEST_CHUNK * size * size * channels * channels * 9

        def run():
            F.conv2d(x, weight, padding=1)
    else:
        tiles = TEST_CHUNK * (size // 4) ** 2  # 4x4 output tiles
        v, u = torch.randn(36, tiles, channels), torch.randn(36, channels, channels)
        flops = 2 * 36 * tiles * channels * channels

        def run():
            torch.bmm(v, u)

    with torch.inference_mode():
        benchmark.pedantic(run, rounds=50, iterations=1, warmup_rounds=5)
    gflops = flops / benchmark.stats.stats.min / 1e9
    benchmark.extra_info.update(impl=impl, mflop=round(flops / 1e6, 1), gflops=round(gflops))
    print(f"\n{impl}: {benchmark.stats.stats.min * 1e3:.2f} ms for {flops / 1e6:.0f} MFLOP ({gflops:.0f} GFLOP/s)")
