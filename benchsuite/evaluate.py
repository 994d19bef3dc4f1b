"""The fixed evaluator: train fresh models on a synthetic set, report final-epoch test accuracy.

Tensors already in memory stay on the device (no DataLoader); the only host sync per model is the
final accuracy. Accuracy is that of the last epoch, never the best test checkpoint
(docs/protocols.md, "Final-epoch accuracy, not the best checkpoint").
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from benchsuite import compiled_inference
from benchsuite.api import LabeledData, SyntheticSet
from benchsuite.modeling import child_generator
from benchsuite.ops.dsa import DSA
from benchsuite.ops.matching import forward_chunk, has_batchnorm
from benchsuite.ops.zca import zca_from_description
from benchsuite.protocol import EvalRecipe
from benchsuite.training import train_model  # noqa: F401 - the evaluator's loop, importable from here too

ProgressFn = Callable[..., None]


@dataclass
class EvalResult:
    arch: str
    accuracies: list[float]
    train_seconds: float
    test_seconds: float
    epochs: int
    lr: float
    soft_labels: bool
    final_train_loss: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(sum(self.accuracies) / len(self.accuracies))

    @property
    def std(self) -> float:
        # Population std over models, as the DC code base reports (np.std).
        m = self.mean
        return float(math.sqrt(sum((a - m) ** 2 for a in self.accuracies) / len(self.accuracies)))


@torch.inference_mode()
def test_accuracy(model: nn.Module, test: LabeledData, batch_size: int = 2000) -> float:
    """Top-1 accuracy (%) on the whole test set, one host sync.

    On the CPU the pass runs in chunks of ``forward_chunk`` images (at most ``batch_size``):
    activations of 16 ConvNet-3 images stay in cache, and the eager pass takes 7-11 s instead of
    11-14 s for 500-image batches (docs/performance.md). Large test sets go through a
    compiled forward (``compiled_inference``). 4-D inputs use channels-last layout, measurably faster for the CPU's
    convolutions and pooling. None of this changes the function of the weights being computed.
    """
    model.eval()
    device = test.images.device
    channels_last = test.images.ndim == 4
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    chunk = min(batch_size, forward_chunk(device, test.images.shape[1:]) or batch_size)
    n_full = (len(test) // chunk) * chunk

    def batch(start: int) -> Tensor:
        xb = test.images[start:start + chunk]
        return xb.contiguous(memory_format=torch.channels_last) if channels_last else xb

    forward: Callable[[Tensor], Tensor] = model
    if channels_last and n_full and compiled_inference.enabled(device, len(test)):
        compiled = compiled_inference.compiled_forward(model, batch(0))
        if compiled is not None:
            forward = compiled
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, len(test), chunk):
        net = forward if start + chunk <= n_full else model  # the tail's shape would recompile
        correct += (net(batch(start)).argmax(dim=1) == test.labels[start:start + chunk]).sum()
    return 100.0 * float(correct) / len(test)


def eval_space_testset(syn: SyntheticSet, test: LabeledData, train: LabeledData) -> LabeledData:
    """``test`` in the input space of ``syn``: unchanged for normalised sets, whitened with the
    train set's ZCA fit for sets that declare ``transform = {"name": "zca", ...}``."""
    zca = zca_from_description(syn.transform, train.images)
    if zca is None:
        return test
    return LabeledData(zca.apply(test.images), test.labels, test.num_classes, test.spec)


def evaluation_augment(kind: str, dsa_strategy: str, arch: str) -> Any:
    """The per-sample augmentation of the evaluation models: DSA with the dataset's strategy, DC
    augmentation (``crop_noise`` for BatchNorm networks, as the DC code evaluates ConvNetBN;
    ``crop_scale_rotate`` otherwise), or none."""
    if kind == "dsa":
        return DSA(dsa_strategy)
    if kind == "dc":
        from benchsuite.ops.dc_augment import DCAugment

        return DCAugment("crop_noise" if "bn" in arch.split(":")[-1].lower() else "crop_scale_rotate")
    return None


def evaluate_synset(
    syn: SyntheticSet,
    test: LabeledData,
    *,
    arch: str,
    make_model: Callable[[str, torch.Generator], nn.Module],
    recipe: EvalRecipe,
    device: torch.device,
    generator: torch.Generator,
    dsa_strategy: str,
    epochs: int | None = None,
    progress: ProgressFn | None = None,
) -> EvalResult:
    """Train ``recipe.models`` fresh ``arch`` models on ``syn`` and test each on ``test``.

    The closed division uses hard labels and the recipe's lr; the open division honours the set's
    soft labels and learned lr when it has them.
    """
    open_division = recipe.division == "open"
    images = syn.images.to(device)
    use_soft = open_division and syn.soft_labels
    targets = (syn.labels.float() if use_soft else syn.hard_labels().long()).to(device)
    lr = syn.learned_lr if (open_division and syn.learned_lr) else recipe.lr
    epochs = epochs or recipe.epochs
    augment = evaluation_augment(recipe.augment, dsa_strategy, arch)
    test = test.to(device)

    accs, losses = [], []
    train_s = test_s = 0.0
    for m in range(recipe.models):
        g = child_generator(generator)
        model = make_model(arch, g).to(device)
        t0 = time.perf_counter()

        def report(step: int, total: int, m: int = m, **info: object) -> None:
            if progress is not None:
                progress(step + m * total, total * recipe.models, model=f"{m + 1}/{recipe.models}", **info)

        losses.append(
            train_model(
                model, images, targets, epochs=epochs, lr=lr, generator=g, momentum=recipe.momentum,
                weight_decay=recipe.weight_decay, batch_size=recipe.batch_size,
                lr_decay_at=recipe.lr_decay_at, lr_decay_factor=recipe.lr_decay_factor,
                augment=augment, progress=report,
                chunk=None if has_batchnorm(model) else forward_chunk(device, images.shape[1:]),
            )
        )
        t1 = time.perf_counter()
        accs.append(test_accuracy(model, test, recipe.test_batch_size))
        test_s += time.perf_counter() - t1
        train_s += t1 - t0
    return EvalResult(arch, accs, train_s, test_s, epochs, float(lr), use_soft, losses)
