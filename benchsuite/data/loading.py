"""Load a dataset: first working source, uint8 tensor cache per split, one normalisation pass on
the device.

The first read of a source (decompressing npz, parsing IDX, decoding JPEGs) is saved as uint8
tensors, one file per split, ``<cache_dir>/datasets/<name>-<key>-{train,test}.pt``, with a small
``<name>-<key>.json`` beside them naming the provenance and the content fingerprint. ``key``
hashes the source's provenance and its files' sizes and modification times. Later loads map the
files of the splits they ask for and only normalise (``float32``, ``(x/255 - mean)/std``) on the
target device. The splits are separate files so that a process can load the training split
without the test split ever entering its memory: a method distils in such a process.

On a CPU device the normalised float32 tensors are cached as well (``<name>-<key>-f32-<h>-<split>.pt``,
for datasets up to :data:`NORMALISED_CACHE_MAX_BYTES`) and memory-mapped on later loads: the
uint8 -> float32 pass into fresh memory is what a CPU spends the time on (0.2-0.9 s for CIFAR-10 on
2 busy cores), while mapping a cached file takes milliseconds and shares pages between processes.
Mapped files are private (copy-on-write): a write into a loaded tensor never reaches the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import Tensor

from benchsuite import atomic
from benchsuite.api import LabeledData
from benchsuite.data.base import (
    DataSources,
    DatasetEntry,
    Located,
    LoadedDataset,
    RawSplits,
    Source,
    SourceMiss,
    unavailable_error,
)
from benchsuite.data.spec import DatasetSpec

log = logging.getLogger("benchsuite.data")

#: Bump when the cached payload changes meaning, so stale caches are ignored rather than misread.
#: 2: one file per split and a JSON sidecar with the content fingerprint.
CACHE_FORMAT = 2
#: Largest dataset (float32 bytes, train + test) that gets a normalised CPU cache besides the uint8 one.
NORMALISED_CACHE_MAX_BYTES = 1536 * 2**20
SPLITS = ("train", "test")
#: The subfolder of the cache folder that holds datasets; methods are given another one.
DATASETS_DIR = "datasets"


def cache_path(cache_dir: Path, spec: DatasetSpec, located: Located) -> Path:
    """The cache's base path (its JSON sidecar); each split's tensors sit beside it."""
    key = hashlib.sha256(
        f"{CACHE_FORMAT}\0{spec.name}\0{located.provenance}\0{located.fingerprint}".encode()
    ).hexdigest()[:16]
    return Path(cache_dir) / DATASETS_DIR / f"{spec.name}-{key}.json"


def split_path(base: Path, split: str, normalised_tag: str = "") -> Path:
    stem = base.with_suffix("").name
    return base.with_name(f"{stem}{normalised_tag}-{split}.pt")


def normalised_tag(spec: DatasetSpec) -> str:
    """The part of a normalised cache's name that keys it by the spec's mean and std."""
    return "-f32-" + hashlib.sha256(f"{spec.mean}\0{spec.std}".encode()).hexdigest()[:8]


def _atomic_torch_save(payload: dict, path: Path) -> bool:
    """Write atomically; a failure only costs the next load time (so it is a warning)."""
    return _quietly(lambda: atomic.torch_save(payload, path), path)


def _quietly(write: Callable[[], None], path: Path) -> bool:
    try:
        write()
        return True
    except OSError as exc:
        log.warning("could not write dataset cache %s: %s", path, exc)
        return False


def _arrays(raw: RawSplits, split: str) -> tuple[Tensor, Tensor]:
    return getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")


def save_cache(base: Path, raw: RawSplits, fingerprint: str) -> bool:
    """The uint8 split files, then the sidecar (written last: it is what marks the cache whole)."""
    for split in SPLITS:
        x, y = _arrays(raw, split)
        if not _atomic_torch_save({"x": x.contiguous(), "y": y.contiguous(), "format": CACHE_FORMAT,
                                   "fingerprint": fingerprint}, split_path(base, split)):
            return False
    meta = {"format": CACHE_FORMAT, "provenance": raw.provenance, "test_set": raw.test_set,
            "fingerprint": fingerprint, "float_bytes": 4 * (raw.x_train.numel() + raw.x_test.numel())}
    return _quietly(lambda: atomic.write_text(base, json.dumps(meta)), base)


def read_cache_meta(base: Path) -> dict | None:
    """The sidecar of a whole cache (format, provenance, test set, fingerprint), or ``None``."""
    try:
        meta = json.loads(base.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or not meta.get("fingerprint"):
        return None
    return meta


def _load_split(path: Path, spec: DatasetSpec, fingerprint: str, dtype: torch.dtype) -> tuple[Tensor, Tensor] | None:
    """One split's ``(x, y)`` from a cache file (memory-mapped, private), or ``None`` if it is
    missing, unreadable, of another format or fingerprint, or not of the spec's shape."""
    if not path.is_file():
        return None
    try:
        p = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if p.get("format") != CACHE_FORMAT or p.get("fingerprint") != fingerprint:
            return None
        x, y = p["x"], p["y"]
        if x.dtype != dtype or tuple(x.shape[1:]) != spec.shape or y.shape != (x.shape[0],) or y.dtype != torch.int64:
            return None
        return x, y
    except Exception as exc:  # a truncated or foreign file: read the source again and overwrite it
        log.warning("ignoring unreadable dataset cache %s: %s", path, exc)
        return None


def first_per_class(labels: Tensor, k: int, num_classes: int) -> Tensor:
    """Indices of the first ``k`` samples of each class, in their original order (deterministic)."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(labels)) - starts[labels[order]]
    return torch.sort(order[rank < k]).values


def normalise(x: Tensor, spec: DatasetSpec, device: torch.device) -> Tensor:
    """uint8 ``[N,C,H,W]`` -> float32 ``(x/255 - mean)/std`` on ``device`` (moved as uint8: 4x less traffic)."""
    x = x.to(device)
    std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    # One conversion, then two in-place passes: (x/255 - mean)/std == x * (1/(255 std)) - mean/std.
    # (A mixed-dtype torch.mul(uint8, float) measured 2-3x slower than converting first.)
    return x.to(torch.float32).mul_(1.0 / (255.0 * std)).sub_(mean / std)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@dataclass
class _Hit:
    """What the sources gave for the splits asked for: uint8 or (CPU cache) float32 arrays."""

    arrays: dict[str, tuple[Tensor, Tensor]]
    normalised: set[str]  # splits whose arrays are already the float32 normalised ones
    provenance: str
    test_set: str
    fingerprint: str
    from_cache: bool = False
    base: Path | None = None  # the cache's sidecar, when the source is cacheable
    float_bytes: int = 0  # float32 size of both splits (for the normalised-cache cap)


def _from_cache(base: Path, spec: DatasetSpec, splits: Iterable[str], use_normalised: bool) -> _Hit | None:
    meta = read_cache_meta(base)
    if meta is None:
        return None
    tag = normalised_tag(spec)
    arrays: dict[str, tuple[Tensor, Tensor]] = {}
    normalised: set[str] = set()
    for split in splits:
        hit = _load_split(split_path(base, split, tag), spec, meta["fingerprint"], torch.float32) if use_normalised else None
        if hit is not None:
            normalised.add(split)
        else:
            hit = _load_split(split_path(base, split), spec, meta["fingerprint"], torch.uint8)
        if hit is None:
            return None
        arrays[split] = hit
    return _Hit(arrays, normalised, str(meta["provenance"]), str(meta["test_set"]), str(meta["fingerprint"]),
                from_cache=True, base=base, float_bytes=int(meta.get("float_bytes", 0)))


def _from_raw(raw: RawSplits, splits: Iterable[str], base: Path | None) -> _Hit:
    fingerprint = raw.fingerprint()
    if base is not None and not save_cache(base, raw, fingerprint):
        base = None
    float_bytes = 4 * (raw.x_train.numel() + raw.x_test.numel())
    # Only the splits asked for are kept; the others are dropped with ``raw`` when this returns.
    return _Hit({s: _arrays(raw, s) for s in splits}, set(), raw.provenance, raw.test_set, fingerprint,
                base=base, float_bytes=float_bytes)


def _read_sources(
    spec: DatasetSpec, sources_list: tuple[Source, ...], sources: DataSources, cache_dir: Path,
    splits: tuple[str, ...], use_normalised: bool,
) -> _Hit:
    failures: list[tuple[Source, str]] = []
    for source in sources_list:
        try:
            located = source.find(sources)
        except SourceMiss as exc:
            failures.append((source, str(exc)))
            continue
        except Exception as exc:
            failures.append((source, _one_line(exc)))
            continue
        base = cache_path(cache_dir, spec, located) if located.cacheable else None
        if base is not None:
            cached = _from_cache(base, spec, splits, use_normalised)
            if cached is not None:
                return cached
        try:
            raw = located.read()
            raw.validate(spec)
        except Exception as exc:
            failures.append((source, f"{located.provenance}: {_one_line(exc)}"))
            continue
        log.info("read %s from %s", spec.name, raw.provenance)
        return _from_raw(raw, splits, base)
    raise unavailable_error(spec, sources_list, failures)


def _locate(entry: DatasetEntry, sources: DataSources, cache_dir: Path, splits: tuple[str, ...],
            use_normalised: bool) -> _Hit:
    if entry.sources:
        return _read_sources(entry.spec, entry.sources, sources, cache_dir, splits, use_normalised)
    # a plugin entry with only a read function: no file fingerprint to cache by
    assert entry.read is not None
    raw = entry.read(sources)
    raw.validate(entry.spec)
    return _from_raw(raw, splits, None)


def _check_splits(splits: Iterable[str]) -> tuple[str, ...]:
    splits = tuple(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be a non-empty subset of {SPLITS}, got {splits}")
    return splits


def _with_download_root(sources: DataSources, cache_dir: Path) -> DataSources:
    if sources.download_root is None:
        return dataclasses.replace(sources, download_root=Path(cache_dir) / "downloads")
    return sources


def load_dataset(
    entry: DatasetEntry,
    sources: DataSources,
    cache_dir: Path,
    device: torch.device,
    train_limit_per_class: int | None = None,
    splits: Iterable[str] = SPLITS,
) -> LoadedDataset:
    """Read ``entry`` from the first source that works (or its cache) and normalise it on ``device``.

    ``train_limit_per_class`` keeps the first ``k`` training images of each class (deterministic).
    ``splits=("train",)`` loads the training split alone (``test`` is then ``None``), without
    reading the test split's cache file. Raises :class:`~benchsuite.errors.DataUnavailableError`
    listing every way to provide the data.

    On a CPU device, datasets up to :data:`NORMALISED_CACHE_MAX_BYTES` also get a float32 normalised
    cache, memory-mapped on later loads: converting uint8 to float32 in fresh memory is what costs
    time on a CPU (about 0.4 s for CIFAR-10 on 2 cores), mapping the file costs almost nothing.
    """
    start = time.perf_counter()
    spec = entry.spec
    cache_dir = Path(cache_dir)
    device = torch.device(device)
    splits = _check_splits(splits)
    if train_limit_per_class is not None and train_limit_per_class < 1:
        raise ValueError(f"train_limit_per_class must be >= 1, got {train_limit_per_class}")
    sources = _with_download_root(sources, cache_dir)
    hit = _locate(entry, sources, cache_dir, splits, use_normalised=device.type == "cpu")

    out: dict[str, LabeledData] = {}
    for split in splits:
        x, y = hit.arrays[split]
        if split == "train" and train_limit_per_class is not None:
            keep = first_per_class(y, train_limit_per_class, spec.num_classes)
            x, y = x[keep], y[keep]
        if split not in hit.normalised:
            x = normalise(x, spec, device)
            whole = not (split == "train" and train_limit_per_class is not None)
            if (hit.base is not None and device.type == "cpu" and whole and hit.float_bytes
                    and hit.float_bytes <= NORMALISED_CACHE_MAX_BYTES):
                _atomic_torch_save({"x": x, "y": y, "format": CACHE_FORMAT, "fingerprint": hit.fingerprint},
                                   split_path(hit.base, split, normalised_tag(spec)))
        out[split] = LabeledData(x.to(device), y.to(device, copy=True), spec.num_classes, spec)
    hit.arrays.clear()
    seconds = time.perf_counter() - start
    sizes = " / ".join(f"{len(out[s])} {s}" for s in splits)
    log.info("%s: %s from %s%s in %.2fs", spec.name, sizes, hit.provenance, " (cache)" if hit.from_cache else "",
             seconds)
    return LoadedDataset(
        spec=spec, train=out.get("train"), test=out.get("test"), provenance=hit.provenance, test_set=hit.test_set,
        load_seconds=seconds, from_cache=hit.from_cache, cache_path=hit.base, fingerprint=hit.fingerprint,
    )  # type: ignore[arg-type]


def dataset_fingerprint(entry: DatasetEntry, sources: DataSources, cache_dir: Path) -> str:
    """The content fingerprint of ``entry`` as the first working source gives it: read from the
    cache's sidecar when the dataset is cached (milliseconds), else by reading the source (which
    also writes the cache)."""
    return _locate(entry, _with_download_root(sources, cache_dir), Path(cache_dir), ("train",),
                   use_normalised=False).fingerprint


__all__ = [
    "load_dataset", "dataset_fingerprint", "normalise", "first_per_class", "cache_path", "split_path",
    "save_cache", "read_cache_meta", "CACHE_FORMAT", "NORMALISED_CACHE_MAX_BYTES", "SPLITS", "DATASETS_DIR",
]  # fmt: skip
