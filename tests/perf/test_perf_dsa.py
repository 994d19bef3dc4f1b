"""Benchmarks of DSA (forward + backward), as run every training step of the evaluator."""

from __future__ import annotations

import pytest
import torch

from benchsuite.ops.dsa import DSA, STRATEGY_DIGITS, STRATEGY_NATURAL, VALID_OPS

pytestmark = pytest.mark.perf

CASES = {
    "cifar_256x3x32x32": ((256, 3, 32, 32), STRATEGY_NATURAL),
    "mnist_256x1x28x28": ((256, 1, 28, 28), STRATEGY_DIGITS),
}


def _step(dsa: DSA, x: torch.Tensor, g: torch.Generator, siamese: bool) -> None:
    if siamese:
        y = dsa.siamese(x, generator=g)[0]
    else:
        y = dsa(x, g)
    y.sum().backward()


@pytest.mark.parametrize("siamese", [False, True], ids=["independent", "siamese"])
@pytest.mark.parametrize("case", list(CASES))
def test_perf_dsa_full_strategy(benchmark, case, siamese):
    """Full published strategy; each call picks one op, so the mean is over the op mix."""
    shape, strategy = CASES[case]
    dsa = DSA(strategy)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    g = torch.Generator().manual_seed(1)

    def step() -> None:
        x.grad = None
        _step(dsa, x, g, siamese)

    benchmark.pedantic(step, rounds=60, iterations=1, warmup_rounds=3)
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("op", VALID_OPS)
def test_perf_dsa_op(benchmark, op):
    """Each op alone on 256 CIFAR-sized images, independent per-sample parameters."""
    dsa = DSA(op)
    x = torch.rand((256, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    g = torch.Generator().manual_seed(1)

    def step() -> None:
        x.grad = None
        _step(dsa, x, g, False)

    benchmark.pedantic(step, rounds=30, iterations=1, warmup_rounds=2)
    assert x.grad is not None
