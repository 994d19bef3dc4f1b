"""A generative prior the suite trains itself, for GLaD and H-PD (docs/methods/glad.md,
"The generative prior"; docs/methods/hpd.md).

No pretrained StyleGAN-XL can be downloaded here, so the suite provides a small style-based,
class-conditional generator with the structure those methods need:

* a mapping network ``(z, class) → w`` (MLP over the normalised ``z`` concatenated with a class
  embedding);
* synthesis layers ``L_0 … L_{n-1}``, from a learned 4×4 constant up to the image size (4 → 8 →
  16 → 32, or 4 → 7 → 14 → 28 for 28-pixel images), each a 3×3 convolution modulated and
  demodulated by its own style vector (StyleGAN2's weight demodulation, computed as input scaling
  and output scaling, which is the same function), then LeakyReLU 0.2; ``L_0`` works on the
  constant, every later layer first upsamples ×2 (to the next size);
* a 1×1 modulated ``to_rgb`` on the last feature map, with its own style.

So the W+ space has ``n + 1`` style vectors, and ``F_k``, the output of ``L_k``, exists for every
k: ``render(k, F_k, ws)`` runs ``L_{k+1} … L_{n-1}`` and ``to_rgb``; ``push(k, F_k, ws)`` is
``L_{k+1}(F_k, ws[k+1])`` (H-PD's step one layer deeper). Images come out in the suite's
normalised space, the space the real images the prior was trained on live in.

Training (:func:`train_prior`): the non-saturating logistic GAN loss with lazy R1 regularisation
on real images, Adam (β 0, 0.99) as StyleGAN2, a class-conditional projection discriminator, and
an exponential moving average of the generator's weights, which is the generator that is kept.
Two standard guards against mode collapse within a class, added after a first prior drew one image
per class whatever the noise: StyleGAN's 0.01 learning-rate multiplier on the mapping network, and
MSGAN's mode-seeking term on pairs of one class.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchsuite import atomic
from benchsuite.locks import build_lock
from benchsuite.api import LabeledData
from benchsuite.atomic import load_failure
from benchsuite.errors import ConfigError, MethodError

log = logging.getLogger("benchsuite")

__all__ = ["PriorConfig", "StyleGenerator", "ProjectionDiscriminator", "synthesis_sizes", "train_prior", "mode_seeking_loss",
           "PriorStore", "Prior"]


def synthesis_sizes(image_side: int) -> list[int]:
    """Feature-map sides from 4 up to the image: halve the image side until it is at most 8, then
    start at 4 (32 → [4, 8, 16, 32]; 28 → [4, 7, 14, 28]; 16 → [4, 8, 16])."""
    if image_side < 8:
        raise ConfigError(f"the generative prior needs images of at least 8 pixels, got {image_side}")
    sizes = [image_side]
    while sizes[-1] > 8:
        if sizes[-1] % 2:
            raise ConfigError(f"image side {image_side} does not halve down to 8 or less through even sizes")
        sizes.append(sizes[-1] // 2)
    if sizes[-1] != 4:
        sizes.append(4)
    return sizes[::-1]


@dataclass(frozen=True)
class PriorConfig:
    z_dim: int = 64
    w_dim: int = 64
    mapping_layers: int = 3
    channels: int = 48            # every synthesis layer and the discriminator
    steps: int = 6000             # generator updates
    batch: int = 64
    lr: float = 2e-3              # Adam, β = (0, 0.99) as StyleGAN2
    r1_gamma: float = 0.2         # R1 weight, applied every r1_every steps (lazy regularisation)
    r1_every: int = 4
    ema_half_life: int = 500      # steps after which an old weight counts half in the kept generator
    # Against mode collapse within a class (prior v2 drew one image per class whatever z was):
    mapping_lr_mult: float = 0.01  # StyleGAN's learning-rate multiplier for the mapping network
    mode_seeking: float = 1.0      # weight of MSGAN's mode-seeking term (Mao et al., CVPR'19); 0 = off

    def __post_init__(self) -> None:
        for name in ("z_dim", "w_dim", "mapping_layers", "channels", "steps", "batch", "r1_every", "ema_half_life"):
            if getattr(self, name) < 1:
                raise ConfigError(f"prior.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.r1_gamma < 0 or self.mapping_lr_mult <= 0 or self.mode_seeking < 0:
            raise ConfigError(f"prior.lr ({self.lr}) and prior.mapping_lr_mult ({self.mapping_lr_mult}) must be > 0, "
                              f"prior.r1_gamma ({self.r1_gamma}) and prior.mode_seeking ({self.mode_seeking}) >= 0")


class ModulatedConv(nn.Module):
    """A k×k conv whose input channels are scaled by a style (affine of w) and whose output is
    demodulated to unit expected variance: StyleGAN2's weight (de)modulation, written as
    ``conv(x · s) · d`` with ``d = 1/sqrt(Σ_{in,k} (W·s)² + ε)``, the same function as modulating the
    weight per sample."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, kernel: int, demodulate: bool, generator: torch.Generator):
        super().__init__()
        self.weight = nn.Parameter(torch.randn((c_out, c_in, kernel, kernel), generator=generator))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.affine = nn.Linear(w_dim, c_in)
        with torch.no_grad():  # styles start at 1 (bias 1), as StyleGAN2's affine layers
            self.affine.weight.copy_(torch.randn(self.affine.weight.shape, generator=generator) / math.sqrt(w_dim))
            self.affine.bias.fill_(1.0)
        self.scale = 1.0 / math.sqrt(c_in * kernel * kernel)  # equalised learning rate
        self.demodulate, self.padding = demodulate, kernel // 2

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        s = self.affine(w)                                    # [B, c_in]
        weight = self.weight * self.scale
        y = F.conv2d(x * s[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            d = torch.rsqrt((weight.square().sum(dim=(2, 3))[None] * s.square()[:, None, :]).sum(dim=2) + 1e-8)
            y = y * d[:, :, None, None]
        return y + self.bias[None, :, None, None]


class StyleGenerator(nn.Module):
    def __init__(self, cfg: PriorConfig, num_classes: int, image_shape: tuple[int, int, int], generator: torch.Generator):
        super().__init__()
        c_img, h, w = image_shape
        if h != w:
            raise ConfigError(f"the generative prior makes square images, got {h}x{w}")
        self.cfg, self.num_classes, self.image_shape = cfg, int(num_classes), tuple(image_shape)
        self.sizes = synthesis_sizes(h)
        C = cfg.channels
        # torch's default inits draw from the global RNG; every weight is then redrawn from
        # ``generator``, so the fork only keeps the global state untouched.
        with torch.random.fork_rng(devices=[]):
            self.embed = nn.Embedding(num_classes, cfg.z_dim)
            dims = [2 * cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
            self.mapping = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
            self.const = nn.Parameter(torch.randn((1, C, 4, 4), generator=generator))
            self.layers = nn.ModuleList([ModulatedConv(C, C, cfg.w_dim, 3, True, generator) for _ in self.sizes])
            self.to_rgb = ModulatedConv(C, c_img, cfg.w_dim, 1, False, generator)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(self.embed.weight.shape, generator=generator))
            for lin in self.mapping:
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=generator) * math.sqrt(2.0 / lin.in_features))
                lin.bias.zero_()

    @property
    def num_ws(self) -> int:
        """Style vectors in W+: one per synthesis layer, one for to_rgb."""
        return len(self.layers) + 1

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def map(self, z: Tensor, classes: Tensor) -> Tensor:
        """``w`` ``[B, w_dim]`` for noise ``z`` and class indices."""
        e = self.embed(classes)
        x = torch.cat([z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8),
                       e * torch.rsqrt(e.square().mean(1, keepdim=True) + 1e-8)], dim=1)
        for lin in self.mapping:
            x = F.leaky_relu(lin(x), 0.2)
        return x

    def broadcast(self, w: Tensor) -> Tensor:
        """``w`` ``[B, w_dim]`` as W+ ``[B, num_ws, w_dim]`` (the same style for every layer)."""
        return w[:, None, :].expand(-1, self.num_ws, -1)

    def layer(self, k: int, x: Tensor | None, w: Tensor) -> Tensor:
        """``L_k``: the constant (k = 0) or the upsampled ``x``, modulated conv by ``w``, LeakyReLU."""
        if k == 0:
            x = self.const.expand(w.shape[0], -1, -1, -1)
        else:
            assert x is not None
            x = F.interpolate(x, size=(self.sizes[k], self.sizes[k]), mode="bilinear", align_corners=False)
        return F.leaky_relu(self.layers[k](x, w), 0.2)

    def features(self, k: int, ws: Tensor) -> Tensor:
        """``F_k``: the output of ``L_0 … L_k`` under W+ ``ws``."""
        x = None
        for i in range(k + 1):
            x = self.layer(i, x, ws[:, i])
        assert x is not None
        return x

    def push(self, k: int, f: Tensor, ws: Tensor) -> Tensor:
        """``F_{k+1} = L_{k+1}(F_k)``: H-PD's move one layer deeper."""
        return self.layer(k + 1, f, ws[:, k + 1])

    def render(self, k: int, f: Tensor, ws: Tensor) -> Tensor:
        """Images from ``F_k`` through ``L_{k+1} … L_{n-1}`` and to_rgb (GLaD's G_{k→out})."""
        x = f
        for i in range(k + 1, self.num_layers):
            x = self.layer(i, x, ws[:, i])
        return self.to_rgb(x, ws[:, -1])

    def forward(self, z: Tensor, classes: Tensor) -> Tensor:
        ws = self.broadcast(self.map(z, classes))
        return self.render(0, self.features(0, ws), ws)


class ProjectionDiscriminator(nn.Module):
    """Conv stack down to 4×4, StyleGAN's minibatch standard deviation as one extra channel (it lets
    the discriminator see a batch without variety, the usual cure for mode collapse, which a first
    Fashion-MNIST prior without it showed), then ``ψ(h) + ⟨embed(y), h⟩`` (Miyato & Koyama's
    projection)."""

    MBSTD_GROUP = 4

    def __init__(self, cfg: PriorConfig, num_classes: int, image_shape: tuple[int, int, int]):
        super().__init__()
        c_img, h, _ = image_shape
        C = cfg.channels
        self.sizes = synthesis_sizes(h)[::-1]  # image side down to 4
        self.stem = nn.Conv2d(c_img, C, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv2d(C, C, 3, padding=1) for _ in self.sizes])
        self.head = nn.Linear((C + 1) * 16, C)
        self.out = nn.Linear(C, 1)
        self.embed = nn.Embedding(num_classes, C)

    def minibatch_std(self, h: Tensor) -> Tensor:
        """``[B, 1, H, W]``: the std over groups of ``MBSTD_GROUP`` samples, averaged over features."""
        b, c, hh, ww = h.shape
        g = math.gcd(self.MBSTD_GROUP, b)
        std = h.view(g, b // g, c, hh, ww).var(dim=0, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))
        return std.view(b // g, 1, 1, 1).repeat(g, 1, hh, ww)

    def forward(self, x: Tensor, classes: Tensor) -> Tensor:
        h = F.leaky_relu(self.stem(x), 0.2)
        for i, block in enumerate(self.blocks):
            h = F.leaky_relu(block(h), 0.2)
            if i + 1 < len(self.sizes):
                h = F.adaptive_avg_pool2d(h, self.sizes[i + 1])
        h = F.leaky_relu(self.head(torch.cat([h, self.minibatch_std(h)], dim=1).flatten(1)), 0.2)
        return self.out(h).squeeze(1) + (self.embed(classes) * h).sum(dim=1)


def mode_seeking_loss(a: Tensor, b: Tensor, za: Tensor, zb: Tensor) -> Tensor:
    """MSGAN's term: ``1 / (mean|G(z1) − G(z2)| / mean|z1 − z2| + ε)`` per pair of one class,
    averaged; it grows when two noises give the same image, so minimising it spreads z over the
    class's images."""
    ratio = (a - b).abs().flatten(1).mean(1) / (za - zb).abs().mean(1)
    return (1.0 / (ratio + 1e-5)).mean()


def train_prior(real: LabeledData, cfg: PriorConfig, generator: torch.Generator,
                progress: Callable[..., None] = lambda *a, **k: None) -> StyleGenerator:
    """Train a generator on ``real`` and return the moving average of its weights (eval mode).

    Every random draw (initial weights, batches, noise, classes) comes from ``generator``; the
    global RNG is left alone (the discriminator's default init runs under a forked RNG).
    """
    device = real.device
    k, shape = real.num_classes, tuple(real.image_shape)
    G = StyleGenerator(cfg, k, shape, generator).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=generator)))
        D = ProjectionDiscriminator(cfg, k, shape).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    # The mapping network (and class embedding) learns 100x slower, as in StyleGAN: a fast mapping
    # learns to ignore z, one of the roads to a single image per class.
    mapping = list(G.embed.parameters()) + list(G.mapping.parameters())
    mapping_ids = {id(p) for p in mapping}
    synthesis = [p for p in G.parameters() if id(p) not in mapping_ids]
    opt_g = torch.optim.Adam([{"params": synthesis, "lr": cfg.lr},
                              {"params": mapping, "lr": cfg.lr * cfg.mapping_lr_mult}], betas=(0.0, 0.99))
    # Lazy R1: the regulariser runs every r1_every steps with its weight scaled up, and Adam's
    # parameters are adjusted as StyleGAN2 does so the effective step stays the same.
    c = cfg.r1_every / (cfg.r1_every + 1)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr * c, betas=(0.0, 0.99 ** c))
    beta = 0.5 ** (1.0 / cfg.ema_half_life)
    n = len(real)

    def noise(b: int) -> tuple[Tensor, Tensor]:
        z = torch.randn((b, cfg.z_dim), generator=generator).to(device)
        y = torch.randint(k, (b,), generator=generator).to(device)
        return z, y

    progress(0, cfg.steps)
    for step in range(cfg.steps):
        ix = torch.randint(n, (cfg.batch,), generator=generator).to(device)
        x_real, y_real = real.images[ix], real.labels[ix]
        # discriminator
        z, y = noise(cfg.batch)
        with torch.no_grad():
            fake = G(z, y)
        loss_d = F.softplus(D(fake, y)).mean() + F.softplus(-D(x_real, y_real)).mean()
        if cfg.r1_gamma > 0 and step % cfg.r1_every == 0:
            x_r = x_real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_r, y_real).sum(), x_r, create_graph=True)
            loss_d = loss_d + cfg.r1_gamma / 2 * grad.square().sum(dim=(1, 2, 3)).mean() * cfg.r1_every
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # generator
        z, y = noise(cfg.batch)
        half = cfg.batch // 2
        if cfg.mode_seeking > 0 and half > 0:
            y = torch.cat([y[:half], y[:half], y[2 * half:]])  # pairs: same class, different z
        fake = G(z, y)
        loss_g = F.softplus(-D(fake, y)).mean()
        if cfg.mode_seeking > 0 and half > 0:
            loss_g = loss_g + cfg.mode_seeking * mode_seeking_loss(fake[:half], fake[half:2 * half],
                                                                  z[:half], z[half:2 * half])
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=list(G.parameters()))
        opt_g.step()
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1.0 - beta)
        if not bool(torch.isfinite(loss_d.detach()) & torch.isfinite(loss_g.detach())):
            raise MethodError(f"generative prior training diverged at step {step + 1} (loss_d {float(loss_d)}, "
                              f"loss_g {float(loss_g)}); lower prior.lr")
        progress(step + 1, cfg.steps, loss_d=float(loss_d.detach()), loss_g=float(loss_g.detach()))
    return G_ema


#: The ``format`` field of a prior file; files written before it existed carry none.
PRIOR_FORMAT = 1
_PRIOR_FIELDS = {"config": dict, "num_classes": int, "image_shape": list, "state": dict}


def read_prior_file(path: Path) -> dict:
    """A prior file's payload, loaded with ``weights_only=True``: a file that is not a prior (or
    whose pickle would build arbitrary objects, i.e. run code) is refused with :class:`MethodError`,
    never executed."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable, truncated, or a pickle of arbitrary objects
        raise MethodError(f"{path} is not a generative prior written by benchsuite ({load_failure(exc)}). "
                          "Delete it to retrain, or pass a prior written by benchsuite") from None
    problems = [] if isinstance(payload, dict) else [f"a {type(payload).__name__}, not a dict"]
    if not problems:
        problems = [f"{k!r} missing or not a {t.__name__}" for k, t in _PRIOR_FIELDS.items()
                    if not isinstance(payload.get(k), t)]
    if not problems and not all(isinstance(v, Tensor) for v in payload["state"].values()):
        problems.append("'state' holds values that are not tensors")
    if problems:
        raise MethodError(f"{path} is not a generative prior written by benchsuite: {'; '.join(problems)}. "
                          "Delete it to retrain, or pass a prior written by benchsuite")
    return payload


@dataclass
class Prior:
    """A trained generator with where it came from."""

    generator: StyleGenerator
    path: Path
    key: str
    train_seconds: float
    parameters: int

    def describe(self) -> dict:
        return {"path": str(self.path), "key": self.key, "train_seconds": round(self.train_seconds, 1),
                "parameters": self.parameters, "bytes": self.path.stat().st_size if self.path.exists() else None,
                "config": dataclasses.asdict(self.generator.cfg), "num_ws": self.generator.num_ws,
                "layers": self.generator.num_layers, "sizes": self.generator.sizes}


class PriorStore:
    """The cache of trained priors: ``<cache>/priors/<dataset>-<key>/prior.pt`` plus
    ``samples.png``. The key hashes the dataset (name and a fingerprint of its tensors), the image
    shape, the classes, the config and the seed. Writes are atomic (temporary name, rename)."""

    def __init__(self, cache_dir: Path, dataset: str, real: LabeledData, cfg: PriorConfig, seed: int):
        self.cfg, self.seed, self.real = cfg, int(seed), real
        fingerprint = hashlib.sha256()
        fingerprint.update(real.images[:: max(1, len(real) // 512)].detach().cpu().contiguous().numpy().tobytes())
        fingerprint.update(real.labels.detach().cpu().numpy().tobytes())
        blob = json.dumps({"dataset": dataset, "shape": list(real.image_shape), "classes": real.num_classes,
                           "n": len(real), "data": fingerprint.hexdigest(), "config": dataclasses.asdict(cfg),
                           "seed": self.seed, "version": 3}, sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()[:16]
        self.dir = Path(cache_dir) / "priors" / f"{dataset}-{self.key}"
        self.path = self.dir / "prior.pt"

    def load(self, path: Path | None = None) -> Prior | None:
        path = Path(path) if path is not None else self.path
        if not path.exists():
            return None
        payload = read_prior_file(path)
        if tuple(payload["image_shape"]) != tuple(self.real.image_shape) or payload["num_classes"] != self.real.num_classes:
            raise MethodError(f"the generative prior {path} makes {payload['num_classes']} classes of "
                              f"{payload['image_shape']} images; this dataset has {self.real.num_classes} of "
                              f"{list(self.real.image_shape)}")
        try:
            cfg = PriorConfig(**payload["config"])
            G = StyleGenerator(cfg, payload["num_classes"], tuple(payload["image_shape"]), torch.Generator())
            G.load_state_dict(payload["state"])
        except Exception as exc:  # noqa: BLE001 - weights of another generator layout
            raise MethodError(f"the generative prior {path} does not fit the suite's generator: "
                              f"{type(exc).__name__}: {exc}. Delete it to retrain, or pass a prior written by "
                              "benchsuite") from exc
        G = G.to(self.real.device).eval().requires_grad_(False)
        return Prior(G, path, str(payload.get("key", "user")), float(payload.get("train_seconds", 0.0)),
                     sum(p.numel() for p in G.parameters()))

    def save(self, G: StyleGenerator, train_seconds: float) -> None:
        # Plain tensors, numbers, strings and lists only: the file must load with weights_only=True.
        payload = {"format": PRIOR_FORMAT, "config": dataclasses.asdict(G.cfg), "num_classes": int(G.num_classes),
                   "image_shape": [int(v) for v in G.image_shape],
                   "state": {k: v.detach().cpu() for k, v in G.state_dict().items()},
                   "key": self.key, "train_seconds": float(train_seconds)}
        atomic.torch_save(payload, self.path)

    def ensure(self, progress: Callable[..., None] = lambda *a, **k: None) -> Prior:
        """The cached prior, trained first if missing (with a progress bar), plus its sample grid.
        Built under the entry's lock: a second process waits, then loads what the first trained."""
        with build_lock(self.dir):
            return self._load_or_train(progress)

    def _load_or_train(self, progress: Callable[..., None]) -> Prior:
        try:
            prior = self.load()
        except MethodError as exc:  # a torn or foreign file in the cache: keep it aside, train anew
            moved = atomic.move_aside(self.path)
            log.warning("%s; moved it to %s and training the prior again", exc, moved)
            prior = None
        if prior is not None:
            return prior
        t0 = time.perf_counter()
        G = train_prior(self.real, self.cfg, torch.Generator().manual_seed(self.seed), progress)
        seconds = time.perf_counter() - t0
        self.save(G, seconds)
        self.save_grid(G)
        prior = self.load()
        assert prior is not None
        return prior

    def save_grid(self, G: StyleGenerator, per_class: int = 10) -> Path:
        """``samples.png``: one row per class (un-normalised with the dataset's statistics when the
        caller has them; here min-max per image, a picture only)."""
        from torchvision.utils import save_image

        g = torch.Generator().manual_seed(12345)
        y = torch.arange(G.num_classes).repeat_interleave(per_class).to(self.real.device)
        z = torch.randn((len(y), G.cfg.z_dim), generator=g).to(self.real.device)
        with torch.no_grad():
            images = G(z, y).cpu()
        lo = images.amin(dim=(1, 2, 3), keepdim=True)
        hi = images.amax(dim=(1, 2, 3), keepdim=True)
        out = self.dir / "samples.png"
        save_image((images - lo) / (hi - lo + 1e-8), out, nrow=per_class)
        return out
