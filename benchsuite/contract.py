"""The method contract: what a returned :class:`SyntheticSet` must satisfy before it is saved,
evaluated or ranked. The runner applies it to every set, and the conformance tests apply the same
function, so a plugin run from ``--plugins-dir`` is held to exactly what the tests check.

The rules come in two groups, checked in this order. First what the tensors are (dense tensors,
their device, their dtype, their shape): these read only metadata, so a set whose tensors cannot
be read (a ``meta`` tensor holds no values) is refused with a rule that says so instead of failing
inside the check. Then what the tensors hold (finite pixels, labels in range, counts per class),
which reads the values and is only reached once the set is known to be readable.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from benchsuite.api import SyntheticSet
from benchsuite.errors import ContractError

#: The dtype the evaluator trains in: images (and soft labels) of any other dtype are refused,
#: because they would fail in evaluation (float64, float16 weights mismatch) or mean something
#: else (uint8 raw pixels instead of the normalised space).
EVAL_DTYPE = torch.float32
#: The dtype of hard labels (class indices), as the suite's own data holds them.
LABEL_DTYPE = torch.int64
#: The device types a cell runs on (:func:`benchsuite.devices.resolve_device`).
RUN_DEVICE_TYPES = ("cpu", "cuda")


def _broken(method: str, rule: str, detail: str) -> ContractError:
    return ContractError(f"method {method!r} broke the contract rule '{rule}': {detail}")


def _normalised(device: torch.device) -> torch.device:
    """``cuda`` without an index is the current CUDA device, the one its tensors land on."""
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _allowed_device(actual: torch.device, cell_device: torch.device | None) -> bool:
    if actual.type == "cpu":
        return True
    if actual.type == "meta":  # shapes without values: never evaluable, whatever the cell says
        return False
    if cell_device is None:
        return actual.type in RUN_DEVICE_TYPES
    return _normalised(actual) == _normalised(cell_device)


def _where(cell_device: torch.device | None) -> str:
    if cell_device is None:
        return "the CPU or a CUDA device"
    if cell_device.type == "cpu":
        return "the CPU (the cell's device)"
    return f"the CPU or the cell's device ({cell_device})"


def check_synthetic_set(syn: Any, *, method: str, shape: tuple[int, int, int], num_classes: int, ipc: int,
                        container: bool = False, ipc_independent: bool = False,
                        train_counts: list[int] | None = None, device: torch.device | None = None) -> None:
    """Raise :class:`ContractError` naming the first rule ``syn`` breaks.

    What the tensors are, checked first (metadata only): a :class:`SyntheticSet` of dense tensors;
    images and labels on the CPU or on ``device``, the cell's device (``None``: the CPU or any CUDA
    device, the devices a cell runs on; a ``meta`` tensor is always refused), labels on the same
    device as the images; float32 images (the evaluator's dtype) of the dataset's shape; hard
    labels ``[N]`` int64, or soft labels ``[N, K]`` float32.

    What they hold, checked after: at least one image, all finite; hard labels in ``[0, K)``, soft
    labels finite; ``storage_bytes`` a positive integer; ``learned_lr`` finite and positive when
    given; and exactly ``ipc`` images per class, except for an IPC-independent method (the whole
    train set: the train set's class counts) and a container (balanced classes and storage within
    ``ipc`` float32 images per class).
    """
    if not isinstance(syn, SyntheticSet):
        raise _broken(method, "returns a SyntheticSet", f"got {type(syn).__name__}")
    images, labels = syn.images, syn.labels
    for what, t in (("images", images), ("labels", labels)):
        if not isinstance(t, torch.Tensor) or t.layout != torch.strided:
            kind = type(t).__name__ if not isinstance(t, torch.Tensor) else f"a {t.layout} tensor"
            raise _broken(method, "dense tensors", f"{what} are {kind}; return a dense torch.Tensor "
                          f"(for example {what}.to_dense())")
    if not _allowed_device(images.device, device):
        hint = (" a meta tensor has a shape but no values, so nothing can be evaluated; compute the set on "
                "ctx.device" if images.device.type == "meta" else " move them with images.to(ctx.device)")
        raise _broken(method, "images on the CPU or the cell's device",
                      f"images are on {images.device}, the set must be on {_where(device)};{hint}")
    if labels.device != images.device:
        raise _broken(method, "labels on the images' device",
                      f"images are on {images.device}, labels on {labels.device}; return both on one device "
                      f"(labels.to(images.device))")
    if images.dtype != EVAL_DTYPE:
        hint = ("; integer pixels are not the normalised space the evaluator trains in: normalise them with "
                "the dataset's mean and std" if not images.dtype.is_floating_point else "")
        raise _broken(method, "float32 images", f"images are {images.dtype}, the evaluator trains in float32; "
                      f"return images.float(){hint}")
    if tuple(images.shape[1:]) != tuple(shape):
        raise _broken(method, "image shape", f"images are {tuple(images.shape[1:])}, the dataset's are {tuple(shape)}")
    if syn.soft_labels:
        if labels.dtype != EVAL_DTYPE:
            raise _broken(method, "float32 soft labels", f"soft labels are {labels.dtype}, the evaluator trains "
                          f"in float32; return labels.float()")
        if labels.shape[1] != num_classes:
            raise _broken(method, "labels in range", f"soft labels have {labels.shape[1]} columns, the dataset "
                          f"has {num_classes} classes")
    elif labels.dtype != LABEL_DTYPE:
        hint = ("; return class indices with labels.long(), or soft labels as a float32 [N, K] tensor"
                if labels.dtype.is_floating_point else "; return labels.long()")
        raise _broken(method, "int64 hard labels", f"hard labels [N] are class indices of dtype int64, got "
                      f"{labels.dtype}{hint}")
    # What the tensors hold: every check from here on reads values.
    if images.shape[0] == 0:
        raise _broken(method, "images per class", "the set holds no image")
    if not bool(torch.isfinite(images).all()):
        raise _broken(method, "finite images", "some pixels are NaN or infinite")
    if syn.soft_labels:
        if not bool(torch.isfinite(labels).all()):
            raise _broken(method, "labels in range", "some soft labels are NaN or infinite")
    else:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise _broken(method, "labels in range", f"labels span {lo}..{hi}, classes are 0..{num_classes - 1}")
    size = syn.storage_bytes
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
        raise _broken(method, "storage_bytes", f"must be a positive integer byte count, got {size!r}")
    if syn.learned_lr is not None:
        lr = syn.learned_lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise _broken(method, "learned_lr finite and positive", f"got {lr!r}")
    counts = syn.per_class_counts(num_classes)
    if ipc_independent:
        if train_counts is not None and counts != list(train_counts):
            raise _broken(method, "images per class", f"an IPC-independent set must be the whole train set "
                          f"({list(train_counts)} per class), got {counts}")
    elif container:
        if len(set(counts)) != 1 or counts[0] < 1:
            raise _broken(method, "balanced classes", f"a container must decode to the same number of images in "
                          f"every class, got {counts}")
        c, h, w = shape
        # The budget is IPC images per class as the evaluator holds them (float32), whatever the
        # container stores its parameters in.
        budget = ipc * num_classes * c * h * w * EVAL_DTYPE.itemsize
        if size > budget:
            raise _broken(method, "storage within budget", f"stores {size} bytes, more than IPC {ipc} "
                          f"float32 images per class ({budget} bytes)")
    elif counts != [ipc] * num_classes:
        raise _broken(method, "images per class", f"expected {ipc} image(s) in each of {num_classes} classes, "
                      f"got {counts}")
