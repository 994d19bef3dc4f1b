"""A re-creation (not a copy) of the *structure* of the official DC code's `evaluate_synset`, so the
suite's evaluator can be timed against it in the same run on the same machine (ANCHORS.md warns
that timings on a shared machine are only comparable as ratios measured together).

What it reproduces, from ANCHORS.md's description of where the official time goes: a
TensorDataset + DataLoader rebuilt for the synthetic set, a host sync per step (`loss.item()`,
accuracy through numpy), the model moved to the device every epoch, and a test pass in batches of
256 *with* autograd recording (no `no_grad`), in NCHW layout. Same optimiser, schedule and model.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


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
