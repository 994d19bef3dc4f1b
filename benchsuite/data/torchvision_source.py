"""torchvision's own layouts (``download=False``) and, as the last resort, torchvision downloads.

Arrays are taken whole from the dataset objects (``.data`` with ``.targets`` or ``.labels``), never
image by image. torchvision is imported only when one of these sources is actually read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from benchsuite.data.base import (
    DataSources,
    Located,
    RawSplits,
    Source,
    SourceMiss,
    files_under,
    fingerprint_files,
    images_to_nchw,
    labels_to_int64,
)

#: What torchvision keeps under its root for each dataset class (used to check presence cheaply).
TORCHVISION_FILES: dict[str, tuple[str, ...]] = {
    "MNIST": ("MNIST/raw",),
    "FashionMNIST": ("FashionMNIST/raw",),
    "CIFAR10": ("cifar-10-batches-py",),
    "CIFAR100": ("cifar-100-python",),
    "SVHN": ("train_32x32.mat", "test_32x32.mat"),
}


def _make(cls_name: str, root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd  # imported lazily: slow, and unused on the cached path

    cls = getattr(tvd, cls_name)
    if cls_name == "SVHN":
        return cls(str(root), split="train" if train else "test", download=download)
    return cls(str(root), train=train, download=download)


def _arrays(obj, channels: int):
    labels = getattr(obj, "targets", None)
    if labels is None:
        labels = obj.labels
    return images_to_nchw(obj.data, channels), labels_to_int64(labels)


def read_torchvision(cls_name: str, root: Path, channels: int, download: bool) -> RawSplits:
    x_train, y_train = _arrays(_make(cls_name, root, True, download), channels)
    x_test, y_test = _arrays(_make(cls_name, root, False, download), channels)
    return RawSplits(x_train, y_train, x_test, y_test, provenance=f"torchvision:{root}")


def _layout_source(cls_name: str, channels: int, which: str, root_of: Callable[[DataSources], Path | None]) -> Source:
    parts = TORCHVISION_FILES[cls_name]

    def find(ds: DataSources) -> Located:
        root = root_of(ds)
        if root is None:
            raise SourceMiss(
                "no data root set (--data-root / BENCHSUITE_DATA)" if which == "root" else "no download folder set"
            )
        missing = [p for p in parts if not (root / p).exists()]
        if missing:
            raise SourceMiss(f"{root} lacks {', '.join(missing)}")
        root = root.resolve()
        files = [f for p in parts for f in files_under(root / p)]
        return Located(
            provenance=f"torchvision:{root}",
            fingerprint=fingerprint_files(files),
            read=lambda: read_torchvision(cls_name, root, channels, download=False),
        )

    if which == "root":
        how = (
            "set --data-root or BENCHSUITE_DATA to a folder holding torchvision's layout "
            f"({', '.join(parts)}), e.g. one where torchvision.datasets.{cls_name}(root, download=True) ran"
        )
    else:
        how = download_how(cls_name)
    return Source(name=f"torchvision {cls_name} in {which}", how=how, find=find)


def torchvision_root_source(cls_name: str, channels: int) -> Source:
    """torchvision's layout under the data root, read with ``download=False``."""
    return _layout_source(cls_name, channels, "root", lambda ds: Path(ds.root) if ds.root is not None else None)


def torchvision_downloaded_source(cls_name: str, channels: int) -> Source:
    """An earlier download in ``download_root`` (usable even when downloads are now disabled)."""
    return _layout_source(
        cls_name, channels, "download folder", lambda ds: Path(ds.download_root) if ds.download_root else None
    )


def torchvision_download_source(cls_name: str, channels: int) -> Source:
    """Download with torchvision into ``download_root`` (needs internet and ``allow_download``).

    Not cached under its own key: the next load finds the downloaded files through
    :func:`torchvision_downloaded_source` and caches those.
    """

    def find(ds: DataSources) -> Located:
        if not ds.allow_download:
            raise SourceMiss("downloads are disabled")
        if ds.download_root is None:
            raise SourceMiss("no download folder set")
        root = Path(ds.download_root).resolve()

        def read() -> RawSplits:
            root.mkdir(parents=True, exist_ok=True)
            try:
                return read_torchvision(cls_name, root, channels, download=True)
            except Exception as exc:
                raise RuntimeError(f"torchvision could not download {cls_name} into {root}: {exc}") from exc

        return Located(provenance=f"torchvision:{root}", fingerprint="download", read=read, cacheable=False)

    return Source(name=f"torchvision {cls_name} download", how=download_how(cls_name), find=find)


def download_how(cls_name: str) -> str:
    return (
        f"run once with internet access and downloads allowed: torchvision downloads {cls_name} into the "
        "download folder (<cache_dir>/downloads by default), where later runs find it even offline"
    )


__all__ = [
    "download_how",
    "TORCHVISION_FILES",
    "read_torchvision",
    "torchvision_root_source",
    "torchvision_downloaded_source",
    "torchvision_download_source",
]
