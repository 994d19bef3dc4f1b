"""Tests of benchsuite.ops.dsa (differentiable siamese augmentation)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchsuite.errors import ConfigError
from benchsuite.ops.dsa import (
    DSA,
    STRATEGY_DIGITS,
    STRATEGY_NATURAL,
    VALID_OPS,
    DSAParams,
    Draw,
    strategy_for,
)

OPS = list(VALID_OPS)
SHAPES = [(6, 1, 28, 28), (6, 3, 32, 32)]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(shape, seed: int = 123) -> torch.Tensor:
    return torch.rand(shape, generator=gen(seed))


def same_image_batch(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 7) -> torch.Tensor:
    """n copies of one non-symmetric image."""
    return images((1, c, h, w), seed).expand(n, c, h, w).contiguous()


def crop_u(shift: int, s: int) -> float:
    """The uniform that DSA maps to an integer shift in [-s, s]."""
    return (shift + s + 0.5) / (2 * s + 1)


def shifted(x: torch.Tensor, tx: int, ty: int) -> torch.Tensor:
    """Reference: content moved right by tx, down by ty, zero fill."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(ty, 0):h + min(ty, 0), max(tx, 0):w + min(tx, 0)] = \
        x[..., max(-ty, 0):h + min(-ty, 0), max(-tx, 0):w + min(-tx, 0)]
    return out


# ---------------------------------------------------------------- construction


def test_defaults_are_published_values():
    p = DSAParams()
    assert (p.brightness, p.saturation, p.contrast) == (1.0, 2.0, 0.5)
    assert (p.crop_pad_ratio, p.cutout_ratio, p.flip_prob) == (0.125, 0.5, 0.5)
    assert (p.scale_ratio, p.rotate_degrees) == (1.2, 15.0)
    assert DSA().ops == ("color", "crop", "cutout", "flip", "scale", "rotate")


def test_unknown_op_raises_config_error_listing_valid_ops():
    with pytest.raises(ConfigError) as e:
        DSA("color_crop_blur")
    msg = str(e.value)
    assert "blur" in msg
    for op in VALID_OPS:
        assert op in msg


def test_bad_params_raise_config_error():
    with pytest.raises(ConfigError):
        DSAParams(flip_prob=1.5)
    with pytest.raises(ConfigError):
        DSAParams(scale_ratio=0.5)


@pytest.mark.parametrize("strategy", ["none", "", "None"])
def test_identity_strategy(strategy):
    x = images((4, 3, 32, 32))
    dsa = DSA(strategy)
    assert dsa.ops == ()
    assert torch.equal(dsa(x, gen()), x)
    a, b = dsa.siamese(x, x[:2], generator=gen())
    assert torch.equal(a, x) and torch.equal(b, x[:2])


def test_digit_strategy_never_flips():
    assert strategy_for(True) == STRATEGY_DIGITS == "color_crop_cutout_scale_rotate"
    assert strategy_for(False) == STRATEGY_NATURAL
    dsa = DSA(STRATEGY_DIGITS)
    g = gen(3)
    seen = {dsa.draw(4, g).op for _ in range(200)} | {dsa.draw(4, g, shared=True).op
                                                     for _ in range(200)}
    assert seen == {"color", "crop", "cutout", "scale", "rotate"}


def test_for_dataset_uses_spec_strategy():
    class Spec:
        dsa_strategy = STRATEGY_DIGITS

    assert DSA.for_dataset(Spec()).ops == ("color", "crop", "cutout", "scale", "rotate")


# ------------------------------------------------------------------ randomness


def test_same_seed_same_output():
    x = images((8, 3, 32, 32))
    dsa = DSA()
    for seed in range(12):  # covers every op with high probability
        assert torch.equal(dsa(x, gen(seed)), dsa(x, gen(seed)))
        a = dsa.siamese(x, generator=gen(seed))[0]
        b = dsa.siamese(x, generator=gen(seed))[0]
        assert torch.equal(a, b)


def test_draws_come_from_generator_and_are_cpu():
    dsa = DSA()
    d1, d2 = dsa.draw(5, gen(1)), dsa.draw(5, gen(1))
    assert d1.op == d2.op and d1.values.keys() == d2.values.keys()
    for k in d1.values:
        assert torch.equal(d1.values[k], d2.values[k])
        assert d1.values[k].device.type == "cpu"
        assert d1.values[k].shape[0] == 5
    shared = dsa.draw(5, gen(1), shared=True)
    assert all(v.shape[0] == 1 for v in shared.values.values())


def test_global_rng_untouched():
    x = images((4, 3, 32, 32))
    dsa = DSA()
    state = torch.get_rng_state()
    for seed in range(6):
        g = gen(seed)
        dsa(x, g)
        dsa.siamese(x, x[:2], generator=g)
        dsa.draw(4, g)
    assert torch.equal(torch.get_rng_state(), state)


def test_rejects_non_cpu_or_missing_generator():
    with pytest.raises(TypeError):
        DSA().draw(2, 0)  # type: ignore[arg-type]


# ------------------------------------------------------------------- siamese


@pytest.mark.parametrize("op", OPS)
def test_siamese_identical_transformation(op):
    dsa = DSA(op)
    x = images((5, 3, 32, 32))
    for seed in range(3):
        a, b = dsa.siamese(x, x.clone(), generator=gen(seed))
        assert torch.equal(a, b)


@pytest.mark.parametrize("op", OPS)
def test_siamese_shares_parameters_across_samples_and_batch_sizes(op):
    dsa = DSA(op)
    real = same_image_batch(7)
    syn = same_image_batch(2)
    for seed in range(4):
        a, b = dsa.siamese(real, syn, generator=gen(seed))
        assert a.shape == real.shape and b.shape == syn.shape
        ref = a[0]
        for y in (*a, *b):
            assert torch.allclose(y, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("op", OPS)
def test_independent_draws_differ_across_samples(op):
    x = same_image_batch(16)
    y = DSA(op)(x, gen(5))
    distinct = {tuple(t.flatten().tolist()) for t in y}
    assert len(distinct) >= 2


# -------------------------------------------------------------- shapes, grads


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", OPS + [STRATEGY_NATURAL])
def test_shape_dtype_contiguity_preserved(op, shape):
    x = images(shape)
    y = DSA(op)(x, gen(2))
    assert y.shape == x.shape and y.dtype == torch.float32 and y.is_contiguous()


@pytest.mark.parametrize("op", OPS)
def test_channels_last_input(op):
    x = images((4, 3, 32, 32))
    xc = x.to(memory_format=torch.channels_last)
    y = DSA(op)(xc, gen(1))
    assert y.is_contiguous()
    assert torch.allclose(y, DSA(op)(x, gen(1)), atol=1e-6)
    y.view(4, -1)  # the official code breaks here


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", OPS)
def test_gradients_flow_to_input(op, shape):
    x = images(shape).requires_grad_(True)
    before = x.detach().clone()
    # per-sample and shared draws
    for y in (DSA(op)(x, gen(0)), DSA(op).siamese(x, generator=gen(4))[0]):
        x.grad = None
        (y * torch.linspace(0.5, 1.5, y.numel()).view_as(y)).sum().backward()
        assert x.grad is not None
        assert torch.isfinite(x.grad).all()
        assert x.grad.abs().sum() > 0
    assert torch.equal(x.detach(), before)  # no in-place writes into the input


def test_apply_rejects_mismatched_draw():
    dsa = DSA("crop")
    d = dsa.draw(3, gen())
    with pytest.raises(ValueError):
        dsa.apply(images((5, 3, 32, 32)), d)
    with pytest.raises(ValueError):
        dsa.apply(images((3, 32, 32)), d)


def test_float64_and_other_sizes():
    x = images((3, 2, 20, 17)).double()
    for op in OPS:
        y = DSA(op)(x, gen(1))
        assert y.shape == x.shape and y.dtype == torch.float64


# ------------------------------------------------------------- op semantics


@pytest.mark.parametrize("shape", SHAPES)
def test_crop_shifts_by_integers_with_zero_fill(shape):
    x = images(shape) + 1.0  # strictly positive, so zero fill is visible
    h = shape[-1]
    s = int(0.125 * h + 0.5)
    assert s == 4
    dsa = DSA("crop")
    shifts = [(2, -1), (-4, 4), (0, 0), (4, -3), (-1, 2), (3, 3)]
    u_x = torch.tensor([crop_u(tx, s) for tx, _ in shifts])
    u_y = torch.tensor([crop_u(ty, s) for _, ty in shifts])
    y = dsa.apply(x, Draw("crop", {"u_x": u_x, "u_y": u_y}))
    for i, (tx, ty) in enumerate(shifts):
        assert torch.equal(y[i], shifted(x[i], tx, ty)), (tx, ty)
    # a shared draw applies one shift to all samples
    y = dsa.apply(x, Draw("crop", {"u_x": u_x[:1], "u_y": u_y[:1]}))
    assert torch.equal(y, shifted(x, 2, -1))


def test_crop_shift_range_is_symmetric():
    x = same_image_batch(1, 1, 32, 32) + 1.0
    dsa = DSA("crop")
    seen = set()
    g = gen(9)
    for _ in range(60):
        d = dsa.draw(8, g)
        y = dsa.apply(x.expand(8, 1, 32, 32), d)
        for t in y:
            cols = (t[0] != 0).any(0).nonzero().flatten()
            seen.add(int(cols[0]) if cols[0] > 0 else -(31 - int(cols[-1])))
    assert seen == set(range(-4, 5))


def test_cutout_zeroes_one_square():
    x = images((64, 3, 32, 32)) + 1.0
    y = DSA("cutout")(x, gen(1))
    zero = (y == 0)
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 0], zero[:, 2])
    for z in zero[:, 0]:
        rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
        nr, nc = len(rows), len(cols)
        assert 1 <= nr <= 16 and 1 <= nc <= 16
        assert int(z.sum()) == nr * nc  # a (clipped) rectangle
        assert rows[-1] - rows[0] + 1 == nr and cols[-1] - cols[0] + 1 == nc
    full = [int(z.sum()) for z in zero[:, 0]]
    assert 16 * 16 in full  # unclipped squares have side 16 for 32 px images
    assert max(full) == 256
    kept = ~zero
    assert torch.equal(y[kept], x[kept])


def test_flip_is_horizontal_and_per_sample():
    x = images((32, 1, 28, 28))
    d = DSA("flip").draw(32, gen(2))
    y = DSA("flip").apply(x, d)
    f = d.values["flip"]
    assert 0 < int(f.sum()) < 32
    assert torch.equal(y[f], x[f].flip(3))
    assert torch.equal(y[~f], x[~f])


def test_color_matches_sequential_formula():
    x = images((5, 3, 32, 32))
    dsa = DSA("color")
    d = dsa.draw(5, gen(3))
    b, s, c = d.values["brightness"], d.values["saturation"], d.values["contrast"]
    assert (b.abs() <= 0.5).all() and ((s >= 0) & (s <= 2)).all()
    assert ((c >= 0.5) & (c <= 1.5)).all()
    ref = x + b
    m = ref.mean(dim=1, keepdim=True)
    ref = (ref - m) * s + m
    m = ref.mean(dim=[1, 2, 3], keepdim=True)
    ref = (ref - m) * c + m
    assert torch.allclose(dsa.apply(x, d), ref, atol=1e-5)


def test_scale_and_rotate_identity_parameters_give_identity():
    # with align_corners=True the unit map samples pixel centres exactly (up to float rounding)
    x = images((3, 3, 32, 32))
    one = torch.ones(3)
    assert torch.allclose(DSA("scale").apply(x, Draw("scale", {"sx": one, "sy": one})), x,
                          atol=1e-5)
    assert torch.allclose(DSA("rotate").apply(x, Draw("rotate", {"angle": torch.zeros(3)})), x,
                          atol=1e-5)


def test_affine_ops_match_affine_grid_align_corners_true():
    x = images((4, 3, 32, 28))
    for op in ("scale", "rotate"):
        dsa = DSA(op)
        d = dsa.draw(4, gen(11))
        if op == "scale":
            sx, sy = d.values["sx"], d.values["sy"]
            z = torch.zeros(4)
            theta = torch.stack([torch.stack([sx, z, z], 1), torch.stack([z, sy, z], 1)], 1)
            assert ((sx >= 1 / 1.2) & (sx <= 1.2)).all()
        else:
            a = d.values["angle"]
            assert (a.abs() <= math.radians(15) + 1e-6).all()
            theta = torch.stack([torch.stack([a.cos(), a.sin(), torch.zeros(4)], 1),
                                 torch.stack([-a.sin(), a.cos(), torch.zeros(4)], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        ref = F.grid_sample(x, grid, align_corners=True)
        assert torch.allclose(dsa.apply(x, d), ref, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = images((6, 3, 32, 32))
    for op in OPS:
        dsa = DSA(op)
        d = dsa.draw(6, gen(4))
        yc = dsa.apply(x.cuda(), d)
        assert yc.device.type == "cuda"
        assert torch.allclose(yc.cpu(), dsa.apply(x, d), atol=1e-5)


def test_apply_rejects_unknown_draw_op():
    with pytest.raises(ConfigError):
        DSA().apply(images((2, 3, 32, 32)), Draw("affine", {"x": torch.zeros(2)}))
