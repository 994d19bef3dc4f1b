"""The generative prior: its layer structure (F_k, push, render), modulation, training and cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchsuite.api import LabeledData
from benchsuite.errors import ConfigError, MethodError
from benchsuite.plugins import bundled_module

priors = bundled_module("glad.priors")  # the GLaD family's own code, in plugins/glad/
ModulatedConv, PriorConfig, PriorStore = priors.ModulatedConv, priors.PriorConfig, priors.PriorStore
StyleGenerator, synthesis_sizes, train_prior = priors.StyleGenerator, priors.synthesis_sizes, priors.train_prior

TINY = PriorConfig(z_dim=8, w_dim=8, mapping_layers=2, channels=8, steps=3, batch=8, ema_half_life=2)


def _gen(shape=(1, 28, 28), seed=0):
    return StyleGenerator(TINY, 10, shape, torch.Generator().manual_seed(seed)).eval()


def _ws(G, b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn((b, TINY.z_dim), generator=g)
    return G.broadcast(G.map(z, torch.arange(b) % 10)) + 0.1 * torch.randn((b, G.num_ws, TINY.w_dim), generator=g)


def test_synthesis_sizes_run_from_4_to_the_image_side():
    assert synthesis_sizes(32) == [4, 8, 16, 32]
    assert synthesis_sizes(28) == [4, 7, 14, 28]
    assert synthesis_sizes(16) == [4, 8, 16]
    with pytest.raises(ConfigError):
        synthesis_sizes(6)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_pushing_f_one_layer_forward_renders_the_same_images(shape):
    G = _gen(shape)
    ws = _ws(G)
    with torch.no_grad():
        for k in range(G.num_layers - 1):
            f_k = G.features(k, ws)
            pushed = G.push(k, f_k, ws)
            assert torch.allclose(pushed, G.features(k + 1, ws), atol=1e-6)
            assert torch.allclose(G.render(k + 1, pushed, ws), G.render(k, f_k, ws), atol=1e-5)
        images = G.render(0, G.features(0, ws), ws)
    assert images.shape == (4, *shape)
    assert G.num_ws == G.num_layers + 1 == len(synthesis_sizes(shape[1])) + 1


def test_each_layer_uses_its_own_style_vector():
    G = _gen()
    ws = _ws(G)
    with torch.no_grad():
        base = G.render(0, G.features(0, ws), ws)
        for i in range(G.num_ws):
            changed = ws.clone()
            changed[:, i] += 1.0
            assert not torch.allclose(G.render(0, G.features(0, changed), changed), base)


def test_modulated_conv_equals_per_sample_weight_modulation():
    g = torch.Generator().manual_seed(0)
    conv = ModulatedConv(5, 6, 8, 3, True, g)
    x = torch.randn((3, 5, 7, 7), generator=g)
    w = torch.randn((3, 8), generator=g)
    out = conv(x, w)
    s = conv.affine(w)
    for b in range(3):
        weight = conv.weight * conv.scale * s[b][None, :, None, None]
        weight = weight * torch.rsqrt(weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        ref = F.conv2d(x[b:b + 1], weight, conv.bias, padding=1)
        assert torch.allclose(out[b:b + 1], ref, atol=1e-5)


def _real(n=64, shape=(1, 16, 16)):
    g = torch.Generator().manual_seed(3)
    return LabeledData(torch.randn((n, *shape), generator=g), torch.arange(n) % 10, 10)


def test_training_is_seeded_finite_and_leaves_the_global_rng_alone():
    real = _real()
    state = torch.get_rng_state()
    a = train_prior(real, TINY, torch.Generator().manual_seed(5))
    b = train_prior(real, TINY, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    z = torch.randn((4, TINY.z_dim), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        xa, xb = a(z, torch.arange(4)), b(z, torch.arange(4))
    assert torch.isfinite(xa).all() and torch.equal(xa, xb)


def test_store_trains_once_then_loads_and_refuses_bad_files(tmp_path, monkeypatch):
    real = _real()
    calls = []
    original = priors.train_prior

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(priors, "train_prior", counting)
    store = PriorStore(tmp_path, "synthetic", real, TINY, seed=0)
    first = store.ensure()
    again = PriorStore(tmp_path, "synthetic", real, TINY, seed=0).ensure()
    assert len(calls) == 1
    assert (store.dir / "samples.png").exists()
    for p, q in zip(first.generator.parameters(), again.generator.parameters()):
        assert torch.equal(p, q)
    assert again.describe()["parameters"] == sum(p.numel() for p in again.generator.parameters())
    # another seed or config is another key
    assert PriorStore(tmp_path, "synthetic", real, TINY, seed=1).key != store.key
    # a prior for another image shape is refused with a message
    other = PriorStore(tmp_path, "synthetic", _real(shape=(1, 32, 32)), TINY, seed=0)
    with pytest.raises(MethodError, match="makes 10 classes"):
        other.load(store.path)
    store.path.write_bytes(b"not a checkpoint")
    with pytest.raises(MethodError, match="not a generative prior written by benchsuite"):
        store.load()


def test_mode_seeking_loss_grows_when_two_noises_give_the_same_image():
    za, zb = torch.zeros(4, 8), torch.ones(4, 8)
    a = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    same = priors.mode_seeking_loss(a, a.clone(), za, zb)
    apart = priors.mode_seeking_loss(a, a + 1.0, za, zb)
    assert same > 1e4 and apart == pytest.approx(1.0, rel=1e-3)  # |Δimage| / |Δz| = 1


def test_bad_prior_configs_are_config_errors():
    with pytest.raises(ConfigError):
        PriorConfig(channels=0)
    with pytest.raises(ConfigError):
        PriorConfig(lr=0.0)
    with pytest.raises(ConfigError, match="mode_seeking"):
        PriorConfig(mode_seeking=-1.0)


# ------------------------------------------------------------------ latents (GLaD / H-PD)

LatentImages, LatentSet = bundled_module("glad.latents").LatentImages, bundled_module("glad.latents").LatentSet


def _latents(layer=1, n=7, chunk=3, transform=None):
    G = _gen().requires_grad_(False)
    labels = torch.arange(n) % 10
    return LatentSet.from_noise(G, labels, layer, torch.Generator().manual_seed(2), chunk=chunk, transform=transform)


def _mixing(images):
    """A fixed linear map over the flattened image (the shape of ZCA whitening)."""
    m = torch.randn((784, 784), generator=torch.Generator().manual_seed(9)) / 28
    return (images.flatten(1) @ m).view_as(images)


@pytest.mark.parametrize("transform", [None, _mixing], ids=["plain", "whitened"])
def test_chunked_two_stage_backward_gives_the_direct_latent_gradients(transform):
    lat = _latents(chunk=3, transform=transform)  # 7 images: chunks of 3, 3, 1
    target = torch.randn((7, 1, 28, 28), generator=torch.Generator().manual_seed(4))
    # direct: one graph from latents to loss
    rendered = lat.G.render(lat.layer, lat.f, lat.ws)
    direct = (((rendered if transform is None else transform(rendered)) - target) ** 3).sum()
    g_ws, g_f = torch.autograd.grad(direct, [lat.ws, lat.f])
    # two-stage: gradient on the images, then through the generator chunk by chunk
    images = lat.render().requires_grad_(True)
    ((images - target) ** 3).sum().backward()
    lat.backward(images.grad)
    assert torch.allclose(lat.ws.grad, g_ws, atol=1e-5, rtol=1e-4)
    assert torch.allclose(lat.f.grad, g_f, atol=1e-5, rtol=1e-4)


def test_latent_images_step_moves_the_latents_and_rerenders():
    lat = _latents()
    opt = LatentImages(lat, lr_w=1e-3, lr_f=1e-3)  # small: one descent step
    before = opt.images.detach().clone()
    ws0, f0 = lat.ws.detach().clone(), lat.f.detach().clone()
    opt.zero_grad()
    opt.images.square().sum().backward()
    opt.step()
    assert not torch.equal(lat.ws, ws0) and not torch.equal(lat.f, f0)
    assert torch.allclose(opt.images, lat.render()) and not torch.allclose(opt.images, before)
    assert opt.images.square().sum() < before.square().sum()


def test_push_moves_one_layer_deeper_without_changing_the_images():
    lat = _latents(layer=0)
    images = lat.render()
    lat.push()
    assert lat.layer == 1 and lat.f.shape[-1] == lat.G.sizes[1] and lat.f.requires_grad
    assert torch.allclose(lat.render(), images, atol=1e-5)
    assert lat.storage_floats() == lat.ws.numel() + lat.f.numel()
