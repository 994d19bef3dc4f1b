"""HMN: the container's budget, its gradients, pruning, AUM, and the method end to end (smoke)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from benchsuite.errors import ConfigError
from benchsuite.ops.matching import gradient_distance
from benchsuite.plugins import bundled_module

_memory = bundled_module("hmn.memory")  # the HMN family's own code, in plugins/hmn/
HierarchicalMemory, MemoryLayout, margins = _memory.HierarchicalMemory, _memory.MemoryLayout, _memory.margins
area_under_margin, budget_floats = _memory.area_under_margin, _memory.budget_floats
double_end_prune, instances_per_class = _memory.double_end_prune, _memory.instances_per_class

SMALL = MemoryLayout(4, 2, 1, 4, 1, 12)
LARGE = MemoryLayout(8, 4, 3, 8, 3, 32)


def _container(per_class=5, shape=(3, 16, 16), layout=SMALL, seed=0):
    return HierarchicalMemory(layout, 10, per_class, shape, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layout,shape,ipc", [
    (SMALL, (1, 28, 28), 1), (SMALL, (3, 32, 32), 10), (SMALL, (3, 16, 16), 2),
    (LARGE, (1, 28, 28), 10), (LARGE, (3, 32, 32), 1), (LARGE, (3, 32, 32), 50)])
def test_instances_per_class_is_the_most_that_fits_the_budget(layout, shape, ipc):
    budget = budget_floats(ipc, 10, shape)
    g = instances_per_class(layout, 10, shape, budget)
    assert _container(g, shape, layout).storage_floats() <= budget
    assert _container(g + 1, shape, layout).storage_floats() > budget


def test_every_parameter_counts_toward_storage():
    h = _container(per_class=5)
    s = 16 // 4
    L = SMALL
    decoder = sum(p.numel() for p in h.decoder.parameters())
    expected = (L.dataset_channels * s * s + 10 * L.class_channels * s * s + 10 * 5 * L.instance_channels * s * s
                + 10 * (L.extractor_channels * L.dataset_channels * L.extractor_kernel ** 2 + L.extractor_channels)
                + decoder)
    assert h.storage_floats() == expected
    assert h.shared_floats() == expected - 10 * 5 * L.instance_channels * s * s


def test_a_budget_too_small_for_the_shared_parts_is_a_config_error():
    with pytest.raises(ConfigError, match="no room"):
        instances_per_class(LARGE, 10, (1, 28, 28), budget_floats(1, 10, (1, 28, 28)))


def test_non_square_or_odd_sized_images_are_refused():
    with pytest.raises(ConfigError, match="multiple of 4"):
        _container(shape=(3, 30, 30))


def test_generation_is_deterministic_for_a_seed_and_shaped_like_the_dataset():
    a, la = _container(seed=3).generate()
    b, lb = _container(seed=3).generate()
    c, _ = _container(seed=4).generate()
    assert a.shape == (50, 3, 16, 16) and torch.equal(la, torch.arange(10).repeat_interleave(5))
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)


def test_a_class_step_reaches_every_shared_part_and_only_that_class_memories():
    h = _container(per_class=4)
    pick = torch.tensor([0, 2])
    h.generate_class(3, pick).square().sum().backward()
    assert h.dataset_memory.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in h.decoder.parameters())
    for name in ("class_memory", "extractor_weight", "extractor_bias"):
        g = getattr(h, name).grad
        assert g[3].abs().sum() > 0, name
        assert g[torch.arange(10) != 3].abs().sum() == 0, name
    gi = h.instance_memory.grad
    assert gi[3, pick].abs().sum(dim=(1, 2, 3)).min() > 0
    mask = torch.ones(10, 4, dtype=torch.bool)
    mask[3, pick] = False
    assert gi[mask].abs().sum() == 0


def test_class_features_are_each_class_own_convolution_of_the_dataset_memory():
    h = _container()
    feats = h.class_features(torch.tensor([2, 7]))
    for row, c in zip(feats, (2, 7)):
        ref = F.conv2d(h.dataset_memory[None], h.extractor_weight[c], h.extractor_bias[c],
                       padding=SMALL.extractor_kernel // 2)[0]
        assert torch.allclose(row, ref, atol=1e-6)


def test_keep_instances_deletes_exactly_the_others_and_leaves_shared_parts_unchanged():
    h = _container(per_class=5)
    before = {k: v.clone() for k, v in h.state_dict().items()}
    images_before, _ = h.generate()
    keep = torch.stack([torch.tensor([0, 2, 4]) if c % 2 else torch.tensor([1, 2, 3]) for c in range(10)])
    h.keep_instances(keep)
    after = h.state_dict()
    for k, v in before.items():
        if k != "instance_memory":
            assert torch.equal(after[k], v), k
    assert h.per_class == 3
    for c in range(10):
        assert torch.equal(after["instance_memory"][c], before["instance_memory"][c, keep[c]])
    # the kept images are the very images they were before pruning
    images_after, _ = h.generate()
    with torch.no_grad():
        expected = torch.cat([images_before[c * 5 + keep[c]] for c in range(10)])
    assert torch.allclose(images_after.detach(), expected.detach(), atol=1e-6)


def test_double_end_pruning_drops_the_hardest_share_and_the_easiest_rest():
    aum = torch.tensor([0.5, -2.0, 3.0, 1.0, -1.0, 2.0, 0.0, 4.0])  # ascending: 1,4,6,0,3,5,2,7
    # drop 4 with beta 0.5: the 2 lowest (1, 4) and the 2 highest (2, 7)
    assert double_end_prune(aum, 4, 0.5).tolist() == [0, 3, 5, 6]
    assert double_end_prune(aum, 3, 0.0).tolist() == [0, 1, 3, 4, 6]       # easiest only
    assert double_end_prune(aum, 3, 1.0).tolist() == [0, 2, 3, 5, 7]       # hardest only
    assert double_end_prune(aum, 0, 0.5).tolist() == list(range(8))
    with pytest.raises(ValueError):
        double_end_prune(aum, 8, 0.5)


def test_margin_and_area_under_margin():
    logits = torch.tensor([[2.0, 1.0, -1.0], [0.0, 3.0, 1.0]])
    m = margins(logits, torch.tensor([0, 2]))
    assert m.tolist() == [1.0, -2.0]
    assert area_under_margin(torch.stack([m, m + 2])).tolist() == [2.0, -1.0]


def test_l1_gradient_distance():
    a, b = [torch.tensor([[1.0, -2.0]]), torch.tensor([3.0])], [torch.tensor([[0.0, 1.0]]), torch.tensor([1.0])]
    assert float(gradient_distance(a, b, "l1")) == 1.0 + 3.0 + 2.0


def _plugin_module(plugins):
    return sys.modules[plugins.methods.get("hmn").__module__]


def test_cutmix_mixes_a_box_and_reports_the_kept_area(plugins):
    mod = _plugin_module(plugins)
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 8, 8).clone()
    y = torch.arange(4)
    mixed, ya, yb, lam = mod.cutmix(x, y, torch.Generator().manual_seed(1))
    for i in range(4):
        own = (mixed[i] == x[i, 0, 0, 0]).float().mean().item()
        assert own == pytest.approx(lam) or yb[i] == ya[i]
    assert torch.equal(ya, y) and sorted(yb.tolist()) == [0, 1, 2, 3]


def test_distill_prunes_the_over_budget_instances_by_aum(plugins, synthetic, smoke, make_ctx, monkeypatch):
    """With AUM replaced by a known ramp, the kept instance memories are exactly the ones the
    double-end rule names, taken from the condensed container; the shared parts are untouched."""
    mod = _plugin_module(plugins)
    cls = plugins.methods.get("hmn")
    seen = {}
    original_keep = HierarchicalMemory.keep_instances

    def spy_keep(self, keep):
        seen["before"] = {k: v.detach().clone() for k, v in self.state_dict().items()}
        seen["keep"] = keep.clone()
        original_keep(self, keep)
        seen["after"] = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def ramp_aum(net, images, labels, epochs, augment, generator, chunk):
        return torch.arange(images.shape[0], dtype=torch.float32)

    monkeypatch.setattr(HierarchicalMemory, "keep_instances", spy_keep)
    monkeypatch.setattr(mod, "aum_scores", ramp_aum)
    ipc = 1
    cfg = cls.resolve_config("synthetic", ipc, smoke, {"beta": 0.5})
    syn = cls(cfg).distill(synthetic.train, ipc, make_ctx(0))
    info = syn.extra["hmn"]
    shape = synthetic.spec.shape
    budget = budget_floats(ipc, 10, shape)
    assert info["condensed_per_class"] == instances_per_class(cfg.layout(), 10, shape, int(budget * 1.1))
    assert info["generated_per_class"] == instances_per_class(cfg.layout(), 10, shape, budget)
    drop = info["pruned_per_class"]
    assert drop == info["condensed_per_class"] - info["generated_per_class"] > 0
    g = info["condensed_per_class"]
    hard = int(0.5 * drop)
    expected = torch.arange(hard, g - (drop - hard))  # ramp: the lowest and the highest indices go
    assert all(torch.equal(row, expected) for row in seen["keep"])
    for k, v in seen["before"].items():
        if k != "instance_memory":
            assert torch.equal(seen["after"][k], v), k
    assert torch.equal(seen["after"]["instance_memory"], seen["before"]["instance_memory"][:, expected])
    assert syn.images.shape[0] == 10 * info["generated_per_class"]
    assert syn.storage_bytes == 4 * info["storage_floats"] <= 4 * budget


def test_the_quick_layouts_are_documented_counts(plugins):
    mod = _plugin_module(plugins)
    fm, cifar = (1, 28, 28), (3, 32, 32)
    assert instances_per_class(mod.layout_for(1), 10, fm, budget_floats(1, 10, fm)) == 8
    assert instances_per_class(mod.layout_for(10), 10, fm, budget_floats(10, 10, fm)) == 38
    assert instances_per_class(mod.layout_for(1), 10, cifar, budget_floats(1, 10, cifar)) == 41
    assert instances_per_class(mod.layout_for(10), 10, cifar, budget_floats(10, 10, cifar)) == 147


def test_bad_settings_are_config_errors(plugins, smoke):
    cls = plugins.methods.get("hmn")
    for bad in ({"beta": 1.5}, {"metric": "cos"}, {"over_budget": -0.1}, {"extractor_kernel": 2},
                {"init": "zeros"}, {"over_budget": 0.1, "aum_epochs": 0}):
        with pytest.raises(ConfigError):
            cls.resolve_config("synthetic", 1, smoke, bad)
