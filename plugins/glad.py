"""GLaD (Cazenavette et al., CVPR'23) and H-PD (Zhong et al., CVPR'25): distillation in the latent
space of a generative prior, with DC's or DM's objective. METHODS.md §5 and §8.

The synthetic set is (W+, F_k) per image, rendered by the rest of the generator; the objective
sees the rendered images, and its image gradient goes back into the latents in chunks (GLaD's
two-stage backward). The prior is the suite's own class-conditional style-based generator
(``benchsuite/ops/priors.py``), trained on the dataset's train set at first use and cached; a
user checkpoint can be passed with ``--set glad-dm.prior_path=...``. StyleGAN-XL weights cannot be
downloaded here, so results are not comparable to the papers' ImageNet figures.

Storage counts the latents (W+ and F_k); the record also names the prior and its size
(``method_extra.prior``), which the latents need to be rendered.

``glad-mtt`` and ``hpd-mtt`` are not implemented yet (the trajectory objective needs the same
latent optimiser hooked into ``ops/trajectory_matching.py``).
"""

from __future__ import annotations

import torch

import benchsuite
from benchsuite.errors import ConfigError
from benchsuite.ops.latent_distill import LatentConfig, distill_glad, distill_hpd, resolve_prior, with_fields

PAPER_SOURCE = "METHODS.md §5.3 (GLaD defaults) and §8.2 (H-PD defaults), read in the released code"

# Published defaults per objective (METHODS.md §5.3, §8.2). `iterations` is GLaD's total and
# H-PD's per layer (`inter_iteration`). GLaD's ImageNet layers (DC 16, DM 20 of StyleGAN-XL) have
# no counterpart in the suite's 3-4 layer prior; k = 1 (a 7x7 or 8x8 feature map) is the choice
# here, and H-PD starts from the first layer and walks all of them.
PAPER = {
    ("glad", "dc"): LatentConfig(objective="dc", iterations=1000, layer=1, lr_w=1e-3, lr_f=1.0, lr_net=0.01),
    ("glad", "dm"): LatentConfig(objective="dm", iterations=1000, layer=1, lr_w=1e-2, lr_f=10.0, batch_real=256),
    ("hpd", "dc"): LatentConfig(objective="dc", iterations=100, layer=0, lr_w=1e-3, lr_f=1.0, lr_net=0.01),
    ("hpd", "dm"): LatentConfig(objective="dm", iterations=10, layer=0, lr_w=1e-2, lr_f=10.0, batch_real=256),
}

# `quick`: real Fashion-MNIST on the 2-core CPU. The prior: 32 channels, 3,000 steps (README
# "Generative prior": its cost and sanity figure). Distillation budgets match the pixel methods'
# quick budgets (dc 40 matching steps, dm 100 iterations), split over the prior's layers for H-PD.
QUICK_PRIOR = dict(prior_steps=3000, prior_channels=32)
QUICK_TOTAL = {"dc": 40, "dm": 100}
QUICK_FEATURES = dict(feature_nets=2, feature_real_per_class=64)
SMOKE = dict(prior_steps=2, prior_channels=8, batch_real=8, batch_train=8, bn_real_per_class=4,
             feature_nets=1, feature_real_per_class=4)
PRIOR_LAYERS_28_32 = 4  # the suite's prior has 4 synthesis layers for 28- and 32-pixel images


def config_for(family: str, objective: str, budget: str) -> LatentConfig:
    paper = PAPER[(family, objective)]
    if budget == "paper":
        return paper
    if budget == "quick":
        total = QUICK_TOTAL[objective]
        iterations = total if family == "glad" else max(1, total // PRIOR_LAYERS_28_32)
        return with_fields(paper, iterations=iterations, **QUICK_PRIOR, **QUICK_FEATURES)
    if budget == "smoke":
        return with_fields(paper, iterations=1 if family == "hpd" else 2, **SMOKE)
    raise ConfigError(f"{family}-{objective} has no hyperparameters for budget {budget!r}; use smoke, quick or paper")


class _LatentMethod(benchsuite.Method):
    kind = "distill"
    Config = LatentConfig
    family = "glad"
    objective = "dc"

    @classmethod
    def config_for(cls, dataset, ipc, protocol):
        return config_for(cls.family, cls.objective, protocol.budget)

    def distill(self, real, ipc, ctx):
        cfg = self.config
        if cfg.objective != self.objective:
            raise ConfigError(f"{self.name} uses the {self.objective} objective; objective={cfg.objective!r} "
                              f"belongs to {self.family}-{cfg.objective}")
        prior = resolve_prior(cfg, real, ctx)
        run = distill_glad if self.family == "glad" else distill_hpd
        latents, info = run(self.name, cfg, real, ipc, ctx, prior)
        labels = torch.arange(real.num_classes, device=real.device).repeat_interleave(ipc)
        return benchsuite.SyntheticSet(
            latents.render(), labels,
            storage_bytes=latents.storage_floats() * 4,
            extra={"prior": prior.describe(), self.family: {**info, "latent_floats": latents.storage_floats(),
                                                            "ws_shape": list(latents.ws.shape),
                                                            "f_shape": list(latents.f.shape)}})


def _make(family: str, objective: str, description: str) -> type:
    return type(f"{family.upper()}_{objective.upper()}", (_LatentMethod,), {
        "name": f"{family}-{objective}", "version": "1", "family": family, "objective": objective,
        "description": description, "__module__": __name__})


GLAD_DC = _make("glad", "dc", "DC's gradient matching on a generator's latents (W+, F_k) (METHODS.md §5)")
GLAD_DM = _make("glad", "dm", "DM's distribution matching on a generator's latents (W+, F_k) (METHODS.md §5)")
HPD_DC = _make("hpd", "dc", "GLaD-DC walked through the generator's layers, best snapshot per layer (METHODS.md §8)")
HPD_DM = _make("hpd", "dm", "GLaD-DM walked through the generator's layers, best snapshot per layer (METHODS.md §8)")


@benchsuite.hookimpl
def register_methods(register):
    for cls in (GLAD_DC, GLAD_DM, HPD_DC, HPD_DM):
        register(cls)
