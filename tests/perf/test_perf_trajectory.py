"""Trajectory-matching benchmarks (MTT/PAD): one distillation iteration (N unrolled student steps
and the backward through them) with the whole graph kept (``unroll="full"``) and with per-step
recomputation (``"checkpoint"``), and one expert epoch; Fashion-MNIST shapes, ConvNet-3 width 128,
2 CPU threads. Each benchmark records the peak memory of its work (growth of the resident set over
the iteration) as extra info, which is how the memory figures in docs/methods/mtt.md were made.

`pytest tests/perf/test_perf_trajectory.py -m perf --benchmark-enable`
"""

from __future__ import annotations

import pytest
import torch

from benchsuite.measure import _rss_bytes, measure
from benchsuite.modeling import model_factory
from benchsuite.ops.dsa import DSA
from benchsuite.training import train_epochs
from benchsuite.ops.trajectory import FunctionalStudent, ParamLayout, plan_steps, unroll_backward
from benchsuite.plugins import get_plugin_manager
from perf_data import fashionmnist

pytestmark = pytest.mark.perf


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from benchsuite.data import builtin_entry

    entry = builtin_entry("fashionmnist")
    train, _ = fashionmnist(tmp_path_factory.mktemp("cache"), fallback_train=5000)
    pm = get_plugin_manager(entry_points=False)
    make = model_factory(pm.archs, entry.spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield train, entry.spec, make
    torch.set_num_threads(threads)


@pytest.mark.parametrize("mode", ["full", "checkpoint"])
@pytest.mark.parametrize("ipc,steps", [(1, 20), (10, 10), (10, 30)])
def test_trajectory_iteration(benchmark, setup, ipc, steps, mode):
    train, spec, make = setup
    g = torch.Generator().manual_seed(0)
    net = make("convnet", g)
    student = FunctionalStudent(net)
    start = ParamLayout.flatten(net)
    target = start + 1e-3 * torch.randn(start.shape, generator=g)
    idx = torch.cat([ix[:ipc] for ix in train.class_indices()])
    images = train.images[idx].clone().requires_grad_(True)
    labels = train.labels[idx]
    lr = torch.tensor(0.01, requires_grad=True)
    dsa = DSA(spec.dsa_strategy)
    peaks = []

    def once():
        plans = plan_steps(len(images), steps, 0, dsa, g, "cpu")
        images.grad = None
        before = _rss_bytes()
        with measure(torch.device("cpu"), interval=0.01) as m:
            unroll_backward(student, start, target, images, labels, lr, plans, dsa, mode=mode)
        peaks.append(m.peak_bytes - before)

    benchmark.pedantic(once, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(ipc=ipc, syn_steps=steps, mode=mode, peak_growth_mib=round(max(peaks) / 2**20, 1))


def test_expert_epoch_on_5000_images(benchmark, setup):
    """One expert epoch on 500 images per class (20 SGD steps of 256, DSA): the quick experts' unit."""
    train, spec, make = setup
    idx = torch.cat([ix[:500] for ix in train.class_indices()])
    data = train.subset(idx)
    g = torch.Generator().manual_seed(0)
    dsa = DSA(spec.dsa_strategy)

    def once():
        net = make("convnet", g)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        train_epochs(net, data, opt, 1, 256, g, dsa)

    benchmark.pedantic(once, rounds=2, warmup_rounds=0)
