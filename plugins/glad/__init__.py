"""GLaD (Cazenavette et al., CVPR'23) and H-PD (Zhong et al., CVPR'25): distillation in the latent
space of a generative prior, with DC's, DM's or MTT's objective. docs/methods/glad.md and
docs/methods/hpd.md.

The synthetic set is (W+, F_k) per image, rendered by the rest of the generator; the objective
sees the rendered images, and its image gradient goes back into the latents in chunks (GLaD's
two-stage backward). The prior is the suite's own class-conditional style-based generator
(``priors.py`` beside this module), trained on the dataset's train set at first use and cached; a
user checkpoint can be passed with ``--set glad-dm.prior_path=...``. StyleGAN-XL weights cannot be
downloaded here, so results are not comparable to the papers' ImageNet figures.

Storage counts the latents (W+ and F_k); the record also names the prior and its size
(``method_extra.prior``), which the latents need to be rendered.

``glad-mtt`` and ``hpd-mtt`` use ``mtt``'s experts: with the quick budget the very same cached
ones (same subset, epochs, ZCA), so a latent method and its pixel counterpart match the same
trajectories. The latents render into the experts' (whitened) space; the set records the ZCA
transform and the learned step size as ``mtt`` does.
"""

from __future__ import annotations

import torch

import benchsuite
from benchsuite.errors import ConfigError
from benchsuite.ops.matching import published_dsa_strategy
from benchsuite.ops.trajectory_matching import MTT_QUICK, MTT_QUICK_EXPERTS

from .latent_distill import (
    LatentConfig,
    distill_glad,
    distill_hpd,
    prepare_caches,
    resolve_prior,
    with_fields,
)

PAPER_SOURCE = ('docs/methods/glad.md and docs/methods/hpd.md ("Published hyperparameters": the GLaD and '
                'H-PD defaults, read in GeorgeCazenavette/glad and ndhg1213/H-PD)')

# Published defaults per objective (docs/methods/glad.md and docs/methods/hpd.md, "Published
# hyperparameters"). `iterations` is GLaD's total and H-PD's per layer (`inter_iteration`). GLaD's
# ImageNet layers (DC 16, DM 20 of StyleGAN-XL) have no counterpart in the suite's 3-4 layer prior;
# k = 1 (a 7x7 or 8x8 feature map) is the choice here, and H-PD starts from the first layer and
# walks all of them.
PAPER = {
    ("glad", "dc"): LatentConfig(objective="dc", iterations=1000, layer=1, lr_w=1e-3, lr_f=1.0, lr_net=0.01),
    ("glad", "dm"): LatentConfig(objective="dm", iterations=1000, layer=1, lr_w=1e-2, lr_f=10.0, batch_real=256),
    ("hpd", "dc"): LatentConfig(objective="dc", iterations=100, layer=0, lr_w=1e-3, lr_f=1.0, lr_net=0.01),
    ("hpd", "dm"): LatentConfig(objective="dm", iterations=10, layer=0, lr_w=1e-2, lr_f=10.0, batch_real=256),
    # GLaD-MTT / H-PD-MTT: lr_img (F) 1e4, lr_w 10, lr_lr 1e-6, syn_steps 20, expert_epochs 3,
    # max_start_epoch 5, α₀ 0.01, experts of 15 epochs (the LatentConfig defaults); ZCA on CIFAR.
    ("glad", "mtt"): LatentConfig(objective="mtt", iterations=1000, layer=1, lr_w=10.0, lr_f=1e4),
    ("hpd", "mtt"): LatentConfig(objective="mtt", iterations=100, layer=0, lr_w=10.0, lr_f=1e4),
}
# GLaD-MTT whitens CIFAR (docs/methods/glad.md, "Published hyperparameters")
ZCA_DATASETS = ("cifar10", "cifar100")

# `quick`: real Fashion-MNIST on the 2-core CPU. The prior: 32 channels, 3,000 steps
# (docs/methods/glad.md, "The Fashion-MNIST prior": its cost and sanity figure). Distillation
# budgets match the pixel methods' quick budgets (dc 40 matching steps, dm 100 iterations), split
# over the prior's layers for H-PD.
QUICK_PRIOR = dict(prior_steps=3000, prior_channels=32)
QUICK_TOTAL = {"dc": 40, "dm": 100, "mtt": 100}
# The published lrs were tuned for StyleGAN-XL's feature maps; on the suite's prior they move the
# images 100x further per iteration than the pixel methods' lrs move pixels (glad-dm at GLaD's lrs:
# relative image change 207 in 10 iterations against pixel dm's 1.36). lr_f and lr_w are scaled
# together, keeping the published 1000:1 ratio, until the image moves about as far as the pixel
# method's in the same iterations (tools/image_step.py, IPC 1; docs/methods/glad.md, "Calibrating
# the quick learning rates"). Each factor extrapolates linearly from a measurement at published/100
# to the pixel method's step.
QUICK_LRS = {"dc": dict(lr_f=3e-3, lr_w=3e-6),    # /333: at /100 0.38 in 3 iterations; pixel dc 0.11
             "dm": dict(lr_f=0.05, lr_w=5e-5),    # /200: at /100 2.50 in 10 iterations; pixel dm 1.36
             "mtt": dict(lr_f=10.0, lr_w=0.01)}   # /1000: at /100 4.60 in 5 iterations; pixel mtt 0.46
QUICK_FEATURES = dict(feature_nets=2, feature_real_per_class=64)
SMOKE = dict(prior_steps=2, prior_channels=8, batch_real=8, batch_train=8, bn_real_per_class=4,
             feature_nets=1, feature_real_per_class=4)
SMOKE_MTT = dict(syn_steps=2, expert_epochs=1, max_start_epoch=2, num_experts=2, expert_train_epochs=2,
                 expert_subset_per_class=8, expert_batch=16, zca=True, lr_f=100.0, lr_w=0.1, lr_lr=1e-5)
PRIOR_LAYERS_28_32 = 4  # the suite's prior has 4 synthesis layers for 28- and 32-pixel images


def paper_config(family: str, objective: str, dataset: str) -> LatentConfig:
    paper = PAPER[(family, objective)]
    if objective == "mtt":
        paper = with_fields(paper, zca=dataset in ZCA_DATASETS, dsa_strategy=published_dsa_strategy(dataset))
    return paper


def quick_mtt(dataset: str, ipc: int) -> dict:
    """mtt's quick budget for this IPC (its unroll, expert set and ZCA), so the experts are shared.
    The lr of the learned step size is GLaD's published 1e-6 on the datasets GLaD whitens and
    reports (CIFAR); elsewhere the 1e-5 measured for mtt's quick budget on Fashion-MNIST."""
    near = min(MTT_QUICK, key=lambda i: (abs(i - ipc), i))
    row = dict(MTT_QUICK[near])
    row.pop("iterations")
    lr_lr = PAPER[("glad", "mtt")].lr_lr if dataset in ZCA_DATASETS else 1e-5
    return {**row, **MTT_QUICK_EXPERTS, "zca": True, "lr_lr": lr_lr}


def config_for(family: str, objective: str, budget: str, dataset: str = "fashionmnist", ipc: int = 1) -> LatentConfig:
    paper = paper_config(family, objective, dataset)
    if budget == "paper":
        return paper
    if budget == "quick":
        total = QUICK_TOTAL[objective]
        iterations = total if family == "glad" else max(1, total // PRIOR_LAYERS_28_32)
        extra = quick_mtt(dataset, ipc) if objective == "mtt" else {}
        return with_fields(paper, iterations=iterations, **QUICK_PRIOR, **QUICK_FEATURES, **QUICK_LRS[objective],
                           **extra)
    if budget == "smoke":
        extra = SMOKE_MTT if objective == "mtt" else {}
        return with_fields(paper, iterations=1 if family == "hpd" else 2, **SMOKE, **extra)
    raise ConfigError(f"{family}-{objective} has no hyperparameters for budget {budget!r}; use smoke, quick or paper")


class _LatentMethod(benchsuite.Method):
    kind = "distill"
    Config = LatentConfig
    family = "glad"
    objective = "dc"


    def prepare(self, real, ipc, ctx):
        return prepare_caches(self.config, real, ctx)

    def distill(self, real, ipc, ctx):
        cfg = self.config
        if cfg.objective != self.objective:
            raise ConfigError(f"{self.name} uses the {self.objective} objective; objective={cfg.objective!r} "
                              f"belongs to {self.family}-{cfg.objective}")
        prior = resolve_prior(cfg, real, ctx)
        run = distill_glad if self.family == "glad" else distill_hpd
        latents, info, objective = run(self.name, cfg, real, ipc, ctx, prior)
        labels = torch.arange(real.num_classes, device=real.device).repeat_interleave(ipc)
        zca = objective.zca
        return benchsuite.SyntheticSet(
            latents.render(), labels,
            storage_bytes=latents.storage_bytes(),
            learned_lr=info.get("learned_lr"),
            transform=zca.describe() if zca is not None else None,
            extra={"prior": prior.describe(), self.family: {**info, "latent_floats": latents.storage_floats(),
                                                            "ws_shape": list(latents.ws.shape),
                                                            "f_shape": list(latents.f.shape)}})


def _make(family: str, objective: str, description: str) -> type:
    budgets = {budget: (lambda dataset, ipc, protocol, budget=budget: config_for(family, objective, budget, dataset, ipc))
               for budget in ("smoke", "quick", "paper")}
    return type(f"{family.upper()}_{objective.upper()}", (_LatentMethod,), {
        "name": f"{family}-{objective}", "version": "1", "family": family, "objective": objective,
        "description": description, "budgets": budgets, "__module__": __name__})


GLAD_DC = _make("glad", "dc", "DC's gradient matching on a generator's latents (W+, F_k) (docs/methods/glad.md)")
GLAD_DM = _make("glad", "dm", "DM's distribution matching on a generator's latents (W+, F_k) (docs/methods/glad.md)")
HPD_DC = _make("hpd", "dc", "GLaD-DC walked through the generator's layers, best snapshot per layer "
                            "(docs/methods/hpd.md)")
HPD_DM = _make("hpd", "dm", "GLaD-DM walked through the generator's layers, best snapshot per layer "
                            "(docs/methods/hpd.md)")
GLAD_MTT = _make("glad", "mtt", "MTT's trajectory matching on a generator's latents (W+, F_k) (docs/methods/glad.md)")
HPD_MTT = _make("hpd", "mtt", "GLaD-MTT walked through the generator's layers, best snapshot per layer "
                              "(docs/methods/hpd.md)")


@benchsuite.hookimpl
def register_methods(register):
    for cls in (GLAD_DC, GLAD_DM, GLAD_MTT, HPD_DC, HPD_DM, HPD_MTT):
        register(cls)
