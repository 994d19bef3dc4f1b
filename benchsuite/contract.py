"""The method contract: what a returned :class:`SyntheticSet` must satisfy before it is saved,
evaluated or ranked. The runner applies it to every set, and the conformance tests apply the same
function, so a plugin run from ``--plugins-dir`` is held to exactly what the tests check.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from benchsuite.api import SyntheticSet
from benchsuite.errors import ContractError


def _broken(method: str, rule: str, detail: str) -> ContractError:
    return ContractError(f"method {method!r} broke the contract rule '{rule}': {detail}")


def check_synthetic_set(syn: Any, *, method: str, shape: tuple[int, int, int], num_classes: int, ipc: int,
                        container: bool = False, ipc_independent: bool = False,
                        train_counts: list[int] | None = None) -> None:
    """Raise :class:`ContractError` naming the first rule ``syn`` breaks.

    The rules: a :class:`SyntheticSet`; images of the dataset's shape, all finite; hard labels in
    ``[0, K)`` or soft labels ``[N, K]``, finite; ``storage_bytes`` positive; ``learned_lr`` finite
    and positive when given; and exactly ``ipc`` images per class, except for an IPC-independent
    method (the whole train set: the train set's class counts) and a container (balanced classes
    and storage within ``ipc`` float32 images per class).
    """
    if not isinstance(syn, SyntheticSet):
        raise _broken(method, "returns a SyntheticSet", f"got {type(syn).__name__}")
    if tuple(syn.images.shape[1:]) != tuple(shape):
        raise _broken(method, "image shape", f"images are {tuple(syn.images.shape[1:])}, the dataset's are {tuple(shape)}")
    if syn.images.shape[0] == 0:
        raise _broken(method, "images per class", "the set holds no image")
    if not bool(torch.isfinite(syn.images).all()):
        raise _broken(method, "finite images", "some pixels are NaN or infinite")
    if syn.soft_labels:
        if syn.labels.shape[1] != num_classes:
            raise _broken(method, "labels in range", f"soft labels have {syn.labels.shape[1]} columns, the dataset "
                          f"has {num_classes} classes")
        if not bool(torch.isfinite(syn.labels).all()):
            raise _broken(method, "labels in range", "some soft labels are NaN or infinite")
    else:
        if syn.labels.dtype.is_floating_point or syn.labels.dtype == torch.bool:
            raise _broken(method, "labels in range", f"hard labels must be integers, got {syn.labels.dtype}")
        lo, hi = int(syn.labels.min()), int(syn.labels.max())
        if lo < 0 or hi >= num_classes:
            raise _broken(method, "labels in range", f"labels span {lo}..{hi}, classes are 0..{num_classes - 1}")
    if not syn.storage_bytes or syn.storage_bytes <= 0:
        raise _broken(method, "storage_bytes", f"must be a positive byte count, got {syn.storage_bytes!r}")
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
        budget = ipc * num_classes * c * h * w * 4
        if syn.storage_bytes > budget:
            raise _broken(method, "storage within budget", f"stores {syn.storage_bytes} bytes, more than IPC {ipc} "
                          f"float32 images per class ({budget} bytes)")
    elif counts != [ipc] * num_classes:
        raise _broken(method, "images per class", f"expected {ipc} image(s) in each of {num_classes} classes, "
                      f"got {counts}")
