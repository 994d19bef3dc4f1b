"""DC, DSA and DM (plugins/dc.py, plugins/dm.py) and their shared pieces (benchsuite/ops/matching.py,
benchsuite/ops/sampling.py): the objectives, one update of each method, the config tables."""

from __future__ import annotations

import sys

import pytest
import torch

from benchsuite.errors import ConfigError, MethodError
from benchsuite.ops.dsa import DSA, STRATEGY_DIGITS, STRATEGY_NATURAL
from benchsuite.ops.matching import (
    LossMonitor,
    classwise_mean_embedding_distance,
    embed_chunked,
    gradient_distance,
    loss_gradients,
    make_augment,
    matched_parameters,
    mean_embedding_distance,
    siamese_per_class,
)
from benchsuite.ops.objectives import freeze_bn_statistics, match_step
from benchsuite.ops.sampling import class_batch_indices, init_synthetic, sample_classes
from benchsuite.protocol import load_protocol


@pytest.fixture(scope="module")
def mods():
    from benchsuite.plugins import get_plugin_manager

    pm = get_plugin_manager(entry_points=False)
    return {name: sys.modules[pm.methods.get(name).__module__] for name in ("dc", "dm")}


@pytest.fixture
def net_and_data(make_ctx, synthetic):
    ctx = make_ctx(3)
    return ctx.model(), synthetic.train, ctx


# ---------------------------------------------------------------- gradient distance


def test_gradient_distance_hand_computed():
    a = [torch.tensor([[1.0, 0.0], [0.0, 2.0]])]
    b = [torch.tensor([[3.0, 0.0], [1.0, 0.0]])]
    # row 0: cos 1 -> 1 - 3/(3 + 1e-6); row 1: cos 0 -> 1
    expected = (1 - 3 / (3 + 1e-6)) + 1.0
    assert gradient_distance(a, b).item() == pytest.approx(expected, abs=1e-6)
    # mse and cos over the concatenated vectors
    assert gradient_distance(a, b, "mse").item() == pytest.approx(4 + 0 + 1 + 4)
    cos = 3 / ((5 ** 0.5) * (10 ** 0.5) + 1e-6)
    assert gradient_distance(a, b, "cos").item() == pytest.approx(1 - cos, abs=1e-6)


def test_gradient_distance_per_output_unit_for_conv_and_3d():
    g = torch.Generator().manual_seed(0)
    conv_s, conv_r = torch.randn(4, 2, 3, 3, generator=g), torch.randn(4, 2, 3, 3, generator=g)
    ln_s, ln_r = torch.randn(3, 4, 4, generator=g), torch.randn(3, 4, 4, generator=g)

    def rows(x, y):
        return sum(1 - torch.dot(p, q) / (p.norm() * q.norm() + 1e-6) for p, q in zip(x, y))

    expected = rows(conv_s.reshape(4, -1), conv_r.reshape(4, -1)) + rows(ln_s.reshape(3, -1), ln_r.reshape(3, -1))
    got = gradient_distance([conv_s, ln_s], [conv_r, ln_r])
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_distance_zero_for_identical_and_ignores_1d():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 3, 3, 3, generator=g)
    fc = torch.randn(10, 32, generator=g)
    same = gradient_distance([w, fc], [w.clone(), fc.clone()])
    assert abs(same.item()) < 1e-4
    # 1-D tensors (biases, norm gamma/beta) contribute nothing, however different
    with_bias = gradient_distance([w, torch.randn(8, generator=g), fc], [w, torch.randn(8, generator=g), fc])
    assert with_bias.item() == pytest.approx(same.item(), abs=1e-6)
    with pytest.raises(ConfigError, match="ours"):
        gradient_distance([w], [w], "l2")
    with pytest.raises(ValueError):
        gradient_distance([w], [fc])


def test_matched_parameters_skip_1d_for_ours(net_and_data):
    net, _, _ = net_and_data
    assert all(p.ndim >= 2 for p in matched_parameters(net, "ours"))
    assert len(matched_parameters(net, "mse")) == len(list(net.parameters()))


def test_chunked_loss_gradients_equal_whole_batch(net_and_data):
    net, real, ctx = net_and_data
    x, n = sample_classes(real, 8, ctx.generator)
    y = torch.arange(real.num_classes).repeat_interleave(n)
    params = matched_parameters(net)
    whole = loss_gradients(net, params, x, y)
    chunked = loss_gradients(net, params, x, y, chunk=7)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- distribution distance


def test_mean_embedding_distances():
    g = torch.Generator().manual_seed(2)
    er, es = torch.randn(3 * 5, 4, generator=g), torch.randn(3 * 2, 4, generator=g)
    per_class = sum(mean_embedding_distance(er[c * 5:(c + 1) * 5], es[c * 2:(c + 1) * 2]) for c in range(3))
    assert classwise_mean_embedding_distance(er, es, 3).item() == pytest.approx(per_class.item(), rel=1e-6)
    assert mean_embedding_distance(er, er).item() == 0.0
    manual = ((er.mean(0) - es.mean(0)) ** 2).sum()
    assert mean_embedding_distance(er, es).item() == pytest.approx(manual.item(), rel=1e-6)


def test_batched_embedding_equals_per_class_forwards(net_and_data):
    """Instance norm is per sample: one forward of all classes (chunked or not) = per-class forwards."""
    net, real, ctx = net_and_data
    x, n = sample_classes(real, 6, ctx.generator)
    with torch.no_grad():
        per_class = torch.cat([net.embed(xc) for xc in x.split(n)])
        torch.testing.assert_close(embed_chunked(net.embed, x, None), per_class, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(embed_chunked(net.embed, x, 5), per_class, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- sampling


def test_sampling_is_class_major_and_seeded(synthetic):
    real = synthetic.train
    a = class_batch_indices(real, 7, torch.Generator().manual_seed(0))
    b = class_batch_indices(real, 7, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert torch.equal(real.labels[a], torch.arange(10).repeat_interleave(7))
    assert len(set(a.tolist())) == len(a)  # without replacement
    x, n = sample_classes(real, 10_000, torch.Generator().manual_seed(0))
    assert n == min(real.class_counts()) and x.shape[0] == 10 * n
    imgs, labels = init_synthetic(real, 3, "noise", torch.Generator().manual_seed(0))
    assert imgs.shape == (30, *real.image_shape) and torch.equal(labels, torch.arange(10).repeat_interleave(3))
    with pytest.raises(ConfigError):
        init_synthetic(real, 3, "zeros", torch.Generator())


# ---------------------------------------------------------------- one update lowers the objective


def test_one_dc_update_lowers_gradient_distance(mods, net_and_data, synthetic):
    """A DC matching step (SGD lr 0.1, momentum 0.5 on the pixels) on a fixed network and fixed real /
    synthetic batches: the distance recomputed with the same network and batches is lower."""
    dc = mods["dc"]
    net, real, ctx = net_and_data
    syn, _ = init_synthetic(real, 2, "noise", ctx.generator)
    syn.requires_grad_(True)
    cfg = dc.DCConfig(batch_real=32)
    params = matched_parameters(net, cfg.dis_metric)
    for dsa in (None, DSA(synthetic.spec.dsa_strategy)):
        # The same generator seed draws the same real batches (and the same DSA parameters).
        before = match_step(net, params, syn, torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum_img),
                               real, 2, cfg, dsa, torch.Generator().manual_seed(11), 16)
        after = match_step(net, params, syn, torch.optim.SGD([syn], lr=0.0),
                              real, 2, cfg, dsa, torch.Generator().manual_seed(11), 16)
        assert after.item() < before.item()


def test_one_dm_update_lowers_embedding_distance(mods, net_and_data, synthetic):
    dm = mods["dm"]
    net, real, ctx = net_and_data
    syn, _ = init_synthetic(real, 2, "real", ctx.generator)
    syn.requires_grad_(True)
    cfg = dm.DMConfig()
    dsa = DSA(synthetic.spec.dsa_strategy)
    before = dm.dm_step(net, syn, torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum_img), real, 2, 32,
                        dsa, torch.Generator().manual_seed(5), 16)
    after = dm.dm_step(net, syn, torch.optim.SGD([syn], lr=0.0), real, 2, 32, dsa,
                       torch.Generator().manual_seed(5), 16)
    assert after.item() < before.item()
    assert not any(p.requires_grad for p in net.parameters())  # the network stays frozen


def test_dc_outer_step_trains_the_network_between_matching_steps(mods, net_and_data):
    dc = mods["dc"]
    net, real, ctx = net_and_data
    syn, labels = init_synthetic(real, 1, "real", ctx.generator)
    syn.requires_grad_(True)
    w0 = net.classifier.weight.detach().clone()
    cfg = dc.DCConfig(outer_loop=2, inner_loop=1, batch_real=8)
    seen = []
    loss = dc.dc_outer_step(net, syn, labels, torch.optim.SGD([syn], lr=0.1, momentum=0.5), real, 1, cfg, None,
                            ctx.generator, 16, on_match=lambda ol, l: seen.append(ol))
    assert seen == [0, 1] and torch.isfinite(loss)
    assert not torch.equal(w0, net.classifier.weight)


def test_batchnorm_network_runs_with_frozen_real_statistics(mods, make_ctx, synthetic):
    dc, dm = mods["dc"], mods["dm"]
    ctx = make_ctx(4)
    real = synthetic.train
    net = ctx.model("convnet-bn")
    freeze_bn_statistics(net, real, 4, ctx.generator)
    bn = net.features.norm1
    assert not bn.training
    assert torch.isfinite(bn.running_mean).all() and bn.running_mean.abs().sum() > 0
    for name, cls_cfg in (("dc", dc.DCConfig(iterations=1, outer_loop=2, batch_real=8, arch="convnet-bn")),
                          ("dm", dm.DMConfig(iterations=2, batch_real=8, arch="convnet-bn"))):
        method = dc.DC(cls_cfg) if name == "dc" else dm.DM(cls_cfg)
        syn = method.distill(real, 1, make_ctx(0))
        assert torch.isfinite(syn.images).all()


# ---------------------------------------------------------------- siamese augmentation


def test_siamese_per_class_same_transform_for_real_and_synthetic():
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(3, 3, 16, 16, generator=g)
    real = protos.repeat_interleave(5, dim=0)  # class-major: 5 copies of each class's prototype
    syn = protos.repeat_interleave(2, dim=0)
    ra, sa = siamese_per_class(DSA(STRATEGY_NATURAL), real, syn, 3, torch.Generator().manual_seed(1))
    for c in range(3):
        block_r, block_s = ra[c * 5:(c + 1) * 5], sa[c * 2:(c + 1) * 2]
        # every image of the class, real and synthetic, got the same transformation
        torch.testing.assert_close(block_r, block_r[:1].expand_as(block_r))
        torch.testing.assert_close(block_s, block_r[:2])
    # no augmentation: unchanged
    r2, s2 = siamese_per_class(None, real, syn, 3, g)
    assert r2 is real and s2 is syn


def test_make_augment():
    class Spec:
        dsa_strategy = STRATEGY_DIGITS

    assert make_augment("none", Spec()) is None
    assert make_augment("auto", Spec()).strategy == STRATEGY_DIGITS
    assert make_augment("crop", Spec()).ops == ("crop",)


# ------------------------------- config tables (docs/methods/dc.md, docs/methods/dm.md: "Published hyperparameters")


@pytest.fixture(scope="module")
def protocols():
    return {name: load_protocol(name) for name in ("paper", "quick", "smoke")}


PAPER_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@pytest.mark.parametrize("dataset", ["mnist", "fashionmnist", "svhn", "cifar10", "cifar100"])
@pytest.mark.parametrize("ipc", [1, 10, 20, 30, 40, 50])
def test_paper_config_dc_dsa(mods, protocols, dataset, ipc):
    dc = mods["dc"]
    digits = dataset in ("mnist", "svhn")
    for cls, init, strategy in ((dc.DC, "noise", "none"),
                                (dc.DSAMethod, "real", STRATEGY_DIGITS if digits else STRATEGY_NATURAL)):
        cfg = cls.config_for(dataset, ipc, protocols["paper"])
        assert (cfg.outer_loop, cfg.inner_loop) == PAPER_LOOPS[ipc]
        assert (cfg.iterations, cfg.lr_img, cfg.momentum_img, cfg.lr_net) == (1000, 0.1, 0.5, 0.01)
        assert (cfg.batch_real, cfg.batch_train, cfg.dis_metric) == (256, 256, "ours")
        assert cfg.init == init and cfg.dsa_strategy == strategy


def test_paper_config_dc_unpublished_ipc_rule(mods, protocols):
    dc = mods["dc"]
    assert dc.paper_loops(5) == (1, 1)
    assert dc.paper_loops(15) == (10, 50)
    assert dc.paper_loops(100) == (50, 10)


@pytest.mark.parametrize("dataset", ["mnist", "fashionmnist", "svhn", "cifar10", "cifar100"])
@pytest.mark.parametrize("ipc", [1, 10, 50])
def test_paper_config_dm(mods, protocols, dataset, ipc):
    cfg = mods["dm"].DM.config_for(dataset, ipc, protocols["paper"])
    assert (cfg.iterations, cfg.lr_img, cfg.momentum_img, cfg.batch_real, cfg.init) == (20_000, 1.0, 0.5, 256, "real")
    assert cfg.dsa_strategy == (STRATEGY_DIGITS if dataset in ("mnist", "svhn") else STRATEGY_NATURAL)


def test_paper_config_dm_large_ipc_cifar10(mods, protocols):
    dm = mods["dm"]
    assert dm.DM.config_for("cifar10", 100, protocols["paper"]).lr_img == 10.0
    assert dm.DM.config_for("cifar100", 100, protocols["paper"]).lr_img == 1.0


def test_quick_and_smoke_budgets_are_smaller_and_keep_published_rates(mods, protocols):
    dc, dm = mods["dc"], mods["dm"]
    for ipc in (1, 10):
        for cls in (dc.DC, dc.DSAMethod):
            q, p = cls.config_for("fashionmnist", ipc, protocols["quick"]), cls.config_for("fashionmnist", ipc, protocols["paper"])
            assert q.iterations * q.outer_loop < p.iterations * p.outer_loop
            assert q.outer_loop <= p.outer_loop and q.inner_loop <= p.inner_loop
            assert (q.lr_img, q.momentum_img, q.batch_real, q.dsa_strategy) == (p.lr_img, p.momentum_img, 256, p.dsa_strategy)
        q = dm.DM.config_for("fashionmnist", ipc, protocols["quick"])
        assert q.iterations < 20_000 and (q.lr_img, q.batch_real) == (1.0, 256)
    assert dm.DM.config_for("synthetic", 1, protocols["smoke"]).iterations <= 10
    with pytest.raises(ConfigError):
        dm.DMConfig(init="zeros")
    with pytest.raises(ConfigError):
        dc.DCConfig(dis_metric="l2")


# ---------------------------------------------------------------- failures and progress


@pytest.mark.parametrize("name", ["dc", "dsa", "dm"])
def test_non_finite_loss_raises_method_error(plugins, make_ctx, synthetic, smoke, name):
    cls = plugins.methods.get(name)
    cfg = cls.resolve_config("synthetic", 1, smoke, {"lr_img": 1e30})
    with pytest.raises(MethodError, match=rf"{name}.*(iteration|matching step) \d+.*lr_img"):
        cls(cfg).distill(synthetic.train, 1, make_ctx(0))


def test_loss_monitor_checks_every_loss_and_reports_progress():
    calls = []
    mon = LossMonitor("m", 3, lambda step, total, **kw: calls.append((step, total, kw)), "cpu")
    mon.update(1, torch.tensor(2.0))
    assert calls == [(1, 3, {"loss": 2.0})]
    with pytest.raises(MethodError, match="iteration 2 of 3"):
        mon.update(2, torch.tensor(float("nan")))
    with pytest.raises(MethodError, match="non-finite"):
        mon.check_images(torch.tensor([1.0, float("inf")]))


@pytest.mark.parametrize("name", ["dc", "dm"])
def test_progress_reports_iteration_and_loss(plugins, make_ctx, synthetic, smoke, name):
    cls = plugins.methods.get(name)
    cfg = cls.resolve_config("synthetic", 1, smoke)
    ctx = make_ctx(0)
    calls = []
    ctx.progress = lambda step, total, **kw: calls.append((step, total, kw))
    cls(cfg).distill(synthetic.train, 1, ctx)
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1]  # the bar starts at 0 and ends full
    assert all("loss" in kw and isinstance(kw["loss"], float) for step, _, kw in calls if step > 0)
    if name == "dc":
        assert all("iteration" in kw for step, _, kw in calls if step > 0)


def test_forward_chunk_rule():
    from benchsuite.ops.matching import forward_chunk

    assert forward_chunk("cpu", (1, 28, 28)) == 16 and forward_chunk("cpu", (3, 32, 32)) == 16
    assert forward_chunk("cpu", (3, 64, 64)) == 4
    assert forward_chunk("cuda", (3, 32, 32)) is None
