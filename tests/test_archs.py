"""The network zoo: shapes, embeddings, published parameter counts (docs/architectures.md), timm and
error paths."""

from __future__ import annotations

import pytest
import torch

from benchsuite.archs import ARCH_DESCRIPTIONS, BUILTIN_ARCHS, ConvNet, build_arch, build_timm
from benchsuite.errors import ConfigError, UnknownNameError

SHAPES = [(1, 28), (3, 32)]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: these tiny batches gain nothing from more, and on a busy 2-core
    machine oversubscribed OpenMP threads make them an order of magnitude slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_arch_has_a_description() -> None:
    assert set(ARCH_DESCRIPTIONS) == set(BUILTIN_ARCHS)
    assert all(ARCH_DESCRIPTIONS.values())


@pytest.mark.parametrize("channels,size", SHAPES, ids=[f"{c}x{s}" for c, s in SHAPES])
@pytest.mark.parametrize("name", list(BUILTIN_ARCHS))
def test_forward_and_embed(name: str, channels: int, size: int) -> None:
    num_classes = 7
    model = BUILTIN_ARCHS[name](channels, num_classes, size)
    model.eval()  # BN uses running stats, so forward and embed see the same normalisation
    captured: list[torch.Tensor] = []
    hook = model.classifier.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        logits = model(x)
        emb = model.embed(x)
    hook.remove()
    assert logits.shape == (2, num_classes)
    assert emb.ndim == 2 and emb.shape[0] == 2
    assert emb.shape[1] == model.classifier.in_features
    assert torch.isfinite(logits).all() and torch.isfinite(emb).all()
    # embed is exactly the feature the final classifier sees
    torch.testing.assert_close(emb, captured[0])


def test_train_mode_batchnorm_forward_with_gradients() -> None:
    model = BUILTIN_ARCHS["convnet-bn"](3, 10, 32)
    model.train()
    out = model(torch.randn(4, 3, 32, 32))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_convnet3_parameter_counts_match_published() -> None:
    assert n_params(ConvNet(3, 10, 32)) == 320_010
    assert n_params(ConvNet(1, 10, 28)) == 317_706
    assert n_params(ConvNet(3, 100, 32)) == 504_420
    assert n_params(BUILTIN_ARCHS["convnet-d4"](3, 200, 64)) == 857_160
    assert n_params(BUILTIN_ARCHS["convnet-d5"](3, 10, 128)) == 615_690


def test_convnet3_layer_table_and_flattened_order() -> None:
    model = ConvNet(3, 10, 32)
    names = [n for n, _ in model.named_parameters()]
    assert names == [
        "features.conv1.weight", "features.conv1.bias",
        "features.norm1.weight", "features.norm1.bias",
        "features.conv2.weight", "features.conv2.bias",
        "features.norm2.weight", "features.norm2.bias",
        "features.conv3.weight", "features.conv3.bias",
        "features.norm3.weight", "features.norm3.bias",
        "classifier.weight", "classifier.bias",
    ]  # fmt: skip
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [
        (128, 3, 3, 3), (128,), (128,), (128,),
        (128, 128, 3, 3), (128,), (128,), (128,),
        (128, 128, 3, 3), (128,), (128,), (128,),
        (10, 2048), (10,),
    ]  # fmt: skip
    params = list(model.parameters())
    per_layer = [sum(p.numel() for p in params[i : i + 2]) for i in range(0, len(params), 2)]
    assert per_layer == [3_584, 256, 147_584, 256, 147_584, 256, 20_490]
    # instance norm is GroupNorm with one group per channel
    norm1 = model.features.norm1
    assert isinstance(norm1, torch.nn.GroupNorm) and norm1.num_groups == 128 and norm1.affine
    assert model.embed_dim == 2048


def test_convnet_28px_first_conv_padded_to_32() -> None:
    model = ConvNet(1, 10, 28)
    assert model.features.conv1.padding == (3, 3)
    assert ConvNet(3, 10, 32).features.conv1.padding == (1, 1)


def test_layer_norm_uses_spatial_size() -> None:
    model = BUILTIN_ARCHS["convnet-ln"](3, 10, 32)
    assert model.features.norm1.normalized_shape == (128, 32, 32)
    assert model.features.norm3.normalized_shape == (128, 8, 8)


def test_depth_too_large_for_image_raises_config_error() -> None:
    with pytest.raises(ConfigError, match=r"depth 5.*16x16"):
        BUILTIN_ARCHS["convnet-d5"](3, 10, 16)
    # 28 px is padded to 32, so five halvings still leave a 1x1 map
    assert BUILTIN_ARCHS["convnet-d5"](1, 10, 28).embed_dim == 128


def test_vgg_too_small_image_names_arch_and_size() -> None:
    with pytest.raises(ConfigError, match=r"vgg11.*16x16"):
        BUILTIN_ARCHS["vgg11"](3, 10, 16)


def test_unknown_builtin_name_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError, match="convnet-bn"):
        build_arch("convnet_bn", 3, 10, 32)


def test_timm_resnet18_builds_and_runs() -> None:
    pytest.importorskip("timm")
    model = build_arch("timm:resnet18", 3, 10, 32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        emb = model.embed(x)
    assert logits.shape == (2, 10)
    assert emb.shape == (2, 512)
    assert torch.isfinite(logits).all()


def test_timm_unknown_name_suggests_close_match() -> None:
    pytest.importorskip("timm")
    with pytest.raises(UnknownNameError, match="resnet18"):
        build_timm("resnet18x", 3, 10, 32)


@pytest.mark.parametrize("shape", [(3, 5, 8, 8), (2, 4, 7, 9), (2, 3, 32, 32)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_convnet_pooling_is_bitwise_avg_pool2d(shape: tuple[int, ...], channels_last: bool) -> None:
    """ConvNet's faster 2x2 average pooling must give exactly ``avg_pool2d``'s values, gradients and
    second derivatives (DC and MTT differentiate through the network twice), so records made
    before and after it stay comparable bit for bit."""
    from benchsuite.archs.norms import AvgPool2x2

    pool = ConvNet(3, 10, 32).features.pool1
    assert isinstance(pool, AvgPool2x2)
    x = torch.randn(*shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_ref = pool(ours), torch.nn.functional.avg_pool2d(ref, 2, 2)
    assert torch.equal(y_ours, y_ref)
    g = torch.randn_like(y_ref)
    g_ours, g_ref = g.clone().requires_grad_(), g.clone().requires_grad_()
    (dx_ours,) = torch.autograd.grad(y_ours, ours, g_ours, create_graph=True)
    (dx_ref,) = torch.autograd.grad(y_ref, ref, g_ref, create_graph=True)
    assert torch.equal(dx_ours, dx_ref)
    h = torch.randn_like(dx_ref)
    (dg_ours,) = torch.autograd.grad((dx_ours * h).sum(), g_ours)
    (dg_ref,) = torch.autograd.grad((dx_ref * h).sum(), g_ref)
    assert torch.equal(dg_ours, dg_ref)
    with torch.no_grad():
        assert torch.equal(pool(x), y_ref)
