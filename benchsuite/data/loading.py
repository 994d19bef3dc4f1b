"""Load a dataset: first working source, uint8 tensor cache, one normalisation pass on the device.

The first read of a source (decompressing npz, parsing IDX, decoding JPEGs) is saved as uint8
tensors to ``<cache_dir>/datasets/<name>-<key>.pt``, where ``key`` hashes the source's provenance
and its files' sizes and modification times; later loads map that file and only normalise
(``float32``, ``(x/255 - mean)/std``) on the target device.

On a CPU device the normalised float32 tensors are cached as well (``<name>-<key>-f32-<h>.pt``,
for datasets up to :data:`NORMALISED_CACHE_MAX_BYTES`) and memory-mapped on later loads: the
uint8 -> float32 pass into fresh memory is what a CPU spends the time on (0.2-0.9 s for CIFAR-10 on
2 busy cores), while mapping a cached file takes milliseconds and shares pages between processes.
Set ``NORMALISED_CACHE_MAX_BYTES = 0`` to keep only the uint8 cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

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
CACHE_FORMAT = 1
#: Largest dataset (float32 bytes, train + test) that gets a normalised CPU cache besides the uint8 one.
NORMALISED_CACHE_MAX_BYTES = 1536 * 2**20
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def cache_path(cache_dir: Path, spec: DatasetSpec, located: Located) -> Path:
    key = hashlib.sha256(
        f"{CACHE_FORMAT}\0{spec.name}\0{located.provenance}\0{located.fingerprint}".encode()
    ).hexdigest()[:16]
    return Path(cache_dir) / "datasets" / f"{spec.name}-{key}.pt"


def save_cache(path: Path, raw: RawSplits) -> bool:
    """Write atomically (unique temporary name, then rename); a failure only costs the next load time."""
    payload = {k: getattr(raw, k).contiguous() for k in _ARRAYS}
    payload.update(format=CACHE_FORMAT, provenance=raw.provenance, test_set=raw.test_set)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        log.warning("could not write dataset cache %s: %s", path, exc)
        tmp.unlink(missing_ok=True)
        return False


def load_cache(path: Path) -> RawSplits | None:
    """The cached arrays (memory-mapped), or ``None`` if the file is unreadable or of another format."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if payload.get("format") != CACHE_FORMAT:
            return None
        return RawSplits(
            *(payload[k] for k in _ARRAYS), provenance=str(payload["provenance"]), test_set=str(payload["test_set"])
        )
    except Exception as exc:  # a truncated or foreign file: re-read the source and overwrite it
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


def normalised_cache_path(raw_cache: Path, spec: DatasetSpec) -> Path:
    """Where the float32 normalised copy of a cached dataset goes (keyed by mean and std too)."""
    h = hashlib.sha256(f"{spec.mean}\0{spec.std}".encode()).hexdigest()[:8]
    return raw_cache.with_name(f"{raw_cache.stem}-f32-{h}.pt")


@dataclass
class _Normalised:
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    provenance: str
    test_set: str


def _save_normalised(path: Path, n: _Normalised) -> None:
    payload = dataclasses.asdict(n) | {"format": CACHE_FORMAT}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write normalised dataset cache %s: %s", path, exc)
        tmp.unlink(missing_ok=True)


def _load_normalised(path: Path, spec: DatasetSpec) -> _Normalised | None:
    try:
        p = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if p.get("format") != CACHE_FORMAT:
            return None
        n = _Normalised(**{f.name: p[f.name] for f in dataclasses.fields(_Normalised)})
        for x, y in ((n.x_train, n.y_train), (n.x_test, n.y_test)):
            if x.dtype != torch.float32 or tuple(x.shape[1:]) != spec.shape or y.shape != (x.shape[0],):
                return None
        return n
    except Exception as exc:
        log.warning("ignoring unreadable normalised dataset cache %s: %s", path, exc)
        return None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@dataclass
class _Hit:
    raw: RawSplits | None = None  # uint8 arrays, or
    normalised: _Normalised | None = None  # the CPU float32 cache
    from_cache: bool = False
    path: Path | None = None  # the cache file used or written
    normalised_path: Path | None = None  # where a CPU float32 copy may be written


def _read_sources(
    spec: DatasetSpec, sources_list: tuple[Source, ...], sources: DataSources, cache_dir: Path, use_normalised: bool
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
        path = cache_path(cache_dir, spec, located) if located.cacheable else None
        npath = normalised_cache_path(path, spec) if path is not None and use_normalised else None
        if npath is not None and npath.is_file():
            normalised = _load_normalised(npath, spec)
            if normalised is not None:
                return _Hit(normalised=normalised, from_cache=True, path=npath)
        if path is not None and path.is_file():
            raw = load_cache(path)
            if raw is not None:
                try:
                    raw.validate(spec)
                    return _Hit(raw=raw, from_cache=True, path=path, normalised_path=npath)
                except ValueError as exc:
                    log.warning("ignoring dataset cache %s: %s", path, exc)
        try:
            raw = located.read()
            raw.validate(spec)
        except Exception as exc:
            failures.append((source, f"{located.provenance}: {_one_line(exc)}"))
            continue
        log.info("read %s from %s", spec.name, raw.provenance)
        if path is not None and not save_cache(path, raw):
            path = npath = None
        return _Hit(raw=raw, from_cache=False, path=path, normalised_path=npath)
    raise unavailable_error(spec, sources_list, failures)


def load_dataset(
    entry: DatasetEntry,
    sources: DataSources,
    cache_dir: Path,
    device: torch.device,
    train_limit_per_class: int | None = None,
) -> LoadedDataset:
    """Read ``entry`` from the first source that works (or its cache) and normalise it on ``device``.

    ``train_limit_per_class`` keeps the first ``k`` training images of each class (deterministic).
    Raises :class:`~benchsuite.errors.DataUnavailableError` listing every way to provide the data.

    On a CPU device, datasets up to :data:`NORMALISED_CACHE_MAX_BYTES` also get a float32 normalised
    cache, memory-mapped on later loads: converting uint8 to float32 in fresh memory is what costs
    time on a CPU (about 0.4 s for CIFAR-10 on 2 cores), mapping the file costs almost nothing.
    """
    start = time.perf_counter()
    spec = entry.spec
    cache_dir = Path(cache_dir)
    device = torch.device(device)
    if train_limit_per_class is not None and train_limit_per_class < 1:
        raise ValueError(f"train_limit_per_class must be >= 1, got {train_limit_per_class}")
    if sources.download_root is None:
        sources = dataclasses.replace(sources, download_root=cache_dir / "downloads")

    if entry.sources:
        hit = _read_sources(spec, entry.sources, sources, cache_dir, use_normalised=device.type == "cpu")
    else:  # a plugin entry with only a read function: no fingerprint to cache by
        assert entry.read is not None
        hit = _Hit(raw=entry.read(sources))
        hit.raw.validate(spec)  # type: ignore[union-attr]

    if hit.normalised is not None:
        n = hit.normalised
        x_train, y_train, x_test, y_test = n.x_train, n.y_train, n.x_test, n.y_test
        provenance, test_set = n.provenance, n.test_set
        if train_limit_per_class is not None:
            keep = first_per_class(y_train, train_limit_per_class, spec.num_classes)
            x_train, y_train = x_train[keep], y_train[keep]
    else:
        raw = hit.raw
        assert raw is not None
        provenance, test_set = raw.provenance, raw.test_set
        x_train_u8, y_train = raw.x_train, raw.y_train
        if train_limit_per_class is not None:
            keep = first_per_class(y_train, train_limit_per_class, spec.num_classes)
            x_train_u8, y_train = x_train_u8[keep], y_train[keep]
        x_train = normalise(x_train_u8, spec, device)
        x_test = normalise(raw.x_test, spec, device)
        y_test = raw.y_test
        float_bytes = 4 * (raw.x_train.numel() + raw.x_test.numel())
        if hit.normalised_path is not None and train_limit_per_class is None and float_bytes <= NORMALISED_CACHE_MAX_BYTES:
            _save_normalised(hit.normalised_path, _Normalised(x_train, y_train, x_test, y_test, provenance, test_set))

    train = LabeledData(x_train.to(device), y_train.to(device, copy=True), spec.num_classes, spec)
    test = LabeledData(x_test.to(device), y_test.to(device, copy=True), spec.num_classes, spec)
    seconds = time.perf_counter() - start
    log.info(
        "%s: %d train / %d test from %s%s in %.2fs",
        spec.name, len(train), len(test), provenance, " (cache)" if hit.from_cache else "", seconds,
    )  # fmt: skip
    return LoadedDataset(
        spec=spec,
        train=train,
        test=test,
        provenance=provenance,
        test_set=test_set,
        load_seconds=seconds,
        from_cache=hit.from_cache,
        cache_path=hit.path,
    )


__all__ = [
    "load_dataset", "normalise", "first_per_class", "cache_path", "normalised_cache_path", "save_cache", "load_cache",
    "CACHE_FORMAT", "NORMALISED_CACHE_MAX_BYTES",
]  # fmt: skip
