"""The compiled test pass computes the eager model's function, for every model whose weights are
copied into the shared template, and falls back to eager (with a warning) when compiling fails."""

from __future__ import annotations

import pytest
import torch

from benchsuite import compiled_inference
from benchsuite.api import LabeledData
from benchsuite.archs.convnet import ConvNet
from benchsuite.evaluate import test_accuracy as accuracy_of


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(compiled_inference, "MIN_IMAGES", 64)
    monkeypatch.setattr(compiled_inference, "_templates", {})
    monkeypatch.setattr(compiled_inference, "_failed", set())
    monkeypatch.delenv("BENCHSUITE_COMPILE", raising=False)


def _testset(n: int = 100) -> LabeledData:
    g = torch.Generator().manual_seed(0)
    return LabeledData(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), 10)


def _model(seed: int) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(1, 10, 28, width=8)


@pytest.mark.usefixtures("small_threshold")
def test_compiled_forward_follows_each_models_weights():
    test = _testset()
    example = test.images[:16].contiguous(memory_format=torch.channels_last)
    for seed in (0, 1):  # the second model reuses the first one's compiled template
        model = _model(seed).eval().to(memory_format=torch.channels_last)
        fn = compiled_inference.compiled_forward(model, example)
        assert fn is not None
        with torch.inference_mode():
            assert torch.allclose(fn(example), model(example), atol=1e-5, rtol=1e-4)
    assert len(compiled_inference._templates) == 1


@pytest.mark.usefixtures("small_threshold")
def test_accuracy_is_the_same_compiled_or_eager(monkeypatch):
    test = _testset(100)  # 6 full chunks of 16 compiled, a tail of 4 eager
    model = _model(2)
    compiled = accuracy_of(model, test, 500)
    assert len(compiled_inference._templates) == 1
    monkeypatch.setenv("BENCHSUITE_COMPILE", "0")
    assert accuracy_of(model, test, 500) == compiled


@pytest.mark.usefixtures("small_threshold")
def test_compile_failure_runs_eagerly_with_a_warning(monkeypatch):
    def broken(module, **kwargs):
        def fn(x):
            raise RuntimeError("no C++ compiler")
        return fn

    monkeypatch.setattr(torch, "compile", broken)
    test = _testset(100)
    model = _model(3)
    with pytest.warns(RuntimeWarning, match="runs eagerly"):
        acc = accuracy_of(model, test, 500)
    monkeypatch.setenv("BENCHSUITE_COMPILE", "0")
    assert accuracy_of(model, test, 500) == acc
