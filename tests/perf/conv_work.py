"""How much arithmetic a network's convolutions and linear layers do, counted from the shapes a
forward pass actually produces (hooks), so the count follows the architecture instead of a
hand-kept table. The perf benchmarks use it to turn measured convolution times into rates and to
bound what one evaluation model can cost on this machine (docs/performance.md, "The IPC-1 target")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LayerWork:
    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    macs: int  # multiply-accumulates of one forward over the batch that was traced
    takes_network_input: bool  # in training its input needs no gradient

    @property
    def forward_flops(self) -> int:
        return 2 * self.macs

    @property
    def training_flops(self) -> int:
        """Forward, weight gradient, and input gradient unless the layer reads the network's input
        (the images a model is trained on are leaves without gradient)."""
        return 2 * self.macs * (2 if self.takes_network_input else 3)


def layer_work(model: nn.Module, x: Tensor) -> list[LayerWork]:
    """The ``Conv2d`` and ``Linear`` layers of ``model`` in call order, with their work on ``x``."""
    found: list[LayerWork] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = module.in_channels // module.groups * kh * kw
        else:
            per_output = module.in_features
        found.append(LayerWork(names[module], module, tuple(inputs[0].shape), out.numel() * per_output,
                               inputs[0] is x))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found
