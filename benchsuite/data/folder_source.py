"""Tiny ImageNet's standard folder layout, decoded with PIL (JPEGs have no array form to take whole).

::

    <root>/tiny-imagenet-200/wnids.txt                      200 WordNet ids, one a line
    <root>/tiny-imagenet-200/train/<wnid>/images/*.JPEG     500 training images per class
    <root>/tiny-imagenet-200/val/images/*.JPEG              10,000 validation images
    <root>/tiny-imagenet-200/val/val_annotations.txt        "<file>\\t<wnid>\\t<box...>" per image

Class ``k`` is the ``k``-th wnid in sorted order (torchvision ``ImageFolder``'s convention). The
official test labels are not public, so the validation set serves as the test set, as is usual.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchsuite.data.base import (
    DataSources,
    Located,
    RawSplits,
    Source,
    SourceMiss,
    fingerprint_files,
    images_to_nchw,
    labels_to_int64,
)

TINYIMAGENET_FOLDER = "tiny-imagenet-200"
_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def _decode_all(paths: list[Path], size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def decode(i: int) -> None:
        with Image.open(paths[i]) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                raise ValueError(f"{paths[i]} is {im.size[0]}x{im.size[1]}, expected {size}x{size}")
            out[i] = np.asarray(im)

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(decode, range(len(paths)), chunksize=256))
    return out


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def read_tinyimagenet(base: Path, num_classes: int = 200, size: int = 64) -> RawSplits:
    wnids = sorted({w.strip() for w in (base / "wnids.txt").read_text().split() if w.strip()})
    if len(wnids) != num_classes:
        raise ValueError(f"{base / 'wnids.txt'} lists {len(wnids)} classes, expected {num_classes}")
    index = {w: k for k, w in enumerate(wnids)}

    train_paths: list[Path] = []
    train_labels: list[int] = []
    for w in wnids:
        files = _images_in(base / "train" / w / "images")
        train_paths += files
        train_labels += [index[w]] * len(files)

    test_paths: list[Path] = []
    test_labels: list[int] = []
    for line in (base / "val" / "val_annotations.txt").read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        if fields[1] not in index:
            raise ValueError(f"val_annotations.txt names unknown class {fields[1]!r}")
        test_paths.append(base / "val" / "images" / fields[0])
        test_labels.append(index[fields[1]])
    if not train_paths or not test_paths:
        raise ValueError(f"{base} has {len(train_paths)} training and {len(test_paths)} validation images")

    return RawSplits(
        x_train=images_to_nchw(_decode_all(train_paths, size), 3),
        y_train=labels_to_int64(train_labels),
        x_test=images_to_nchw(_decode_all(test_paths, size), 3),
        y_test=labels_to_int64(test_labels),
        provenance=f"folder:{base}",
    )


def tinyimagenet_folder_source(num_classes: int = 200, size: int = 64) -> Source:
    def find(ds: DataSources) -> Located:
        if ds.root is None:
            raise SourceMiss("no data root set (--data-root / BENCHSUITE_DATA)")
        base = Path(ds.root) / TINYIMAGENET_FOLDER
        needed = [base / "wnids.txt", base / "train", base / "val" / "images", base / "val" / "val_annotations.txt"]
        missing = [str(p.relative_to(ds.root)) for p in needed if not p.exists()]
        if missing:
            raise SourceMiss(f"{ds.root} lacks {', '.join(missing)}")
        base = base.resolve()
        # Stat folders rather than 110,000 images: a folder's mtime changes when files come or go.
        train_dirs = sorted(d / "images" for d in (base / "train").iterdir() if (d / "images").is_dir())
        stamp = [base / "wnids.txt", base / "val" / "val_annotations.txt", base / "val" / "images", *train_dirs]
        return Located(
            provenance=f"folder:{base}",
            fingerprint=fingerprint_files(stamp),
            read=lambda: read_tinyimagenet(base, num_classes, size),
        )

    return Source(
        name=f"root folder layout ({TINYIMAGENET_FOLDER}/)",
        how=(
            f"set --data-root or BENCHSUITE_DATA to a folder containing the unzipped {TINYIMAGENET_FOLDER}/ "
            "(wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt)"
        ),
        find=find,
    )


__all__ = ["read_tinyimagenet", "tinyimagenet_folder_source", "TINYIMAGENET_FOLDER"]
