"""The data types shared by every source module: where to look, what a source finds, what it reads."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from benchsuite.api import LabeledData
from benchsuite.data.spec import DatasetSpec
from benchsuite.errors import DataUnavailableError

#: Environment variable naming the data root when no ``--data-root`` is given.
DATA_ROOT_ENV = "BENCHSUITE_DATA"

OFFICIAL_TEST_SET = "official"


@dataclass(frozen=True)
class DataSources:
    """Where datasets may come from.

    ``root`` is ``--data-root`` or ``$BENCHSUITE_DATA`` (resolved by the caller, ``None`` if
    neither); ``allow_download`` permits torchvision downloads as the last resort, into
    ``download_root`` (default ``<cache_dir>/downloads``).
    """

    root: Path | None
    allow_download: bool = True
    download_root: Path | None = None

    @classmethod
    def resolve(
        cls, data_root: str | Path | None = None, allow_download: bool = True, download_root: str | Path | None = None
    ) -> "DataSources":
        """``data_root`` if given, else ``$BENCHSUITE_DATA`` if set, else no root."""
        raw = data_root if data_root not in (None, "") else os.environ.get(DATA_ROOT_ENV) or None
        root = Path(raw).expanduser().resolve() if raw is not None else None
        dl = Path(download_root).expanduser().resolve() if download_root is not None else None
        return cls(root=root, allow_download=allow_download, download_root=dl)


@dataclass
class RawSplits:
    """Undecoded-to-float arrays as read: images ``uint8 [N, C, H, W]``, labels ``int64 [N]``."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    provenance: str
    test_set: str = OFFICIAL_TEST_SET

    def validate(self, spec: DatasetSpec) -> None:
        """Raise ``ValueError`` if dtypes, shapes or label ranges do not match ``spec``."""
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.dtype != torch.uint8:
                raise ValueError(f"{split} images must be uint8, got {x.dtype}")
            if x.ndim != 4 or tuple(x.shape[1:]) != spec.shape:
                raise ValueError(f"{split} images must be [N, {', '.join(map(str, spec.shape))}], got {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"{split} labels must be int64 [{x.shape[0]}], got {y.dtype} {tuple(y.shape)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
                raise ValueError(
                    f"{split} labels must lie in 0..{spec.num_classes - 1}, got {int(y.min())}..{int(y.max())}"
                )


    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of the contents of both splits: the same data gives the same
        fingerprint on every machine and from every source, whatever its path or file times."""
        h = hashlib.sha256()
        for name in ("x_train", "y_train", "x_test", "y_test"):
            t = getattr(self, name).contiguous()
            h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            h.update(t.numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()[:16]


@dataclass
class LoadedDataset:
    """A dataset normalised on its device, with where it came from and how long loading took.

    ``test`` is ``None`` when only the training split was loaded: the process a method distils in
    never holds the test split. ``fingerprint`` is the content digest of both splits as read
    (:meth:`RawSplits.fingerprint`), part of every result's identity.
    """

    spec: DatasetSpec
    train: LabeledData
    test: LabeledData | None
    provenance: str
    test_set: str
    load_seconds: float
    from_cache: bool
    cache_path: Path | None = None
    fingerprint: str = ""


class SourceMiss(Exception):
    """A source cannot provide the dataset; the message says why (it ends up in the user's error)."""


@dataclass(frozen=True)
class Located:
    """A source that has found its files but not read them yet.

    ``fingerprint`` identifies the exact input (paths, sizes, modification times), so it keys the
    tensor cache; ``read`` does the actual (possibly slow) reading. ``cacheable=False`` skips the
    tensor cache (for data that is cheaper to regenerate than to load).
    """

    provenance: str
    fingerprint: str
    read: Callable[[], RawSplits]
    cacheable: bool = True


@dataclass(frozen=True)
class Source:
    """One way to obtain a dataset.

    ``find(sources)`` returns a :class:`Located` or raises :class:`SourceMiss` with the reason;
    ``how`` is one line telling the user how to provide the data this way.
    """

    name: str
    how: str
    find: Callable[[DataSources], Located]


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset: its fixed facts and how to read it.

    ``read(sources)`` reads uint8 arrays from the first source that works. Built-in entries give
    ``sources`` (tried in order, which also lets :func:`load_dataset` cache by input fingerprint)
    and get ``read`` derived from them; a plugin may instead pass only ``read``.
    """

    spec: DatasetSpec
    read: Callable[[DataSources], RawSplits] | None = None
    sources: tuple[Source, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.read is None:
            if not self.sources:
                raise ValueError(f"dataset {self.spec.name!r} needs either sources or a read function")
            object.__setattr__(self, "read", _read_first(self.spec, self.sources))

    @property
    def name(self) -> str:
        return self.spec.name


def _read_first(spec: DatasetSpec, sources: Sequence[Source]) -> Callable[[DataSources], RawSplits]:
    def read(data_sources: DataSources) -> RawSplits:
        failures: list[tuple[Source, str]] = []
        for source in sources:
            try:
                located = source.find(data_sources)
                raw = located.read()
                raw.validate(spec)
                return raw
            except SourceMiss as exc:
                failures.append((source, str(exc)))
            except Exception as exc:  # a found but unreadable source: say why, try the next
                failures.append((source, f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
        raise unavailable_error(spec, sources, failures)

    return read


def unavailable_error(
    spec: DatasetSpec, sources: Sequence[Source], failures: Sequence[tuple[Source, str]]
) -> DataUnavailableError:
    """The error that lists every way to provide the data and why each source failed."""
    ways = []
    for s in sources:
        if s.how not in ways:
            ways.append(s.how)
    lines = [f"dataset {spec.name!r} is not available from any source.", "Ways to provide it:"]
    lines += [f"  - {w}" for w in ways]
    lines.append("Why each source failed:")
    lines += [f"  - {s.name}: {reason}" for s, reason in failures]
    return DataUnavailableError("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# helpers shared by the source modules


def fingerprint_files(paths: Iterable[Path]) -> str:
    """A short hash of each file's absolute path, size and modification time (not its content)."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def files_under(path: Path) -> list[Path]:
    """Every regular file below ``path`` (or ``path`` itself if it is a file)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def images_to_nchw(x: np.ndarray | Tensor, channels: int) -> Tensor:
    """Whole-array conversion of ``[N,H,W]``, ``[N,H,W,C]`` or ``[N,C,H,W]`` uint8 to contiguous NCHW."""
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, Tensor) else x
    if t.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {t.dtype}")
    if t.ndim == 3:
        if channels != 1:
            raise ValueError(f"expected {channels}-channel images, got shape {tuple(t.shape)}")
        return t.unsqueeze(1).contiguous()
    if t.ndim != 4:
        raise ValueError(f"images must be 3-D or 4-D, got shape {tuple(t.shape)}")
    if t.shape[-1] == channels and t.shape[1] != channels:
        return t.permute(0, 3, 1, 2).contiguous()
    if t.shape[1] == channels:
        return t.contiguous()
    raise ValueError(f"cannot find {channels} channels in image array of shape {tuple(t.shape)}")


def labels_to_int64(y: np.ndarray | Tensor | Sequence[int]) -> Tensor:
    t = y if isinstance(y, Tensor) else torch.as_tensor(np.asarray(y))
    return t.reshape(-1).to(torch.int64).contiguous()
