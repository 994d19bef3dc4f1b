"""Distillation in a generator's latent space: the loops of GLaD (docs/methods/glad.md) and H-PD
(docs/methods/hpd.md).

Both optimise a ``latents.LatentSet`` (W+ codes and F_k per image) under a
pixel method's objective, reused unchanged through ``latents.LatentImages``
(GLaD's two-stage, chunked backward): DC's and DM's steps from ``ops/objectives.py``, MTT's
iteration from ``ops/trajectory_matching.py`` (:class:`TrajectoryMatcher`, the same experts and
student as ``mtt``). For MTT the rendered images pass through the experts' ZCA whitening when they
were trained on whitened images; the gradient flows back through it into the latents.

Deviation (MTT): GLaD's and H-PD's code compute the trajectory gradient TESLA-style, a
first-order approximation that drops how later student steps depend on earlier batches
(docs/methods/glad.md, "The three objectives"). The suite back-propagates through the whole
unroll exactly, with per-step recomputation (``unroll="checkpoint"``), which bounds memory just
as well.

* GLaD: one fixed layer k for the whole run.
* H-PD: start at a shallow layer, run ``iterations`` per layer, keep the snapshot (a clone, not a
  reference: the released code's search is a no-op because it keeps references;
  docs/methods/hpd.md, "Defects of the released code") with the smallest class-relevant feature
  distance, push F one layer deeper with the generator's own layer, and repeat to the last
  synthesis layer.

The prior is the suite's own style-based generator (``priors.py``), trained on the dataset on
first use and cached, or a checkpoint the user passes (``prior_path``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from benchsuite.api import LabeledData, RunContext
from benchsuite.errors import ConfigError, MethodError
from benchsuite.ops.dsa import DSA
from benchsuite.ops.matching import (
    METRICS,
    LossMonitor,
    embed_chunked,
    forward_chunk,
    make_augment,
)
from benchsuite.ops.objectives import dc_outer_step, dm_step
from benchsuite.ops.sampling import sample_classes
from benchsuite.ops.trajectory import UNROLL_MODES
from benchsuite.ops.trajectory_matching import (
    MatchSettings,
    TrajectoryMatcher,
    method_experts,
)
from benchsuite.ops.zca import DEFAULT_EPS

from .latents import LatentImages, LatentSet
from .priors import Prior, PriorConfig, PriorStore

__all__ = ["OBJECTIVES", "LatentConfig", "resolve_prior", "block_features", "FeatureDistance",
           "distill_glad", "distill_hpd"]

OBJECTIVES = ("dc", "dm", "mtt")
SELECTS = ("min_distance", "last")


@dataclass(frozen=True)
class LatentConfig:
    objective: str = "dc"         # the pixel method whose objective drives the latents
    iterations: int = 1000        # GLaD: in total; H-PD: per layer (`inter_iteration`)
    layer: int = 1                # GLaD: k; H-PD: the starting layer
    lr_w: float = 1e-3            # SGD on the W+ codes (momentum 0.5)
    lr_f: float = 1.0             # SGD on F_k (GLaD's `lr_img`)
    momentum: float = 0.5
    # DC objective (docs/methods/glad.md, "Published hyperparameters": GLaD-DC uses outer = inner
    # = 1, lr_net 0.01)
    outer_loop: int = 1
    inner_loop: int = 1
    lr_net: float = 0.01
    batch_train: int = 256
    dis_metric: str = "ours"
    bn_real_per_class: int = 16
    # MTT objective (docs/methods/glad.md, GLaD-MTT: syn_steps 20, expert_epochs 3, max_start_epoch 5,
    # lr_lr 1e-6, α₀ 0.01; experts of 15 epochs, buffer_mtt.py --train_epochs=15)
    syn_steps: int = 20
    expert_epochs: int = 3
    max_start_epoch: int = 5
    batch_syn: int = 0
    lr_lr: float = 1e-6
    lr_teacher: float = 0.01
    zca: bool = False
    zca_eps: float = DEFAULT_EPS
    num_experts: int = 100
    expert_train_epochs: int = 15
    expert_subset_per_class: int = 0
    expert_batch: int = 256
    unroll: str = "checkpoint"
    # DC and DM objectives
    batch_real: int = 256
    dsa_strategy: str = "auto"
    render_chunk: int = 10        # images per generator pass (GLaD's `sg_batch`)
    # the prior
    prior_steps: int = 6000
    prior_channels: int = 48
    prior_seed: int = 0
    prior_path: str = ""          # a checkpoint written by benchsuite (PriorStore.save); "" = train/cache
    # H-PD's selection
    select: str = "min_distance"  # 'min_distance' (the paper) or 'last'
    feature_nets: int = 5         # random ConvNets behind the class-relevant feature distance
    feature_real_per_class: int = 256
    arch: str | None = None
    forward_chunk: int = 0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"glad/hpd setting objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        if self.select not in SELECTS:
            raise ConfigError(f"glad/hpd setting select must be one of {list(SELECTS)}, got {self.select!r}")
        if self.dis_metric not in METRICS:
            raise ConfigError(f"glad/hpd setting dis_metric must be one of {list(METRICS)}, got {self.dis_metric!r}")
        if self.unroll not in UNROLL_MODES:
            raise ConfigError(f"glad/hpd setting unroll must be one of {list(UNROLL_MODES)}, got {self.unroll!r}")
        for name in ("outer_loop", "inner_loop", "batch_real", "batch_train", "render_chunk", "prior_steps",
                     "prior_channels", "feature_nets", "feature_real_per_class", "bn_real_per_class",
                     "syn_steps", "expert_epochs", "max_start_epoch", "num_experts", "expert_train_epochs",
                     "expert_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"glad/hpd setting {name} must be >= 1, got {getattr(self, name)}")
        if self.iterations < 0 or self.layer < 0 or self.forward_chunk < 0:
            raise ConfigError("glad/hpd settings iterations, layer and forward_chunk must be >= 0 "
                              f"(got {self.iterations}, {self.layer}, {self.forward_chunk})")

    def prior_config(self) -> PriorConfig:
        return PriorConfig(steps=self.prior_steps, channels=self.prior_channels)

    def match_settings(self, iterations: int) -> MatchSettings:
        return MatchSettings(
            iterations=iterations, syn_steps=self.syn_steps, expert_epochs=self.expert_epochs, min_start=0,
            max_start=self.max_start_epoch, current_max_start=self.max_start_epoch, expansion_end=0,
            batch_syn=self.batch_syn, lr_img=self.lr_f, lr_lr=self.lr_lr, lr_teacher=self.lr_teacher,
            momentum_img=self.momentum, unroll=self.unroll)


def resolve_prior(cfg: LatentConfig, real: LabeledData, ctx: RunContext) -> Prior:
    store = PriorStore(ctx.cache_dir, ctx.dataset.name, real, cfg.prior_config(), cfg.prior_seed)
    if cfg.prior_path:
        prior = store.load(Path(cfg.prior_path).expanduser())
        if prior is None:
            raise ConfigError(f"prior_path {cfg.prior_path!r} does not exist")
        return prior
    return store.ensure(ctx.progress)


def prepare_caches(cfg: LatentConfig, real: LabeledData, ctx: RunContext) -> dict:
    """Build the prior (and, for the MTT objective, the experts) a latent method reads from the
    cache, without distilling."""
    out = {"prior": resolve_prior(cfg, real, ctx).describe()}
    if cfg.objective == "mtt":
        out["experts"] = method_experts(ctx, real, cfg)[1].describe()
    return out


def check_layer(layer: int, prior: Prior) -> None:
    if layer >= prior.generator.num_layers:
        raise ConfigError(f"layer {layer} is past the prior's last synthesis layer "
                          f"({prior.generator.num_layers - 1}); choose 0..{prior.generator.num_layers - 1}")


class MatchingObjective:
    """DC's or DM's objective: one outer iteration (DC) or step (DM) on a fresh network per call,
    against real images in the normalised space."""

    transform = None  # images stay in the normalised space
    zca = None

    def __init__(self, cfg: LatentConfig, real: LabeledData, ipc: int, ctx: RunContext, dsa: DSA | None,
                 labels: Tensor, chunk: int | None):
        self.cfg, self.space, self.ipc, self.ctx, self.dsa, self.labels, self.chunk = cfg, real, ipc, ctx, dsa, labels, chunk

    def step(self, it: int, images: LatentImages) -> Tensor:
        cfg, ctx = self.cfg, self.ctx
        net = ctx.model(cfg.arch)
        if cfg.objective == "dc":
            return dc_outer_step(net, images.images, self.labels, images, self.space, self.ipc, cfg, self.dsa,
                                 ctx.generator, self.chunk)
        return dm_step(net, images.images, images, self.space, self.ipc, cfg.batch_real, self.dsa, ctx.generator,
                       self.chunk)

    def result(self) -> dict:
        return {}


class TrajectoryObjective:
    """MTT's objective over the cached experts (the ones ``mtt`` uses when the settings agree); the
    images live in the experts' space (ZCA-whitened when ``zca``), and α is learned."""

    def __init__(self, method: str, cfg: LatentConfig, real: LabeledData, ctx: RunContext, labels: Tensor,
                 total_iterations: int):
        ms, self.store, trajectories = method_experts(ctx, real, cfg)
        self.space, self.zca, self.dsa = ms.space, ms.zca, ms.augment
        self.transform = ms.zca.apply if ms.zca is not None else None
        self.matcher = TrajectoryMatcher(ctx, method, cfg.match_settings(total_iterations), trajectories, cfg.arch,
                                         labels, ms.augment)

    def step(self, it: int, images: LatentImages) -> Tensor:
        loss, _ = self.matcher.step(it, images)
        return loss

    def result(self) -> dict:
        self.matcher.check_progress(None)
        return {"experts": self.store.describe(), "learned_lr": self.matcher.learned_lr,
                "skipped_updates": self.matcher.skipped}


def make_objective(method: str, cfg: LatentConfig, real: LabeledData, ipc: int, ctx: RunContext,
                   total_iterations: int):
    labels = torch.arange(real.num_classes, device=real.device).repeat_interleave(ipc)
    chunk = cfg.forward_chunk or forward_chunk(ctx.device, real.image_shape)
    if cfg.objective == "mtt":
        return TrajectoryObjective(method, cfg, real, ctx, labels, total_iterations), labels, chunk
    return MatchingObjective(cfg, real, ipc, ctx, make_augment(cfg.dsa_strategy, ctx.dataset), labels, chunk), labels, chunk


def block_features(net: nn.Module, x: Tensor) -> list[Tensor]:
    """The output of every block of a ConvNet (conv, norm, act, pool): the feature maps H-PD
    compares. Other architectures have no such blocks and are refused."""
    features = getattr(net, "features", None)
    children = list(features.named_children()) if isinstance(features, nn.Sequential) else []
    if not children or not children[0][0].startswith("conv"):
        raise ConfigError(f"the class-relevant feature distance needs a ConvNet (blocks conv1, norm1, ...); "
                          f"got {type(net).__name__}")
    out, h = [], x
    for i, (_, module) in enumerate(children):
        h = module(h)
        if i + 1 == len(children) or children[i + 1][0].startswith("conv"):
            out.append(h)
    return out


class FeatureDistance:
    """H-PD's class-relevant feature distance (docs/methods/hpd.md, "The class-relevant feature
    distance"): Σ_c Σ_blocks ‖mean real features of class c − mean synthetic features of class
    c‖², averaged over ``cfg.feature_nets`` random ConvNets in eval mode.

    The real means are computed once. Deviation, for a deterministic and lower-variance selection:
    the synthetic side goes through the *same* fixed random networks (the released code uses one
    fresh network per call against means averaged over five others), without augmentation.
    """

    def __init__(self, cfg: LatentConfig, real: LabeledData, ctx: RunContext, chunk: int | None):
        self.k = real.num_classes
        self.nets = [ctx.model(cfg.arch).eval().requires_grad_(False) for _ in range(cfg.feature_nets)]
        xr, n = sample_classes(real, cfg.feature_real_per_class, ctx.generator)
        self.chunk = chunk
        with torch.no_grad():
            self.real_means = [self._class_means(net, xr, n) for net in self.nets]

    def _class_means(self, net: nn.Module, images: Tensor, per_class: int) -> list[Tensor]:
        feats = [embed_chunked(lambda x, i=i: block_features(net, x)[i].flatten(1), images, self.chunk)
                 for i in range(len(block_features(net, images[:1])))]
        return [f.view(self.k, per_class, -1).mean(dim=1) for f in feats]

    def __call__(self, images: Tensor) -> float:
        """``images`` class-major, the same count per class."""
        per_class = images.shape[0] // self.k
        total = 0.0
        with torch.no_grad():
            for net, real in zip(self.nets, self.real_means):
                syn = self._class_means(net, images, per_class)
                total += float(sum(((r - s) ** 2).sum() for r, s in zip(real, syn)))
        return total / len(self.nets)


def distill_glad(method: str, cfg: LatentConfig, real: LabeledData, ipc: int, ctx: RunContext,
                 prior: Prior) -> tuple[LatentSet, dict, object]:
    """Returns the latents, what the record keeps, and the objective (its space and transform)."""
    check_layer(cfg.layer, prior)
    objective, labels, chunk = make_objective(method, cfg, real, ipc, ctx, cfg.iterations)
    latents = LatentSet.from_noise(prior.generator, labels, cfg.layer, ctx.generator, cfg.render_chunk,
                                   objective.transform)
    images = LatentImages(latents, cfg.lr_w, cfg.lr_f, cfg.momentum)
    monitor = LossMonitor(method, cfg.iterations, ctx.progress, ctx.device, hint="lower lr_f or lr_w")
    monitor.start()
    for it in range(cfg.iterations):
        monitor.update(it + 1, objective.step(it, images))
    monitor.check_images(images.images)
    return latents, {"layer": cfg.layer, **objective.result()}, objective


def distill_hpd(method: str, cfg: LatentConfig, real: LabeledData, ipc: int, ctx: RunContext, prior: Prior,
                distance: Callable[[Tensor], float] | None = None) -> tuple[LatentSet, dict, object]:
    """``distance`` defaults to :class:`FeatureDistance` (on the objective's image space); tests
    pass their own."""
    check_layer(cfg.layer, prior)
    layers = list(range(cfg.layer, prior.generator.num_layers))
    objective, labels, chunk = make_objective(method, cfg, real, ipc, ctx, cfg.iterations * len(layers))
    latents = LatentSet.from_noise(prior.generator, labels, cfg.layer, ctx.generator, cfg.render_chunk,
                                   objective.transform)
    if cfg.select == "min_distance" and distance is None:
        distance = FeatureDistance(cfg, objective.space, ctx, chunk)
    monitor = LossMonitor(method, cfg.iterations * len(layers), ctx.progress, ctx.device, hint="lower lr_f or lr_w")
    monitor.start()
    chosen = []
    step = 0
    for layer in layers:
        images = LatentImages(latents, cfg.lr_w, cfg.lr_f, cfg.momentum)  # a fresh optimiser per layer
        best: tuple[float, int, Tensor, Tensor] | None = None
        for it in range(cfg.iterations):
            loss = objective.step(step, images)
            step += 1
            monitor.update(step, loss, layer=f"{layer}/{layers[-1]}")
            if cfg.select == "min_distance":
                assert distance is not None
                d = distance(images.images.detach())
                if best is None or d < best[0]:
                    best = (d, it, latents.ws.detach().clone(), latents.f.detach().clone())
        if best is not None and best[1] != cfg.iterations - 1:
            with torch.no_grad():
                latents.ws.copy_(best[2])
                latents.f.copy_(best[3])
        chosen.append({"layer": layer, "iteration": None if best is None else best[1] + 1,
                       "distance": None if best is None else best[0]})
        if layer != layers[-1]:
            latents.push()
    monitor.check_images(latents.render())
    if not torch.isfinite(latents.f).all():
        raise MethodError(f"method {method!r}: the latents are no longer finite; lower lr_f or lr_w")
    return latents, {"layers": layers, "selected": chosen, **objective.result()}, objective


def with_fields(cfg: LatentConfig, **changes) -> LatentConfig:
    return dataclasses.replace(cfg, **changes)
