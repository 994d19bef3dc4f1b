"""The types a method plugin sees: the real data it distills, the context it runs in, the set it returns.

Everything here is deliberately small: a method receives real data as tensors already on the
device, a seeded generator and a cache directory, and returns a :class:`SyntheticSet`. It never
chooses the evaluation and never touches global RNG state.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping

import torch
from torch import Tensor, nn

from benchsuite import atomic
from benchsuite.errors import ArtifactError, ConfigError, MethodError

if TYPE_CHECKING:  # pragma: no cover - import only for type checkers
    from benchsuite.data.spec import DatasetSpec
    from benchsuite.protocol import Protocol


@dataclass
class LabeledData:
    """Normalised images ``[N, C, H, W]`` (float32) and hard labels ``[N]`` (int64), kept on one device.

    Per-class index tensors are computed once and cached, because DC/DM/herding all draw
    class-wise batches and re-scanning the labels each time would dominate small steps.
    """

    images: Tensor
    labels: Tensor
    num_classes: int
    spec: "DatasetSpec | None" = None
    _by_class: list[Tensor] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be [N] with N={self.images.shape[0]}, got shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def class_indices(self) -> list[Tensor]:
        """Indices of each class's samples, on the data's device, computed once."""
        if self._by_class is None:
            order = torch.argsort(self.labels, stable=True)
            counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
            self._by_class = list(torch.split(order, counts))
        return self._by_class

    def class_counts(self) -> list[int]:
        return [len(ix) for ix in self.class_indices()]

    def sample_class(self, c: int, n: int, generator: torch.Generator) -> Tensor:
        """``n`` images of class ``c`` drawn without replacement (all of them if the class is smaller).

        The permutation is drawn on the generator's device (CPU) so results do not depend on the
        compute device, then used to index the device tensor.
        """
        idx = self.class_indices()[c]
        if len(idx) == 0:
            raise MethodError(f"class {c} has no training images")
        perm = torch.randperm(len(idx), generator=generator)[:n].to(idx.device)
        return self.images[idx[perm]]

    def subset(self, indices: Tensor) -> "LabeledData":
        indices = indices.to(self.images.device)
        return LabeledData(self.images[indices], self.labels[indices], self.num_classes, self.spec)

    def to(self, device: torch.device | str) -> "LabeledData":
        device = torch.device(device)
        if self.images.device == device:
            return self
        return LabeledData(self.images.to(device), self.labels.to(device), self.num_classes, self.spec)


@dataclass
class SyntheticSet:
    """What a method produces: images in the normalised space, labels, and what storing it costs.

    ``labels`` are hard ``[N]`` (int64) or soft ``[N, K]`` (float32). ``learned_lr`` is a method's
    learned evaluation step size (MTT/PAD); only the open division uses it, as it does soft labels.
    ``storage_bytes`` is what must be stored to reproduce the images: the pixels for pixel methods,
    latents or memories plus decoder for parameterised ones, each tensor counted as stored (its
    elements times its dtype's size). Left out, it is the images' bytes plus, for soft labels, the
    label tensor's bytes (learned labels are part of what reproduces the set). Hard labels are not
    counted: a class index per image costs every method the same at one IPC, and the budget methods
    are compared under is IPC images per class. ``extra`` carries method-specific
    facts worth recording (for example the generative prior a latent method needs).
    ``transform`` names the input space when it is not the normalised one (``{"name": "zca",
    "eps": 0.1}`` for whitened methods such as MTT); the evaluator then tests in that space too.
    """

    images: Tensor
    labels: Tensor
    storage_bytes: int | None = None
    learned_lr: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    transform: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise MethodError(f"synthetic images must be [N, C, H, W], got {tuple(self.images.shape)}")
        n = self.images.shape[0]
        if self.labels.shape[0] != n or self.labels.ndim not in (1, 2):
            raise MethodError(
                f"synthetic labels must be [N] or [N, K] with N={n}, got {tuple(self.labels.shape)}"
            )
        self.images = self.images.detach()
        self.labels = self.labels.detach()
        if self.storage_bytes is None:
            self.storage_bytes = tensor_bytes(self.images) + (tensor_bytes(self.labels) if self.soft_labels else 0)

    @property
    def soft_labels(self) -> bool:
        return self.labels.ndim == 2

    def hard_labels(self) -> Tensor:
        return self.labels.argmax(dim=1) if self.soft_labels else self.labels

    def per_class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.hard_labels().cpu(), minlength=num_classes).tolist()

    def save(self, path: Path, metadata: dict[str, Any] | None = None) -> None:
        """Write one ``.pt`` file, atomically (temporary name, then rename)."""
        payload = {
            "images": self.images.cpu(),
            "labels": self.labels.cpu(),
            "storage_bytes": int(self.storage_bytes or 0),
            "learned_lr": self.learned_lr,
            "extra": _plain(self.extra),
            "transform": _plain(self.transform) if self.transform else None,
            "metadata": _plain(metadata or {}),
        }
        atomic.torch_save(payload, Path(path))

    @classmethod
    def load(cls, path: Path) -> tuple["SyntheticSet", dict[str, Any]]:
        """Read a set written by :meth:`save`; anything else raises :class:`ArtifactError`."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(payload, dict):
                raise TypeError(f"the file holds a {type(payload).__name__}, not a dict")
            if not (isinstance(payload.get("images"), Tensor) and isinstance(payload.get("labels"), Tensor)):
                raise TypeError("'images' and 'labels' must be tensors")
            syn = cls(
                images=payload["images"],
                labels=payload["labels"],
                storage_bytes=payload["storage_bytes"],
                learned_lr=payload["learned_lr"],
                extra=payload.get("extra") or {},
                transform=payload.get("transform"),
            )
            metadata = payload.get("metadata") or {}
        except Exception as exc:  # noqa: BLE001 - truncated, foreign, or a pickle of arbitrary objects
            raise ArtifactError(f"{path} is not a distilled set written by benchsuite ({atomic.load_failure(exc)})"
                                ) from None
        return syn, metadata


def tensor_bytes(tensor: Tensor) -> int:
    """Bytes ``tensor`` takes as stored: its elements times its dtype's size (not an assumed float32)."""
    return int(tensor.numel()) * int(tensor.element_size())


def _plain(value: Any) -> Any:
    """Reduce to types ``torch.load(weights_only=True)`` accepts (and JSON can show)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


ModelFactory = Callable[[str, torch.Generator], nn.Module]
ProgressFn = Callable[..., None]


@dataclass
class RunContext:
    """What a method may use while distilling.

    ``model(arch)`` builds a freshly initialised network for this dataset's shape on the device,
    its initial weights drawn from ``generator`` (never from global RNG); ``arch`` defaults to the
    protocol's distillation architecture. ``progress(step, total, **info)`` reports iteration
    progress (loss, ...); it is a no-op when the run is quiet. ``seed`` is the cell's distillation
    seed, for methods that derive sub-generators (e.g. a cache keyed by seed).
    """

    device: torch.device
    generator: torch.Generator
    cache_dir: Path
    make_model: ModelFactory
    protocol: "Protocol"
    dataset: "DatasetSpec"
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("benchsuite"))
    progress: ProgressFn = field(default=lambda *a, **k: None)
    default_arch: str = "convnet"
    seed: int = 0

    def model(self, arch: str | None = None, generator: torch.Generator | None = None) -> nn.Module:
        return self.make_model(arch or self.default_arch, generator or self.generator).to(self.device)


MethodKind = Literal["distill", "select"]


def _fields_of(config: Any) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else {}


def config_value(config: Any, path: str) -> Any:
    """The value at a dotted ``path`` of a (possibly nested) Config: ``"lr_img"``, ``"match.lr_img"``."""
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def check_override_names(method: str, config: Any, overrides: Mapping[str, Any]) -> None:
    """The one check of ``--set`` names: every key is a field of the method's Config, or a dotted
    path through nested Config dataclasses (``match.lr_img``) ending at a field."""
    for key in sorted(overrides):
        node, walked = config, ""
        for part in key.split("."):
            known = _fields_of(node)
            if walked and not known:
                raise ConfigError(f"method {method!r}: {walked!r} is a value, not a group of hyperparameters; "
                                  f"use --set {method}.{walked}=VALUE")
            if part not in known:
                level = f" in {walked!r}" if walked else ""
                raise ConfigError(f"method {method!r} has no hyperparameter {key!r}; known{level}: {sorted(known)}")
            node, walked = getattr(node, part), f"{walked}.{part}" if walked else part


def apply_overrides(config: Any, overrides: Mapping[str, Any]) -> Any:
    """``config`` with each (possibly dotted) override replaced; nested Configs are rebuilt, so
    their own ``__post_init__`` checks run on the new values."""
    here = {k: v for k, v in overrides.items() if "." not in k}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if "." in key:
            head, rest = key.split(".", 1)
            nested.setdefault(head, {})[rest] = value
    for head, values in nested.items():
        here[head] = apply_overrides(getattr(config, head), values)
    return dataclasses.replace(config, **here) if here else config


def non_finite_fields(config: Any, prefix: str = "") -> list[str]:
    """Dotted names of float fields (at any depth) that are NaN or infinite."""
    bad: list[str] = []
    for name in _fields_of(config):
        value = getattr(config, name)
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(prefix + name)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            bad += non_finite_fields(value, f"{prefix}{name}.")
    return bad


class Method(abc.ABC):
    """A dataset distillation (or selection) method.

    Subclasses set ``name``, ``version``, ``kind`` and ``Config`` (a frozen dataclass of
    hyperparameters), implement :meth:`config_for` (the published defaults per dataset/IPC/protocol,
    as data with their source) and :meth:`distill`.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    kind: ClassVar[MethodKind] = "distill"
    Config: ClassVar[type]
    description: ClassVar[str] = ""
    # True for methods whose output does not depend on IPC (the `full` upper bound): the runner
    # runs them once per (dataset, seed) and records them with ipc = 0.
    ipc_independent: ClassVar[bool] = False
    # True for parameterised containers (HMN) that decode to more images per class than IPC: the
    # conformance test then asserts balanced classes and storage within IPC images' worth of floats
    # instead of exactly IPC images per class.
    container: ClassVar[bool] = False
    # The hyperparameter tables, as data: protocol budget ("smoke", "quick", "paper") -> a function
    # (dataset, ipc, protocol) -> Config, each documenting where its values come from. Empty: the
    # Config's defaults for every budget.
    budgets: ClassVar[Mapping[str, Callable[[str, int, "Protocol"], Any]]] = {}

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def config_for(cls, dataset: str, ipc: int, protocol: "Protocol") -> Any:
        """Default hyperparameters for this cell: the entry of :attr:`budgets` for the protocol's
        budget (the Config's defaults when the method has no tables)."""
        if not cls.budgets:
            return cls.Config()
        build = cls.budgets.get(protocol.budget)
        if build is None:
            raise ConfigError(f"{cls.name} has no hyperparameters for budget {protocol.budget!r}; it has "
                              f"{', '.join(sorted(cls.budgets))}")
        return build(dataset, ipc, protocol)

    @classmethod
    def resolve_config(cls, dataset: str, ipc: int, protocol: "Protocol", overrides: dict[str, Any] | None = None) -> Any:
        """``config_for`` with user overrides applied; unknown keys are an error, not silently ignored."""
        config = cls.config_for(dataset, ipc, protocol)
        if overrides:
            check_override_names(cls.name, config, overrides)
            config = apply_overrides(config, overrides)
        # NaN or infinity is never a meaningful hyperparameter, whatever a method checks itself.
        bad = non_finite_fields(config)
        if bad:
            raise ConfigError(f"method {cls.name!r}: hyperparameter(s) {bad} must be finite numbers")
        return config

    def prepare(self, real: LabeledData, ipc: int, ctx: RunContext) -> dict[str, Any] | None:
        """Build what :meth:`distill` will read from ``ctx.cache_dir`` (expert trajectories, a
        generative prior), without distilling; return a description of it. ``benchsuite prepare``
        calls it so that caches exist before cells run (once, not by several workers at a time).
        Methods without caches keep this default, which does nothing."""
        return None

    @abc.abstractmethod
    def distill(self, real: LabeledData, ipc: int, ctx: RunContext) -> SyntheticSet:
        """Return ``ipc`` images per class (or the method's equivalent storage)."""
