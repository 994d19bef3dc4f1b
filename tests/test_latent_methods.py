"""GLaD and H-PD: latent storage, H-PD's snapshot selection (cloned, not referenced), the feature
distance, and bad settings."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchsuite.api import LabeledData
from benchsuite.errors import ConfigError
from benchsuite.plugins import bundled_module

_latent = bundled_module("glad.latent_distill")  # the GLaD family's own code, in plugins/glad/
FeatureDistance, block_features, resolve_prior = _latent.FeatureDistance, _latent.block_features, _latent.resolve_prior
distill_glad, distill_hpd = _latent.distill_glad, _latent.distill_hpd


def _cfg(plugins, smoke, name, **changes):
    cls = plugins.methods.get(name)
    return cls, dataclasses.replace(cls.resolve_config("synthetic", 1, smoke), **changes)


def test_hpd_keeps_the_earlier_snapshot_when_it_had_the_smaller_distance(plugins, synthetic, smoke, make_ctx):
    cls, cfg = _cfg(plugins, smoke, "hpd-dm", iterations=3, lr_f=1.0, lr_w=0.1)
    ctx = make_ctx(0)
    prior = resolve_prior(cfg, synthetic.train, ctx)
    last = prior.generator.num_layers - 1
    cfg = dataclasses.replace(cfg, layer=last)  # one layer: the choice is the final set
    seen = []
    distances = iter([5.0, 1.0, 3.0])

    def distance(images):
        seen.append(images.clone())
        return next(distances)

    latents, info, _ = distill_hpd("hpd-dm", cfg, synthetic.train, 1, ctx, prior, distance)
    assert info["selected"] == [{"layer": last, "iteration": 2, "distance": 1.0}]
    final = latents.render()
    assert torch.allclose(final, seen[1], atol=1e-5)
    assert not torch.allclose(final, seen[2], atol=1e-5)  # a kept reference would be the last state


def test_hpd_walks_every_layer_from_the_start_and_pushes_between(plugins, synthetic, smoke, make_ctx):
    cls, cfg = _cfg(plugins, smoke, "hpd-dc", iterations=1, select="last")
    ctx = make_ctx(0)
    prior = resolve_prior(cfg, synthetic.train, ctx)
    latents, info, _ = distill_hpd("hpd-dc", cfg, synthetic.train, 1, ctx, prior)
    assert info["layers"] == list(range(0, prior.generator.num_layers))
    assert latents.layer == prior.generator.num_layers - 1
    assert latents.f.shape[-1] == prior.generator.sizes[-1]


@pytest.mark.parametrize("name", ["glad-dc", "glad-dm"])
def test_glad_storage_counts_the_latents_and_the_record_names_the_prior(plugins, synthetic, smoke, make_ctx, name):
    cls, cfg = _cfg(plugins, smoke, name)
    syn = cls(cfg).distill(synthetic.train, 2, make_ctx(0))
    info = syn.extra["glad"]
    ws, f = info["ws_shape"], info["f_shape"]
    assert ws[0] == f[0] == 20 and info["layer"] == cfg.layer
    floats = ws[0] * ws[1] * ws[2] + f[0] * f[1] * f[2] * f[3]
    assert syn.storage_bytes == 4 * floats == 4 * info["latent_floats"]
    prior = syn.extra["prior"]
    assert prior["parameters"] > 0 and prior["bytes"] > 0 and prior["config"]["steps"] == cfg.prior_steps


def test_feature_distance_is_zero_for_the_real_class_means_and_positive_for_noise(plugins, synthetic, smoke, make_ctx):
    cls, cfg = _cfg(plugins, smoke, "hpd-dm")
    train = synthetic.train
    per_class = min(train.class_counts())
    idx = torch.cat([ix[:per_class] for ix in train.class_indices()])
    real = LabeledData(train.images[idx], train.labels[idx], train.num_classes, train.spec)
    cfg = dataclasses.replace(cfg, feature_real_per_class=per_class, feature_nets=2)
    dist = FeatureDistance(cfg, real, make_ctx(0), chunk=16)
    assert dist(real.images) == pytest.approx(0.0, abs=1e-6)
    assert dist(torch.randn_like(real.images)) > 1.0


def test_block_features_refuse_non_convnets(make_ctx):
    mlp = make_ctx(0).model("mlp")
    with pytest.raises(ConfigError, match="ConvNet"):
        block_features(mlp, torch.zeros(1, 3, 16, 16))


def test_bad_latent_settings(plugins, smoke, synthetic, make_ctx):
    cls = plugins.methods.get("glad-dc")
    for bad in ({"objective": "gm"}, {"select": "best"}, {"render_chunk": 0}, {"dis_metric": "l2"},
                {"unroll": "tesla"}, {"syn_steps": 0}):
        with pytest.raises(ConfigError):
            cls.resolve_config("synthetic", 1, smoke, bad)
    cfg = cls.resolve_config("synthetic", 1, smoke, {"layer": 9})
    with pytest.raises(ConfigError, match="past the prior"):
        cls(cfg).distill(synthetic.train, 1, make_ctx(0))
    cfg = cls.resolve_config("synthetic", 1, smoke, {"objective": "dm"})
    with pytest.raises(ConfigError, match="uses the dc objective"):
        cls(cfg).distill(synthetic.train, 1, make_ctx(0))
    cfg = cls.resolve_config("synthetic", 1, smoke, {"prior_path": "/nonexistent/prior.pt"})
    with pytest.raises(ConfigError, match="does not exist"):
        cls(cfg).distill(synthetic.train, 1, make_ctx(0))


@pytest.mark.parametrize("name", ["glad-mtt", "hpd-mtt"])
def test_mtt_sets_record_the_whitening_the_learned_step_size_and_the_experts(plugins, synthetic, smoke, make_ctx, name):
    cls, cfg = _cfg(plugins, smoke, name)
    assert cfg.zca  # the smoke budget whitens, so the transform path is exercised
    syn = cls(cfg).distill(synthetic.train, 1, make_ctx(0))
    info = syn.extra[name.split("-")[0]]
    assert syn.transform == {"name": "zca", "eps": cfg.zca_eps}
    assert syn.learned_lr == info["learned_lr"] > 0
    assert info["experts"]["count"] == cfg.num_experts
    assert syn.storage_bytes == 4 * info["latent_floats"]
    # the same experts as pixel MTT under the same settings: one cache entry serves both
    mtt = plugins.methods.get("mtt")
    pix = mtt(mtt.resolve_config("synthetic", 1, smoke)).distill(synthetic.train, 1, make_ctx(0))
    assert pix.extra["experts"]["key"] == info["experts"]["key"]


def test_glad_mtt_renders_through_the_zca_and_moves_the_latents(plugins, synthetic, smoke, make_ctx):
    cls, cfg = _cfg(plugins, smoke, "glad-mtt", iterations=3)
    ctx = make_ctx(0)
    prior = resolve_prior(cfg, synthetic.train, ctx)
    latents, info, objective = distill_glad("glad-mtt", cfg, synthetic.train, 1, ctx, prior)
    with torch.no_grad():
        raw = prior.generator.render(latents.layer, latents.f, latents.ws)
    assert torch.allclose(latents.render(), objective.zca.apply(raw), atol=1e-5)
    start, _, _ = distill_glad("glad-mtt", dataclasses.replace(cfg, iterations=0), synthetic.train, 1, make_ctx(0), prior)
    assert not torch.allclose(latents.f, start.f)
    assert not torch.allclose(latents.ws, start.ws)
