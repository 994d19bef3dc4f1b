"""MNIST-family IDX files: torchvision's ``<root>/<Name>/raw`` folder and Debian's dataset-fashion-mnist.

The IDX format (LeCun's MNIST files) is a 4-byte magic (two zero bytes, a dtype code, the number of
dimensions), one big-endian uint32 per dimension, then the raw array. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import math
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

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
from benchsuite.data.torchvision_source import download_how

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The four standard file names (without ``.gz``).
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

#: Where Debian's ``dataset-fashion-mnist`` puts its files (``dpkg -L`` is asked as well).
DEBIAN_FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FASHION_MNIST_DIRS: tuple[Path, ...] = (
    Path("/usr/share/datasets/fashion-mnist"),
    Path("/usr/share/dataset-fashion-mnist"),
)


def parse_idx(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Decode one IDX blob into a native-endian numpy array (raises ``ValueError`` if malformed)."""
    buf = memoryview(data)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise ValueError("not an IDX file (bad magic)")
    code, ndim = buf[2], buf[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"unknown IDX dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError("truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(buf[4:header], dtype=">u4"))
    dtype = _IDX_DTYPES[code]
    count = math.prod(shape)
    if len(buf) - header != count * dtype.itemsize:
        raise ValueError(
            f"IDX payload has {len(buf) - header} bytes, shape {shape} of {dtype} needs {count * dtype.itemsize}"
        )
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzipped or not (decided by its first bytes, not its name)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return parse_idx(raw)


def find_idx_files(directory: Path) -> dict[str, Path]:
    """The four standard IDX files in ``directory`` (plain or ``.gz``), or :class:`SourceMiss`."""
    if not directory.is_dir():
        raise SourceMiss(f"{directory} does not exist")
    found: dict[str, Path] = {}
    missing = []
    for key, base in IDX_NAMES.items():
        for candidate in (directory / base, directory / f"{base}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(base)
    if missing:
        raise SourceMiss(f"{directory} lacks {', '.join(missing)} (plain or .gz)")
    return found


def read_idx_splits(files: dict[str, Path], channels: int, provenance: str) -> RawSplits:
    arrays = {key: read_idx(path) for key, path in files.items()}
    return RawSplits(
        x_train=images_to_nchw(arrays["x_train"], channels),
        y_train=labels_to_int64(arrays["y_train"]),
        x_test=images_to_nchw(arrays["x_test"], channels),
        y_test=labels_to_int64(arrays["y_test"]),
        provenance=provenance,
    )


def _located(files: dict[str, Path], channels: int, provenance: str) -> Located:
    return Located(
        provenance=provenance,
        fingerprint=fingerprint_files(files.values()),
        read=lambda: read_idx_splits(files, channels, provenance),
    )


def torchvision_idx_source(folder: str, channels: int = 1, in_download_root: bool = False) -> Source:
    """torchvision's MNIST-style layout ``<root>/<folder>/raw/*-ubyte[.gz]``, parsed directly.

    ``root`` is the data root, or the download folder when ``in_download_root`` (an earlier
    torchvision download, usable even when downloads are now disabled).
    """

    def find(ds: DataSources) -> Located:
        root = ds.download_root if in_download_root else ds.root
        if root is None:
            raise SourceMiss(
                "no download folder set" if in_download_root else "no data root set (--data-root / BENCHSUITE_DATA)"
            )
        raw_dir = Path(root) / folder / "raw"
        return _located(find_idx_files(raw_dir), channels, f"idx:{raw_dir.resolve()}")

    if in_download_root:
        return Source(
            name=f"torchvision {folder} in download folder",
            how=download_how(folder),
            find=find,
        )
    return Source(
        name=f"root torchvision layout ({folder}/raw)",
        how=(
            f"set --data-root or BENCHSUITE_DATA to a folder containing the torchvision layout "
            f"{folder}/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]"
        ),
        find=find,
    )


def debian_package_dirs(package: str) -> list[Path]:
    """Folders holding ``package``'s files according to ``dpkg -L`` (empty if dpkg or the package is absent)."""
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        return []
    try:
        out = subprocess.run([dpkg, "-L", package], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    dirs: list[Path] = []
    for line in out.stdout.splitlines():
        p = Path(line.strip())
        if p.name.startswith(tuple(IDX_NAMES.values())) and p.parent not in dirs:
            dirs.append(p.parent)
    return dirs


def debian_fashion_mnist_source(dirs: Sequence[Path] | None = None) -> Source:
    """Debian's ``dataset-fashion-mnist`` package (gzipped IDX files under /usr/share/datasets)."""

    def find(ds: DataSources) -> Located:
        candidates = list(DEBIAN_FASHION_MNIST_DIRS if dirs is None else dirs)
        reasons = []
        for d in candidates:
            try:
                return _located(find_idx_files(d), 1, f"debian:{d}")
            except SourceMiss as exc:
                reasons.append(str(exc))
        for d in debian_package_dirs(DEBIAN_FASHION_MNIST_PACKAGE):
            if d in candidates:
                continue
            try:
                return _located(find_idx_files(d), 1, f"debian:{d}")
            except SourceMiss as exc:
                reasons.append(str(exc))
        raise SourceMiss(
            f"package {DEBIAN_FASHION_MNIST_PACKAGE} is not installed or incomplete ({'; '.join(reasons)})"
        )

    return Source(
        name=f"Debian package {DEBIAN_FASHION_MNIST_PACKAGE}",
        how=f"apt-get install {DEBIAN_FASHION_MNIST_PACKAGE}  (installs the IDX files under /usr/share/datasets)",
        find=find,
    )


__all__ = [
    "parse_idx",
    "read_idx",
    "find_idx_files",
    "read_idx_splits",
    "torchvision_idx_source",
    "debian_fashion_mnist_source",
    "debian_package_dirs",
    "IDX_NAMES",
    "DEBIAN_FASHION_MNIST_DIRS",
]
