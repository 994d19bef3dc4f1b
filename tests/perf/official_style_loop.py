"""A re-creation (not a copy) of the *structure* of the official DC code's `evaluate_synset`, so the
suite's evaluator can be timed against it in the same run on the same machine (timings on a shared
machine are only comparable as ratios measured together; docs/performance.md).

What it reproduces, from where the official time goes (docs/performance.md, "The official code's cost on
the project's machine"): a
TensorDataset + DataLoader rebuilt for the synthetic set, a host sync per step (`loss.item()`,
accuracy through numpy), the model moved to the device every epoch, and a test pass in batches of
256 *with* autograd recording (no `no_grad`), in NCHW layout. Same optimiser and schedule; the
network is the official ConvNet's stock modules (`official_style_convnet`), which compute the same
function as the suite's `ConvNet`, so how the suite computes it counts in the comparison.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def official_style_convnet(channels: int = 1, num_classes: int = 10, width: int = 128) -> nn.Sequential:
    """The official ConvNet-3 for 28x28 inputs, built from stock torch modules as the official code
    builds it (first conv padded by 3, GroupNorm(C, C), in-place ReLU, ``nn.AvgPool2d(2, 2)``).
    Its parameters come in the order of the suite's ``ConvNet``, so copying one state dict into
    the other in order maps the same weights (``official_style_twin``; the benchmark checks the
    two compute the same function)."""
    layers: list[nn.Module] = []
    in_ch = channels
    for d in range(3):
        layers += [nn.Conv2d(in_ch, width, 3, padding=3 if d == 0 and channels == 1 else 1),
                   nn.GroupNorm(width, width, affine=True), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
        in_ch = width
    return nn.Sequential(nn.Sequential(*layers), nn.Flatten(), nn.Linear(width * 4 * 4, num_classes))


def official_style_twin(model: nn.Module) -> nn.Sequential:
    """``official_style_convnet`` holding the weights of the suite's ConvNet-3 ``model`` (28x28)."""
    twin = official_style_convnet(model.features.conv1.in_channels, model.classifier.out_features,
                                  model.width)
    with torch.no_grad():
        for dst, src in zip(twin.state_dict().values(), model.state_dict().values(), strict=True):
            dst.copy_(src)
    return twin


def official_style_embed(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The official ConvNet's ``embed``: the flattened features before the classifier."""
    return net[1](net[0](x))


def official_style_train(model, images, labels, epochs, lr=0.01, augment=None, generator=None):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(TensorDataset(images, labels), batch_size=256, shuffle=True, generator=generator)
    for ep in range(epochs + 1):
        model = model.to(images.device)
        model.train()
        for xb, yb in loader:
            if augment is not None:
                xb = augment(xb, generator)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            _ = loss.item()
            _ = np.sum(np.argmax(out.detach().cpu().numpy(), axis=-1) == yb.cpu().numpy())
        if ep == epochs // 2 + 1:
            for g in opt.param_groups:
                g["lr"] = lr * 0.1
    return model


def official_style_test(model, images, labels):
    model.eval()
    correct = 0
    loader = DataLoader(TensorDataset(images, labels), batch_size=256, shuffle=False)
    for xb, yb in loader:
        out = model(xb)
        _ = F.cross_entropy(out, yb).item()
        correct += int(np.sum(np.argmax(out.detach().cpu().numpy(), axis=-1) == yb.cpu().numpy()))
    return 100.0 * correct / len(labels)
