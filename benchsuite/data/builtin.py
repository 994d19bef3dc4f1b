"""The built-in datasets: their specs (DC-lineage normalisation, docs/datasets.md "Normalisation")
and source order (docs/datasets.md, "Where the data comes from").

Sources are tried in order: the data root (exact layouts first), Debian's package where there is
one, an earlier torchvision download, then a torchvision download as the last resort.
"""

from __future__ import annotations

from benchsuite.data.base import DatasetEntry, Source
from benchsuite.data.folder_source import tinyimagenet_folder_source
from benchsuite.data.idx_source import debian_fashion_mnist_source, torchvision_idx_source
from benchsuite.data.npz_source import cifar10_npz_source, npz_file_source
from benchsuite.data.spec import DatasetSpec
from benchsuite.data.synthetic import synthetic_source
from benchsuite.data.torchvision_source import (
    torchvision_download_source,
    torchvision_downloaded_source,
    torchvision_root_source,
)

DIGITS = tuple(str(d) for d in range(10))

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
assert len(CIFAR100_CLASSES) == 100 and len(set(CIFAR100_CLASSES)) == 100

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MNIST = DatasetSpec(
    name="mnist", channels=1, image_size=28, num_classes=10, mean=(0.1307,), std=(0.3081,),
    class_names=DIGITS, digits=True, description="MNIST handwritten digits, 60k/10k, 28x28 grey",
    min_train_per_class=5421,  # digit 5
)  # fmt: skip
FASHIONMNIST = DatasetSpec(
    name="fashionmnist", channels=1, image_size=28, num_classes=10, mean=(0.2861,), std=(0.3530,),
    class_names=FASHION_MNIST_CLASSES, description="Fashion-MNIST (Zalando), 60k/10k, 28x28 grey",
    aliases=("fashion_mnist", "fashion-mnist", "fmnist"),
    min_train_per_class=6000,  # balanced
)  # fmt: skip
SVHN = DatasetSpec(
    name="svhn", channels=3, image_size=32, num_classes=10,
    mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
    class_names=DIGITS, digits=True, description="SVHN cropped digits (train 73,257 / test 26,032), 32x32 RGB",
    min_train_per_class=4659,  # digit 9
)  # fmt: skip
CIFAR10 = DatasetSpec(
    name="cifar10", channels=3, image_size=32, num_classes=10,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010),
    class_names=CIFAR10_CLASSES, description="CIFAR-10, 50k/10k, 32x32 RGB (DC-lineage std convention)",
    aliases=("cifar-10",),
    min_train_per_class=5000,  # balanced
)  # fmt: skip
CIFAR100 = DatasetSpec(
    name="cifar100", channels=3, image_size=32, num_classes=100,
    mean=(0.5071, 0.4866, 0.4409), std=(0.2673, 0.2564, 0.2762),
    class_names=CIFAR100_CLASSES, description="CIFAR-100 (fine labels), 50k/10k, 32x32 RGB (DC's statistics)",
    aliases=("cifar-100",),
    min_train_per_class=500,  # balanced
)  # fmt: skip
TINYIMAGENET = DatasetSpec(
    name="tinyimagenet", channels=3, image_size=64, num_classes=200, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    description="Tiny ImageNet, 200 classes, 100k train / 10k val (used as test), 64x64 RGB",
    aliases=("tiny-imagenet", "tiny_imagenet", "tiny-imagenet-200"),
    min_train_per_class=500,  # balanced
)  # fmt: skip
SYNTHETIC = DatasetSpec(
    name="synthetic", channels=3, image_size=16, num_classes=10,
    mean=(0.514, 0.486, 0.520), std=(0.267, 0.262, 0.264),
    class_names=tuple(f"class{k}" for k in range(10)),
    description="generated smooth class prototypes + shift + noise; 50 train / 20 test per class, 16x16 RGB",
    min_train_per_class=50,  # balanced
)  # fmt: skip


def _torchvision_tail(cls_name: str, channels: int) -> tuple[Source, ...]:
    return (torchvision_downloaded_source(cls_name, channels), torchvision_download_source(cls_name, channels))


def _mnist_like(folder: str, npz_folder: str) -> tuple[Source, ...]:
    return (
        npz_file_source(npz_folder, f"{npz_folder}.npz", 1),
        torchvision_idx_source(folder),
    )


BUILTIN_DATASETS: list[DatasetEntry] = [
    DatasetEntry(
        MNIST,
        sources=(
            *_mnist_like("MNIST", "mnist"),
            torchvision_idx_source("MNIST", in_download_root=True),
            torchvision_download_source("MNIST", 1),
        ),
    ),
    DatasetEntry(
        FASHIONMNIST,
        sources=(
            *_mnist_like("FashionMNIST", "fashion_mnist"),
            debian_fashion_mnist_source(),
            torchvision_idx_source("FashionMNIST", in_download_root=True),
            torchvision_download_source("FashionMNIST", 1),
        ),
    ),
    DatasetEntry(
        SVHN,
        sources=(
            npz_file_source("svhn", "svhn.npz", 3),
            torchvision_root_source("SVHN", 3),
            *_torchvision_tail("SVHN", 3),
        ),
    ),
    DatasetEntry(
        CIFAR10,
        sources=(
            # torchvision's layout holds the exact test set, so it goes before the offline npz copy
            torchvision_root_source("CIFAR10", 3),
            cifar10_npz_source(),
            *_torchvision_tail("CIFAR10", 3),
        ),
    ),
    DatasetEntry(
        CIFAR100,
        sources=(
            npz_file_source("cifar100", "cifar100.npz", 3),
            torchvision_root_source("CIFAR100", 3),
            *_torchvision_tail("CIFAR100", 3),
        ),
    ),
    DatasetEntry(
        TINYIMAGENET,
        sources=(
            tinyimagenet_folder_source(TINYIMAGENET.num_classes, TINYIMAGENET.image_size),
            npz_file_source("tinyimagenet", "tinyimagenet.npz", 3),
        ),
    ),
    DatasetEntry(SYNTHETIC, sources=(synthetic_source(),)),
]


def builtin_entry(name: str) -> DatasetEntry:
    """The built-in entry called ``name`` or one of its aliases (case-insensitive)."""
    from benchsuite.errors import UnknownNameError

    key = name.lower()
    for entry in BUILTIN_DATASETS:
        if key == entry.spec.name or key in entry.spec.aliases:
            return entry
    known = ", ".join(e.spec.name for e in BUILTIN_DATASETS)
    raise UnknownNameError(f"unknown dataset {name!r}; built-in datasets: {known}")


__all__ = ["BUILTIN_DATASETS", "builtin_entry"] + [
    "MNIST", "FASHIONMNIST", "SVHN", "CIFAR10", "CIFAR100", "TINYIMAGENET", "SYNTHETIC",
]  # fmt: skip
