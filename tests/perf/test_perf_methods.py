"""Distillation benchmarks: one DM iteration and one DC/DSA outer iteration at IPC 1 (outer 1, inner 1),
ConvNet-3 width 128, 256 real images per class, Fashion-MNIST shapes, 2 CPU threads as in the official code's
measurements (docs/performance.md, "The official code's cost on the project's machine").

Each is timed for the suite's step (``plugins/dm.py: dm_step``, ``plugins/dc.py: dc_outer_step``,
fresh network included) and for an official-style step in the same run: a re-creation (not a
copy) of the structure of the official code (per-class real batches of 256 in one NCHW forward,
gradients of every parameter, the whole second-order graph alive until one backward). The
target is at most 0.8x the official time (the official code on the project's machine: DM 3.20 s,
DC 7.15 s, DSA 7.93 s per iteration; docs/performance.md); timings on a shared machine are only
comparable as ratios measured together, so the test asserts the ratio against the official-style
step and records the ratio to the official code's time as extra info.

`pytest tests/perf/test_perf_methods.py -m perf --benchmark-enable`
"""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from benchsuite.api import LabeledData
from benchsuite.modeling import model_factory
from benchsuite.ops.dsa import DSA
from benchsuite.ops.matching import forward_chunk
from benchsuite.plugins import get_plugin_manager
from official_style_loop import official_style_embed, official_style_twin
from perf_data import fashionmnist

pytestmark = pytest.mark.perf

ANCHOR_SECONDS = {"dm": 3.20, "dc": 7.15, "dsa": 7.93}  # official code, IPC 1, this kind of machine
TARGET_RATIO = 0.8
IPC = 1
BATCH_REAL = 256
_MEDIANS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from benchsuite.data import builtin_entry

    entry = builtin_entry("fashionmnist")
    train, _ = fashionmnist(tmp_path_factory.mktemp("cache"), fallback_train=2560)
    pm = get_plugin_manager(entry_points=False)
    modules = {name: sys.modules[pm.methods.get(name).__module__] for name in ("dm", "dc", "dsa")}
    make = model_factory(pm.archs, entry.spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield train, entry.spec, modules, make
    torch.set_num_threads(threads)


def _median(benchmark) -> float | None:
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else float(stats.stats.median)


def _record(benchmark, method: str, impl: str) -> None:
    med = _median(benchmark)
    if med is None:
        return
    _MEDIANS[(method, impl)] = med
    benchmark.extra_info.update(method=method, impl=impl, ipc=IPC, batch_real=BATCH_REAL,
                                anchor_official_s=ANCHOR_SECONDS[method],
                                ratio_to_anchor=round(med / ANCHOR_SECONDS[method], 3))


# ---------------------------------------------------------------- official-style steps


def _official_style_images(train: LabeledData, c: int, n: int, g: torch.Generator) -> torch.Tensor:
    idx = train.class_indices()[c]
    return train.images[idx[torch.randperm(len(idx), generator=g)[:n]]]


def official_style_dm(make, train, syn, opt, dsa, g):
    net = official_style_twin(make("convnet", g))
    net.train()
    for p in net.parameters():
        p.requires_grad = False
    loss = torch.tensor(0.0)
    for c in range(train.num_classes):
        img_real = _official_style_images(train, c, BATCH_REAL, g)
        img_syn = syn[c * IPC:(c + 1) * IPC].reshape(IPC, *train.image_shape)
        img_real, img_syn = dsa.siamese(img_real, img_syn, generator=g)
        out_real = official_style_embed(net, img_real).detach()
        out_syn = official_style_embed(net, img_syn)
        loss = loss + ((out_real.mean(0) - out_syn.mean(0)) ** 2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def _official_style_distance(gs, gr):
    d = 0.0
    for a, b in zip(gs, gr):
        if a.ndim == 1:
            continue
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        d = d + torch.sum(1 - torch.sum(a * b, -1) / (torch.norm(a, dim=-1) * torch.norm(b, dim=-1) + 1e-6))
    return d


def official_style_dc(make, train, syn, opt, dsa, g):
    net = official_style_twin(make("convnet", g))
    net.train()
    params = list(net.parameters())
    loss = torch.tensor(0.0)
    for c in range(train.num_classes):
        img_real = _official_style_images(train, c, BATCH_REAL, g)
        img_syn = syn[c * IPC:(c + 1) * IPC]
        if dsa is not None:
            img_real, img_syn = dsa.siamese(img_real, img_syn, generator=g)
        lab_real = torch.full((len(img_real),), c)
        gw_real = [x.detach().clone() for x in
                   torch.autograd.grad(F.cross_entropy(net(img_real), lab_real), params)]
        gw_syn = torch.autograd.grad(F.cross_entropy(net(img_syn), torch.full((IPC,), c)), params,
                                     create_graph=True)
        loss = loss + _official_style_distance(gw_syn, gw_real)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


# ---------------------------------------------------------------- benchmarks


def _syn(train, g):
    syn = torch.cat([_official_style_images(train, c, IPC, g) for c in range(train.num_classes)]).clone()
    return syn.requires_grad_(True)


@pytest.mark.parametrize("impl", ["suite", "official_style"])
def test_dm_iteration(benchmark, setup, impl):
    train, spec, modules, make = setup
    g = torch.Generator().manual_seed(0)
    syn = _syn(train, g)
    opt = torch.optim.SGD([syn], lr=1.0, momentum=0.5)
    dsa = DSA(spec.dsa_strategy)
    dm_step = modules["dm"].dm_step
    chunk = forward_chunk("cpu", train.image_shape)

    if impl == "suite":
        def run():
            dm_step(make("convnet", g), syn, opt, train, IPC, BATCH_REAL, dsa, g, chunk)
    else:
        def run():
            official_style_dm(make, train, syn, opt, dsa, g)

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    _record(benchmark, "dm", impl)
    assert torch.isfinite(syn).all()


@pytest.mark.parametrize("impl", ["suite", "official_style"])
@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_dc_outer_iteration(benchmark, setup, method, impl):
    if method == "dsa" and impl == "official_style":
        pytest.skip("the official-style comparison is made for dc; dsa differs by the siamese DSA only")
    train, spec, modules, make = setup
    mod = modules["dc"]
    g = torch.Generator().manual_seed(0)
    syn = _syn(train, g)
    labels = torch.arange(train.num_classes).repeat_interleave(IPC)
    cfg = mod.DCConfig(iterations=1, outer_loop=1, inner_loop=1, batch_real=BATCH_REAL,
                       dsa_strategy=spec.dsa_strategy if method == "dsa" else "none")
    opt = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum_img)
    dsa = DSA(spec.dsa_strategy) if method == "dsa" else None
    chunk = forward_chunk("cpu", train.image_shape)

    if impl == "suite":
        def run():
            mod.dc_outer_step(make("convnet", g), syn, labels, opt, train, IPC, cfg, dsa, g, chunk)
    else:
        def run():
            official_style_dc(make, train, syn, opt, dsa, g)

    rounds = 3 if method == "dc" else 2
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    _record(benchmark, method, impl)
    assert torch.isfinite(syn).all()


@pytest.mark.parametrize("method", ["dm", "dc"])
def test_ratio_to_official_style(method):
    """Runs after the benchmarks above (file order): the suite's step within 0.8x of the official-style one."""
    suite, official = _MEDIANS.get((method, "suite")), _MEDIANS.get((method, "official_style"))
    if suite is None or official is None:
        pytest.skip("benchmarks did not run (use --benchmark-enable)")
    ratio = suite / official
    print(f"\n{method}: suite {suite:.2f} s, official-style {official:.2f} s, ratio {ratio:.2f}; "
          f"official code {ANCHOR_SECONDS[method]:.2f} s -> {suite / ANCHOR_SECONDS[method]:.2f}")
    assert ratio <= TARGET_RATIO, f"{method} step is {ratio:.2f}x the official-style step (target {TARGET_RATIO})"
