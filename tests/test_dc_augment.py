"""DC augmentation (protocol option ``augment = "dc"``): each op's effect, independence per image,
seeded draws, and the evaluator and protocol using it."""

from __future__ import annotations

import math

import pytest
import torch

from benchsuite.errors import ConfigError
from benchsuite.evaluate import evaluation_augment
from benchsuite.ops.dc_augment import NOISE_STD, DCAugment
from benchsuite.ops.dsa import DSA
from benchsuite.protocol import EvalRecipe


def images(n=64, c=1, size=28, seed=0):
    return torch.rand((n, c, size, size), generator=torch.Generator().manual_seed(seed))


def test_crop_is_an_integer_shift_of_at_most_four_pixels_filled_with_the_image_mean():
    x = images(32)
    out = DCAugment("crop")(x, torch.Generator().manual_seed(1))
    mean = x.mean(dim=(2, 3), keepdim=True)
    for i in range(len(x)):
        found = False
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                shifted = torch.full_like(x[i], 0) + mean[i]
                ys, xs = slice(max(dy, 0), 28 + min(dy, 0)), slice(max(dx, 0), 28 + min(dx, 0))
                src_y, src_x = slice(max(-dy, 0), 28 - max(dy, 0)), slice(max(-dx, 0), 28 - max(dx, 0))
                shifted[:, ys, xs] = x[i][:, src_y, src_x]
                if torch.allclose(out[i], shifted, atol=1e-6):
                    found = True
        assert found, f"image {i} is not a shift of at most 4 px"


def test_noise_has_the_published_scale_and_rotate_keeps_the_centre():
    x = images(16)
    noisy = DCAugment("noise")(x, torch.Generator().manual_seed(2))
    assert (noisy - x).std().item() == pytest.approx(NOISE_STD, rel=0.1)
    square = torch.zeros(1, 1, 29, 29)
    square[..., 10:19, 10:19] = 1.0
    rotated = DCAugment("rotate")(square.repeat(8, 1, 1, 1), torch.Generator().manual_seed(3))
    assert torch.allclose(rotated[:, :, 14, 14], torch.ones(8, 1), atol=1e-5)  # the centre pixel stays
    assert rotated.amin() >= -1e-6 and rotated.amax() <= 1 + 1e-6


def test_scale_changes_size_by_at_most_twenty_percent():
    disk = torch.zeros(1, 1, 32, 32)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disk[0, 0] = (((yy - 15.5) ** 2 + (xx - 15.5) ** 2) < 8 ** 2).float()
    out = DCAugment("scale")(disk.repeat(32, 1, 1, 1), torch.Generator().manual_seed(4))
    area = out.sum(dim=(1, 2, 3)) / disk.sum()
    assert area.min() >= 0.8 ** 2 - 0.05 and area.max() <= 1.2 ** 2 + 0.05
    assert area.max() - area.min() > 0.2  # factors are drawn per image


def test_each_image_gets_its_own_op_and_draws_are_seeded_without_touching_the_global_rng():
    x = images(64)
    aug = DCAugment("crop_scale_rotate")
    before = torch.random.get_rng_state()
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(6)))
    changed = (a - x).abs().flatten(1).amax(dim=1) > 1e-6
    assert changed.float().mean() > 0.8  # per image, not one transformation for the batch
    assert a.shape == x.shape and a.dtype == x.dtype
    assert DCAugment("none")(x, torch.Generator()) is x


def test_the_protocol_and_the_evaluator_offer_dc_augmentation():
    assert EvalRecipe(augment="dc").augment == "dc"
    with pytest.raises(ConfigError, match="eval.augment must be one of dsa, dc, none"):
        EvalRecipe(augment="dc-aug")
    with pytest.raises(ConfigError, match="unknown DC augmentation op"):
        DCAugment("crop_flip")
    assert repr(evaluation_augment("dc", "x", "convnet")) == "DCAugment('crop_scale_rotate')"
    assert repr(evaluation_augment("dc", "x", "convnet-bn")) == "DCAugment('crop_noise')"
    assert isinstance(evaluation_augment("dsa", "color_crop", "convnet"), DSA)
    assert evaluation_augment("none", "x", "convnet") is None
    assert not math.isnan(EvalRecipe(augment="dc").lr)


def test_an_evaluation_with_dc_augmentation_trains_and_differs_from_none(plugins, synthetic, smoke):
    from benchsuite.api import SyntheticSet
    from benchsuite.evaluate import evaluate_synset
    from benchsuite.modeling import model_factory

    syn = SyntheticSet(synthetic.train.images[:20], synthetic.train.labels[:20])
    results = {}
    for kind in ("dc", "none"):
        recipe = EvalRecipe(epochs=5, models=1, augment=kind)
        results[kind] = evaluate_synset(syn, synthetic.test, arch="convnet-w32",
                                        make_model=model_factory(plugins.archs, synthetic.spec), recipe=recipe,
                                        device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                                        dsa_strategy=synthetic.spec.dsa_strategy)
    assert all(0 <= r.accuracies[0] <= 100 for r in results.values())
    assert results["dc"].final_train_loss != results["none"].final_train_loss
