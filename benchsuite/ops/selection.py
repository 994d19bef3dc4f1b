"""Coreset selection in a feature space: embeddings, herding and greedy k-center.

Both baselines embed every training image with one network. By default it is a ConvNet trained on
the whole training set (:mod:`benchsuite.ops.feature_extractor`), as the DC and DM papers and IDC
select; ``embedding="random"`` keeps a randomly initialised network instead, which needs no
training run (docs/methods/baselines.md, "The embedding"). The embedding of a (dataset, network)
is computed once per process and shared by herding and k-center and by IPCs, because it is the
dominant cost (one forward of the train set).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from dataclasses import dataclass
from typing import Any, Callable

from benchsuite.api import LabeledData, RunContext, SyntheticSet
from benchsuite.errors import ConfigError, MethodError
from benchsuite.modeling import draw_seed

_EMBED_CACHE: "OrderedDict[tuple, Tensor]" = OrderedDict()
_EMBED_CACHE_SIZE = 1


@torch.inference_mode()
def embed_all(model: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """``model.embed`` of every image, in eval mode, as one ``[N, D]`` tensor on the images' device."""
    model.eval()
    return torch.cat([model.embed(xb) for xb in images.split(batch_size)])


def random_network_features(real: LabeledData, ctx: RunContext, arch: str | None, batch_size: int) -> Tensor:
    """Features of all of ``real`` under a random ``arch`` network seeded by the cell's seed only,
    so IPC 1 and IPC 10, herding and k-center all see the same embedding."""
    arch = arch or ctx.default_arch
    key = ("random", ctx.dataset.name, len(real), int(real.labels[:64].sum()), ctx.seed, arch, str(real.device))
    if key in _EMBED_CACHE:
        _EMBED_CACHE.move_to_end(key)
        return _EMBED_CACHE[key]
    net_gen = torch.Generator().manual_seed(draw_seed(torch.Generator().manual_seed(1_000_003 + ctx.seed)))
    model = ctx.model(arch, generator=net_gen)
    feats = embed_all(model, real.images, batch_size)
    _remember(key, feats)
    return feats


@dataclass(frozen=True)
class SelectionConfig:
    """The embedding herding and k-center select in (their Configs' shared fields)."""

    embedding: str = "trained"      # 'trained' (a ConvNet trained on the whole train set) or 'random'
    extractor_epochs: int = 10      # training epochs of the trained extractor
    extractor_augment: str = "none"  # 'none', 'auto' (the dataset's DSA strategy) or a DSA strategy
    arch: str | None = None         # embedding network; None = the protocol's distillation arch (ConvNet-3)
    embed_batch: int = 1000         # images per forward when embedding the train set

    def __post_init__(self) -> None:
        if self.embedding not in ("trained", "random"):
            raise ConfigError(f"embedding must be 'trained' or 'random', got {self.embedding!r}")
        if self.extractor_epochs < 1:
            raise ConfigError(f"extractor_epochs must be >= 1, got {self.extractor_epochs}")
        if self.embed_batch < 1:
            raise ConfigError(f"embed_batch must be >= 1, got {self.embed_batch}")


# The trained extractor's epochs per budget: the papers do not state how long their feature
# network trained, so these are the suite's (docs/methods/baselines.md, "The embedding").
EXTRACTOR_EPOCHS = {"smoke": 1, "quick": 3, "paper": 30}


def selection_budgets(config_cls: type) -> dict[str, Callable[..., Any]]:
    return {budget: (lambda dataset, ipc, protocol, e=epochs: config_cls(extractor_epochs=e))
            for budget, epochs in EXTRACTOR_EPOCHS.items()}


def selection_features(real: LabeledData, ctx: RunContext, cfg: Any) -> tuple[Tensor, dict[str, Any]]:
    """The embedding ``cfg`` asks for, and what the record says about it."""
    arch = cfg.arch or ctx.default_arch
    if cfg.embedding == "random":
        return random_network_features(real, ctx, arch, cfg.embed_batch), {"embedding": "random", "arch": arch}
    from benchsuite.ops.feature_extractor import extractor_store

    augment = ctx.dataset.dsa_strategy if cfg.extractor_augment == "auto" else cfg.extractor_augment
    store, make = extractor_store(ctx, real, arch, cfg.extractor_epochs, augment)
    key = ("trained", store.spec.key, str(real.device))
    if key in _EMBED_CACHE:
        _EMBED_CACHE.move_to_end(key)
        store.load(make(torch.Generator().manual_seed(store.spec.seed)))  # its facts for the record
        return _EMBED_CACHE[key], {"embedding": "trained", "extractor": store.describe()}
    model = store.ensure(make, real, ctx.progress)
    feats = embed_all(model, real.images, cfg.embed_batch)
    _remember(key, feats)
    return feats, {"embedding": "trained", "extractor": store.describe()}


def prepare_extractor(real: LabeledData, ctx: RunContext, cfg: Any) -> dict[str, Any] | None:
    """Build the trained extractor a selection cell reads (``Method.prepare``)."""
    if cfg.embedding != "trained":
        return None
    from benchsuite.ops.feature_extractor import extractor_store

    augment = ctx.dataset.dsa_strategy if cfg.extractor_augment == "auto" else cfg.extractor_augment
    store, make = extractor_store(ctx, real, cfg.arch or ctx.default_arch, cfg.extractor_epochs, augment)
    store.ensure(make, real, ctx.progress)
    return {"extractor": store.describe()}


def _remember(key: tuple, feats: Tensor) -> None:
    _EMBED_CACHE[key] = feats
    while len(_EMBED_CACHE) > _EMBED_CACHE_SIZE:
        _EMBED_CACHE.popitem(last=False)


def herding(features: Tensor, k: int) -> Tensor:
    """Greedy mean matching (Welling 2009; IDC's variant): step ``t`` picks the unselected sample
    minimising ``|| t*mu - sum(selected) - phi(x) ||``. Returns ``k`` row indices in pick order.

    The argmin follows IDC; DeepCore's argmax of the same distance is a known defect
    (docs/methods/baselines.md, "herding").
    """
    n = features.shape[0]
    if k > n:
        raise MethodError(f"herding needs {k} samples but the class has only {n}")
    mu = features.mean(dim=0)
    chosen = torch.empty(k, dtype=torch.long, device=features.device)
    taken = torch.zeros(n, dtype=torch.bool, device=features.device)
    running = torch.zeros_like(mu)
    for t in range(1, k + 1):
        target = t * mu - running
        dist = (features - target).pow(2).sum(dim=1)
        dist = dist.masked_fill(taken, float("inf"))
        i = int(torch.argmin(dist))
        chosen[t - 1] = i
        taken[i] = True
        running = running + features[i]
    return chosen


def kcenter(features: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Greedy k-center (Sener & Savarese 2018): a random first centre, then repeatedly the point
    farthest from its nearest centre. Returns ``k`` row indices in pick order."""
    n = features.shape[0]
    if k > n:
        raise MethodError(f"k-center needs {k} samples but the class has only {n}")
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    min_dist = (features - features[first]).pow(2).sum(dim=1)
    for _ in range(k - 1):
        i = int(torch.argmax(min_dist))
        chosen.append(i)
        min_dist = torch.minimum(min_dist, (features - features[i]).pow(2).sum(dim=1))
    return torch.tensor(chosen, dtype=torch.long, device=features.device)


def select_per_class(real: LabeledData, ipc: int, pick) -> SyntheticSet:
    """Build a set from ``pick(class_index, class_row_indices) -> chosen positions`` per class."""
    rows = []
    for c, idx in enumerate(real.class_indices()):
        if len(idx) < ipc:
            raise MethodError(f"class {c} has {len(idx)} training images, fewer than IPC {ipc}")
        rows.append(idx[pick(c, idx)])
    sel = torch.cat(rows)
    return SyntheticSet(images=real.images[sel].clone(), labels=real.labels[sel].clone(),
                        extra={"selected_indices": int(sel.numel())})
