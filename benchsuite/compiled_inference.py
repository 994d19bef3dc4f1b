"""A compiled forward for the evaluator's test pass on the CPU.

At IPC 1 the 10,000-image test pass is two thirds of an evaluation (the official code's cost, measured on the
project's machine: docs/performance.md, "The official code's cost on the project's machine"). In eager mode a
third of it is instance norm, ReLU and pooling, each a separate pass over activations that do not
fit the cache; ``torch.compile`` fuses them around the convolutions and the pass takes
5.6-6.3 s instead of 7-11 s eagerly (docs/performance.md, "What makes the evaluator fast"). Predictions are those of the
eager model up to float rounding (``tests/test_compiled_inference.py``).

Compiling costs 5-13 s per architecture and batch shape, so it is done once per process: a
*template* copy of the first model of each architecture is compiled, and every later model of the
same architecture copies its weights into the template before the pass. Only full chunks go
through the compiled template (a different tail shape would recompile); the tail runs eagerly.

Compiling is a speed path, not a result path: when it fails (no C++ compiler, an unsupported op)
the pass runs eagerly with one warning, and ``BENCHSUITE_COMPILE=0`` turns it off.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Callable

import torch
from torch import Tensor, nn

# Below this many test images the compile time (seconds) cannot pay for itself.
MIN_IMAGES = 4096

_templates: dict[tuple, tuple[nn.Module, Callable[[Tensor], Tensor]]] = {}
_failed: set[tuple] = set()


def enabled(device: torch.device, images: int) -> bool:
    if os.environ.get("BENCHSUITE_COMPILE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return device.type == "cpu" and images >= MIN_IMAGES


# Every template of one model class is a cache entry on the same ``forward`` code object, and
# dynamo stops compiling a code object after ``recompile_limit`` (8) entries; beyond this many
# templates the pass runs eagerly instead of tripping that limit.
MAX_TEMPLATES = 6


def _signature(model: nn.Module, example: Tensor) -> tuple:
    state = tuple((k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items())
    return (type(model).__qualname__, repr(model), state, tuple(example.shape), example.dtype,
            str(example.device))


def compiled_forward(model: nn.Module, example: Tensor) -> Callable[[Tensor], Tensor] | None:
    """A compiled forward computing ``model`` (eval mode, its current weights) on chunks shaped
    and laid out like ``example``, or ``None`` when the pass should run eagerly."""
    key = _signature(model, example)
    if key in _failed:
        return None
    if key not in _templates:
        if len(_templates) >= MAX_TEMPLATES:
            return None
        template = copy.deepcopy(model).eval()
        # Parameters stay graph inputs (no freezing), so copying new weights in needs no recompile.
        fn = torch.compile(template, dynamic=False)
        try:
            # The real first chunk, so the guards (shape, layout, inference-mode flags) are those
            # of every later call.
            fn(example)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means "run eagerly"
            _failed.add(key)
            warnings.warn(f"torch.compile of the test pass failed ({type(exc).__name__}: {exc}); "
                          "the test pass runs eagerly (same results, slower). Set BENCHSUITE_COMPILE=0 "
                          "to skip the attempt.", RuntimeWarning, stacklevel=2)
            return None
        _templates[key] = (template, fn)
    template, fn = _templates[key]
    with torch.no_grad():
        for dst, src in zip(template.state_dict().values(), model.state_dict().values()):
            dst.copy_(src)
    return fn
