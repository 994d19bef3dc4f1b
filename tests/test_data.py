"""benchsuite.data: specs, sources, the tensor cache, and the real offline copies in shared/data."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchsuite.data import (
    BUILTIN_DATASETS,
    DataSources,
    DatasetEntry,
    DatasetSpec,
    RawSplits,
    builtin_entry,
    load_dataset,
    parse_idx,
    read_idx,
)
from benchsuite.data import idx_source
from benchsuite.data.loading import first_per_class, normalise
from benchsuite.data.synthetic import make_synthetic
from benchsuite.errors import DataUnavailableError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCHSUITE_TEST_DATA") or REPO.parent / "shared" / "data")
FMNIST_NPZ = SHARED / "fashion_mnist" / "fashion_mnist.npz"
CIFAR10_DIR = SHARED / "cifar10"
CPU = torch.device("cpu")

needs_fmnist = pytest.mark.skipif(not FMNIST_NPZ.is_file(), reason=f"no Fashion-MNIST copy at {FMNIST_NPZ}")
needs_cifar10 = pytest.mark.skipif(
    not (CIFAR10_DIR / "cifar10_test_jpeg_q75.npz").is_file(), reason=f"no CIFAR-10 copy in {CIFAR10_DIR}"
)


@pytest.fixture
def big_cache(tmp_path):
    """A cache folder removed after the test: real-data caches are ~1 GB and pytest keeps old tmp dirs."""
    path = tmp_path / "cache"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def no_debian(monkeypatch):
    """Hide any installed dataset-fashion-mnist package so results do not depend on the machine."""
    monkeypatch.setattr(idx_source, "DEBIAN_FASHION_MNIST_DIRS", ())
    monkeypatch.setattr(idx_source, "debian_package_dirs", lambda package: [])


def _idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    arr = np.asarray(arr)
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def _write_mnist_like(folder: Path, n_train: int, n_test: int, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        data = _idx_bytes(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


# --- specs --------------------------------------------------------------------------------------


def test_builtin_specs():
    names = [e.spec.name for e in BUILTIN_DATASETS]
    assert names == ["mnist", "fashionmnist", "svhn", "cifar10", "cifar100", "tinyimagenet", "synthetic"]
    assert builtin_entry("fashion_mnist").spec.name == builtin_entry("FMNIST").spec.name == "fashionmnist"
    with pytest.raises(UnknownNameError):
        builtin_entry("imagenet-1k")
    specs = {e.spec.name: e.spec for e in BUILTIN_DATASETS}
    assert specs["cifar10"].std == (0.2023, 0.1994, 0.2010)
    assert specs["fashionmnist"].mean == (0.2861,) and specs["fashionmnist"].std == (0.3530,)
    assert specs["mnist"].digits and specs["svhn"].digits and not specs["cifar10"].digits
    assert specs["cifar10"].class_names[0] == "airplane" and specs["cifar100"].num_classes == 100
    for spec in specs.values():
        assert len(spec.mean) == len(spec.std) == spec.channels
        assert not spec.class_names or len(spec.class_names) == spec.num_classes


# --- synthetic ----------------------------------------------------------------------------------


def test_synthetic_loads_deterministically(tmp_path):
    rng_before = torch.get_rng_state()
    entry = builtin_entry("synthetic")
    a = load_dataset(entry, DataSources(root=None, allow_download=False), tmp_path, CPU)
    b = load_dataset(entry, DataSources(root=None, allow_download=False), tmp_path / "other", CPU)
    assert torch.equal(torch.get_rng_state(), rng_before), "synthetic data must not touch the global RNG"

    assert a.train.images.shape == (500, 3, 16, 16) and a.test.images.shape == (200, 3, 16, 16)
    assert a.train.images.dtype == torch.float32 and a.train.labels.dtype == torch.int64
    assert a.train.class_counts() == [50] * 10 and a.test.class_counts() == [20] * 10
    assert a.train.images.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (a.train.images.std(dim=(0, 2, 3)) - 1).abs().max() < 0.1
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert a.provenance.startswith("synthetic:") and a.test_set == "official"

    # normalisation is exactly (x/255 - mean)/std of the generated uint8 images
    raw = make_synthetic()
    mean = torch.tensor(entry.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(entry.spec.std).view(1, 3, 1, 1)
    torch.testing.assert_close(a.train.images, (raw.x_train.float() / 255 - mean) / std)


def test_train_limit_per_class_takes_first_k(tmp_path):
    entry = builtin_entry("synthetic")
    full = load_dataset(entry, DataSources(root=None), tmp_path, CPU)
    few = load_dataset(entry, DataSources(root=None), tmp_path, CPU, train_limit_per_class=3)
    assert few.train.class_counts() == [3] * 10 and len(few.test) == 200
    keep = first_per_class(full.train.labels, 3, 10)
    assert torch.equal(few.train.images, full.train.images[keep])
    labels = torch.tensor([2, 0, 2, 1, 0, 2, 2])
    assert first_per_class(labels, 2, 3).tolist() == [0, 1, 2, 3, 4]


def test_synthetic_is_learnable(tmp_path):
    data = load_dataset(builtin_entry("synthetic"), DataSources(root=None), tmp_path, CPU)
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
        )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = data.train.images, data.train.labels
    for _ in range(5):
        for idx in torch.randperm(len(x), generator=g).split(50):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        acc = (net(data.test.images).argmax(1) == data.test.labels).float().mean().item()
    assert acc > 0.5, f"a small ConvNet reached only {acc:.2f} test accuracy (chance 0.1)"


# --- IDX / Debian / torchvision layout ------------------------------------------------------------


def test_idx_parser(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "tiny-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(images)))
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8 and np.array_equal(out, images)

    plain = tmp_path / "labels-idx1-ubyte"
    plain.write_bytes(_idx_bytes(np.array([7, 0, 9], dtype=np.uint8)))
    assert read_idx(plain).tolist() == [7, 0, 9]

    ints = np.array([[1, -2], [70000, 3]], dtype=">i4")
    got = parse_idx(_idx_bytes(ints))
    assert got.dtype == np.int32 and got.tolist() == [[1, -2], [70000, 3]]

    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="payload"):
        parse_idx(_idx_bytes(images)[:-1])


def test_fashionmnist_from_debian_package_folder(tmp_path, monkeypatch):
    folder = tmp_path / "usr-share-datasets-fashion-mnist"
    arrays = _write_mnist_like(folder, n_train=30, n_test=10, gz=True)
    monkeypatch.setattr(idx_source, "DEBIAN_FASHION_MNIST_DIRS", (tmp_path / "absent", folder))
    monkeypatch.setattr(idx_source, "debian_package_dirs", lambda package: [])
    data = load_dataset(builtin_entry("fashionmnist"), DataSources(root=None, allow_download=False), tmp_path / "c", CPU)
    assert data.provenance == f"debian:{folder}"
    assert data.train.images.shape == (30, 1, 28, 28) and len(data.test) == 10
    expected = normalise(torch.from_numpy(arrays["train-images-idx3-ubyte"]).unsqueeze(1), data.spec, CPU)
    assert torch.equal(data.train.images, expected)
    assert data.train.labels.tolist() == (np.arange(30) % 10).tolist()


def test_torchvision_idx_layout_and_cache_invalidation(tmp_path, no_debian):
    root = tmp_path / "root"
    raw_dir = root / "MNIST" / "raw"
    _write_mnist_like(raw_dir, n_train=20, n_test=10, gz=False, seed=1)
    sources = DataSources(root=root, allow_download=False)
    entry = builtin_entry("mnist")
    first = load_dataset(entry, sources, tmp_path / "c", CPU)
    again = load_dataset(entry, sources, tmp_path / "c", CPU)
    assert first.provenance == f"idx:{raw_dir.resolve()}" and not first.from_cache and again.from_cache
    assert torch.equal(first.train.images, again.train.images)

    # Changing a source file (size/mtime) changes the cache key: the new data is read, not the old cache.
    time.sleep(0.01)
    _write_mnist_like(raw_dir, n_train=20, n_test=10, gz=False, seed=2)
    changed = load_dataset(entry, sources, tmp_path / "c", CPU)
    assert not changed.from_cache and not torch.equal(changed.train.images, first.train.images)


def test_torchvision_arrays_are_taken_whole(tmp_path, monkeypatch):
    """CIFAR keeps NHWC numpy + list targets, SVHN NCHW numpy + .labels, MNIST NHW tensors."""
    from types import SimpleNamespace

    from benchsuite.data import torchvision_source

    rng = np.random.default_rng(0)
    fakes = {
        "CIFAR10": lambda n: SimpleNamespace(
            data=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), targets=[i % 10 for i in range(n)]
        ),
        "SVHN": lambda n: SimpleNamespace(
            data=rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), labels=np.arange(n) % 10
        ),
        "MNIST": lambda n: SimpleNamespace(
            data=torch.zeros(n, 28, 28, dtype=torch.uint8), targets=torch.arange(n) % 10
        ),
    }
    made = []

    def fake_make(cls_name, root, train, download):
        made.append((cls_name, train, download))
        return fakes[cls_name](6 if train else 4)

    monkeypatch.setattr(torchvision_source, "_make", fake_make)
    for cls_name, channels in (("CIFAR10", 3), ("SVHN", 3), ("MNIST", 1)):
        raw = torchvision_source.read_torchvision(cls_name, tmp_path, channels, download=False)
        size = 28 if channels == 1 else 32
        assert raw.x_train.shape == (6, channels, size, size) and raw.x_test.shape == (4, channels, size, size)
        assert raw.y_train.dtype == torch.int64 and raw.y_train.tolist() == [0, 1, 2, 3, 4, 5]
        assert raw.provenance == f"torchvision:{tmp_path}"
    cifar = fakes["CIFAR10"](1)
    assert torch.equal(
        torchvision_source._arrays(cifar, 3)[0][0], torch.from_numpy(cifar.data[0]).permute(2, 0, 1)
    )
    assert made[0] == ("CIFAR10", True, False)


def test_missing_data_lists_every_way_to_provide_it(tmp_path, no_debian):
    sources = DataSources(root=tmp_path / "does-not-exist", allow_download=False)
    with pytest.raises(DataUnavailableError) as info:
        load_dataset(builtin_entry("fashionmnist"), sources, tmp_path / "c", CPU)
    msg = str(info.value)
    for needle in (
        "--data-root",
        "BENCHSUITE_DATA",
        "fashion_mnist/fashion_mnist.npz",
        "FashionMNIST/raw",
        "apt-get install dataset-fashion-mnist",
        "internet",
        "downloads are disabled",
        "does-not-exist",
    ):
        assert needle in msg, f"{needle!r} missing from:\n{msg}"

    with pytest.raises(DataUnavailableError, match=r"cifar10_train_\{0\.\.4\}\.npz"):
        load_dataset(builtin_entry("cifar10"), DataSources(root=None, allow_download=False), tmp_path / "c", CPU)
    with pytest.raises(DataUnavailableError, match="tiny-imagenet-200"):
        builtin_entry("tinyimagenet").read(DataSources(root=None, allow_download=False))


def test_tinyimagenet_folder_layout(tmp_path):
    from PIL import Image

    base = tmp_path / "root" / "tiny-imagenet-200"
    wnids = [f"n{k:08d}" for k in range(200)]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")  # file order is not class order
    for k, w in enumerate(wnids[:200]):
        folder = base / "train" / w / "images"
        folder.mkdir(parents=True)
        Image.new("RGB", (64, 64), (k, 0, 255 - k)).save(folder / f"{w}_0.JPEG")
    annotations = []
    for i, k in enumerate((5, 199, 0)):
        Image.new("L", (64, 64), 128).save(base / "val" / "images" / f"val_{i}.JPEG")  # greyscale -> RGB
        annotations.append(f"val_{i}.JPEG\t{wnids[k]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")

    data = load_dataset(builtin_entry("tinyimagenet"), DataSources(root=tmp_path / "root"), tmp_path / "c", CPU)
    assert data.train.images.shape == (200, 3, 64, 64) and data.test.images.shape == (3, 3, 64, 64)
    assert data.train.labels.tolist() == list(range(200)) and data.test.labels.tolist() == [5, 199, 0]
    assert data.provenance == f"folder:{base.resolve()}"
    again = load_dataset(builtin_entry("tinyimagenet"), DataSources(root=tmp_path / "root"), tmp_path / "c", CPU)
    assert again.from_cache and torch.equal(again.train.images, data.train.images)


def test_plugin_entry_with_only_a_read_function(tmp_path):
    spec = DatasetSpec(name="tiny", channels=1, image_size=2, num_classes=2, mean=(0.5,), std=(0.5,))
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 1, 2, 2).contiguous()
    y = torch.tensor([0, 1])
    entry = DatasetEntry(spec, read=lambda ds: RawSplits(x, y, x, y, provenance="plugin:tiny"))
    data = load_dataset(entry, DataSources(root=None), tmp_path, CPU)
    assert not data.from_cache and data.provenance == "plugin:tiny"
    assert data.train.images.flatten().tolist() == [-1.0] * 4 + [1.0] * 4


# --- the real offline copies ------------------------------------------------------------------------


@needs_fmnist
def test_fashionmnist_from_shared_folder(big_cache):
    tmp_path = big_cache
    entry = builtin_entry("fashionmnist")
    sources = DataSources(root=SHARED, allow_download=False)
    first = load_dataset(entry, sources, tmp_path, CPU)
    assert not first.from_cache
    assert first.provenance == f"npz:{FMNIST_NPZ.resolve()}" and first.test_set == "official"
    assert first.train.images.shape == (60000, 1, 28, 28) and first.test.images.shape == (10000, 1, 28, 28)
    assert first.train.class_counts() == [6000] * 10 and first.test.class_counts() == [1000] * 10
    assert abs(first.train.images.mean().item()) < 0.01
    assert abs(first.train.images.std().item() - 1) < 0.01

    start = time.perf_counter()
    second = load_dataset(entry, sources, tmp_path, CPU)
    wall = time.perf_counter() - start
    assert second.from_cache and second.load_seconds < 1.0 and wall < 1.0, (second.load_seconds, wall)
    assert torch.equal(second.train.images, first.train.images)
    assert torch.equal(second.test.labels, first.test.labels)

    few = load_dataset(entry, sources, tmp_path, CPU, train_limit_per_class=10)
    assert few.from_cache and few.train.class_counts() == [10] * 10 and len(few.test) == 10000


@needs_cifar10
def test_cifar10_from_shared_folder(big_cache):
    tmp_path = big_cache
    entry = builtin_entry("cifar10")
    sources = DataSources(root=SHARED, allow_download=False)
    data = load_dataset(entry, sources, tmp_path, CPU)
    assert len(data.train) == 50000 and len(data.test) == 10000
    assert data.train.images.shape[1:] == (3, 32, 32)
    assert data.train.class_counts() == [5000] * 10 and data.test.class_counts() == [1000] * 10
    assert "1000 exact + 9000 JPEG" in data.test_set
    assert data.provenance == f"npz:{CIFAR10_DIR.resolve()}"

    with np.load(CIFAR10_DIR / "cifar10_test_exact_first1000.npz") as z:
        exact_x, exact_y = z["x_test"], z["y_test"]
    with np.load(CIFAR10_DIR / "cifar10_test_jpeg_q75.npz") as z:
        jpeg_x1000, jpeg_y = z["x_test"][1000], z["y_test"]

    def norm(img_hwc: np.ndarray) -> torch.Tensor:
        return normalise(torch.from_numpy(img_hwc).permute(2, 0, 1).unsqueeze(0), data.spec, CPU)[0]

    assert torch.equal(data.test.images[0], norm(exact_x[0]))
    assert torch.equal(data.test.images[999], norm(exact_x[999]))
    assert torch.equal(data.test.images[1000], norm(jpeg_x1000))
    assert data.test.labels[:1000].tolist() == exact_y.astype(int).tolist()
    assert data.test.labels[1000:].tolist() == jpeg_y[1000:].astype(int).tolist()

    start = time.perf_counter()
    again = load_dataset(entry, sources, tmp_path, CPU)
    assert again.from_cache and time.perf_counter() - start < 1.0
    assert again.test_set == data.test_set and torch.equal(again.test.images[:5], data.test.images[:5])


def test_a_write_into_a_loaded_split_never_reaches_the_cache(tmp_path, no_debian):
    """Cached splits are mapped copy-on-write: a method that writes into the images it was given
    changes its own copy, not the file the next cell loads."""
    root = tmp_path / "root"
    _write_mnist_like(root / "MNIST" / "raw", n_train=20, n_test=10, gz=False, seed=2)
    sources = DataSources(root=root, allow_download=False)
    entry = builtin_entry("mnist")
    load_dataset(entry, sources, tmp_path / "c", CPU)
    loaded = load_dataset(entry, sources, tmp_path / "c", CPU, splits=("train",))
    assert loaded.from_cache and loaded.test is None
    kept = loaded.train.images.clone()
    loaded.train.images.mul_(0)
    again = load_dataset(entry, sources, tmp_path / "c", CPU)
    assert torch.equal(again.train.images, kept)


def test_the_training_split_loads_without_reading_the_test_split(tmp_path, no_debian, monkeypatch):
    root = tmp_path / "root"
    _write_mnist_like(root / "MNIST" / "raw", n_train=20, n_test=10, gz=False, seed=3)
    sources = DataSources(root=root, allow_download=False)
    entry = builtin_entry("mnist")
    whole = load_dataset(entry, sources, tmp_path / "c", CPU)
    opened = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda path, *a, **k: (opened.append(str(path)), real_load(path, *a, **k))[1])
    train_only = load_dataset(entry, sources, tmp_path / "c", CPU, splits=("train",))
    assert opened and not any("test" in Path(p).name for p in opened), opened
    assert train_only.fingerprint == whole.fingerprint and len(whole.fingerprint) == 16
