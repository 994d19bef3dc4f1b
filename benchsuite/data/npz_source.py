"""The npz layout of the shared offline copies (``shared/data``), read as whole arrays.

* one file per dataset: ``<root>/<folder>/<file>.npz`` with ``x_train``, ``y_train``, ``x_test``,
  ``y_test`` (images NHWC or NHW, uint8), e.g. ``fashion_mnist/fashion_mnist.npz``;
* CIFAR-10 in chunks: ``cifar10/cifar10_train_{0..4}.npz`` (``x_train``, ``y_train``) and a test set
  made of ``cifar10_test_exact_first1000.npz`` (test images 0..999, lossless) plus the positions
  1000..9999 of ``cifar10_test_jpeg_q75.npz`` (the rest of the test set, JPEG-degraded, grouped by
  class; ``orig_index`` is 0..999 for the first 1000 positions and -1 after).
"""

from __future__ import annotations

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

CIFAR10_FOLDER = "cifar10"
CIFAR10_TRAIN_CHUNKS = tuple(f"cifar10_train_{k}.npz" for k in range(5))
CIFAR10_TEST_EXACT = "cifar10_test_exact_first1000.npz"
CIFAR10_TEST_JPEG = "cifar10_test_jpeg_q75.npz"


def _root(ds: DataSources) -> Path:
    if ds.root is None:
        raise SourceMiss("no data root set (--data-root / BENCHSUITE_DATA)")
    return Path(ds.root)


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise ValueError(f"{path} lacks array(s) {missing} (has {z.files})")
        return {k: z[k] for k in keys}


def npz_file_source(folder: str, filename: str, channels: int) -> Source:
    """One npz holding both splits: ``<root>/<folder>/<filename>``."""
    rel = f"{folder}/{filename}"

    def find(ds: DataSources) -> Located:
        path = _root(ds) / folder / filename
        if not path.is_file():
            raise SourceMiss(f"{path} does not exist")
        path = path.resolve()
        provenance = f"npz:{path}"

        def read() -> RawSplits:
            a = _load_npz(path, ("x_train", "y_train", "x_test", "y_test"))
            return RawSplits(
                x_train=images_to_nchw(a["x_train"], channels),
                y_train=labels_to_int64(a["y_train"]),
                x_test=images_to_nchw(a["x_test"], channels),
                y_test=labels_to_int64(a["y_test"]),
                provenance=provenance,
            )

        return Located(provenance=provenance, fingerprint=fingerprint_files([path]), read=read)

    return Source(
        name=f"root npz layout ({rel})",
        how=(
            f"set --data-root or BENCHSUITE_DATA to a folder containing {rel} "
            "(arrays x_train, y_train, x_test, y_test; the layout of shared/data)"
        ),
        find=find,
    )


def read_cifar10_npz(folder: Path) -> RawSplits:
    """The chunked CIFAR-10 layout; the test set is 1000 exact images + 9000 JPEG-decoded ones."""
    chunks = [_load_npz(folder / name, ("x_train", "y_train")) for name in CIFAR10_TRAIN_CHUNKS]
    x_train = images_to_nchw(np.concatenate([c["x_train"] for c in chunks]), 3)
    y_train = labels_to_int64(np.concatenate([c["y_train"] for c in chunks]))

    exact = _load_npz(folder / CIFAR10_TEST_EXACT, ("x_test", "y_test"))
    jpeg = _load_npz(folder / CIFAR10_TEST_JPEG, ("x_test", "y_test", "orig_index"))
    n_exact = len(exact["y_test"])
    orig = jpeg["orig_index"].astype(np.int64)
    # The JPEG file's first n_exact positions must be the same images as the exact file (original
    # order), and no later position may repeat one of them; the rest completes the test set.
    if not np.array_equal(orig[:n_exact], np.arange(n_exact)):
        raise ValueError(f"{CIFAR10_TEST_JPEG}: orig_index[:{n_exact}] is not 0..{n_exact - 1}")
    rest = orig[n_exact:]
    if np.any((rest >= 0) & (rest < n_exact)):
        raise ValueError(f"{CIFAR10_TEST_JPEG}: positions >= {n_exact} repeat exact test images")
    if not np.array_equal(jpeg["y_test"][:n_exact], exact["y_test"]):
        raise ValueError(f"{CIFAR10_TEST_JPEG} and {CIFAR10_TEST_EXACT} disagree on the labels of images 0..{n_exact - 1}")
    n_jpeg = len(jpeg["y_test"]) - n_exact
    x_test = images_to_nchw(np.concatenate([exact["x_test"], jpeg["x_test"][n_exact:]]), 3)
    y_test = labels_to_int64(np.concatenate([exact["y_test"], jpeg["y_test"][n_exact:]]))
    return RawSplits(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        provenance=f"npz:{folder}",
        test_set=f"cifar10 (offline test: {n_exact} exact + {n_jpeg} JPEG)",
    )


def cifar10_npz_source() -> Source:
    names = (*CIFAR10_TRAIN_CHUNKS, CIFAR10_TEST_EXACT, CIFAR10_TEST_JPEG)

    def find(ds: DataSources) -> Located:
        folder = _root(ds) / CIFAR10_FOLDER
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise SourceMiss(f"{folder} lacks {', '.join(missing)}")
        folder = folder.resolve()
        return Located(
            provenance=f"npz:{folder}",
            fingerprint=fingerprint_files(folder / n for n in names),
            read=lambda: read_cifar10_npz(folder),
        )

    return Source(
        name=f"root npz layout ({CIFAR10_FOLDER}/)",
        how=(
            "set --data-root or BENCHSUITE_DATA to a folder containing cifar10/cifar10_train_{0..4}.npz, "
            f"cifar10/{CIFAR10_TEST_EXACT} and cifar10/{CIFAR10_TEST_JPEG} (the layout of shared/data)"
        ),
        find=find,
    )


__all__ = ["npz_file_source", "cifar10_npz_source", "read_cifar10_npz"]
