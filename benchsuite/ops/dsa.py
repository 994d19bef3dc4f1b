"""Differentiable Siamese Augmentation (DSA), re-implemented as docs/augmentation.md describes.

Every op is differentiable with respect to the images, vectorised over the batch (no Python
loop over samples) and draws its randomness from an explicit CPU ``torch.Generator``; the
global torch RNG is never touched (the official code re-seeds it).

Usage::

    dsa = DSA(spec.dsa_strategy)          # no flip for digit datasets (MNIST, SVHN)
    x_aug = dsa(x, generator)             # independent parameters per sample (training, evaluation)
    real_aug, syn_aug = dsa.siamese(real, syn, generator=generator)   # one shared transformation

Callers should pass ``spec.dsa_strategy`` of their :class:`~benchsuite.data.spec.DatasetSpec`
(``DSA.for_dataset(spec)`` does that): the published strategy omits ``flip`` for digits, whose
classes are not mirror-symmetric. :data:`STRATEGY_NATURAL` and :data:`STRATEGY_DIGITS` are the
two published strings.

Mode 'S' (the published default): each call picks **one** op name uniformly from the strategy and
applies only that op; ``color`` applies brightness, saturation and contrast together.

A :class:`Draw` holds the random parameters of one call and does not depend on the image size:
integer quantities (crop shift, cutout centre) are stored as uniforms in [0, 1) and turned into
pixels by :meth:`DSA.apply` from the size of the batch it is applied to. The mapping is

* crop: ``s = int(crop_pad_ratio * H + 0.5)`` (4 px for 32 px, 4 px for 28 px),
  ``shift = floor(u * (2s + 1)) - s`` in ``[-s, s]``; positive shifts move the content right
  (x) / down (y); vacated pixels are zero. The same for the width with ``W``.
* cutout: side ``c = int(cutout_ratio * H + 0.5)`` (16 px for 32 px, 14 px for 28 px), centre
  ``floor(u * (H + 1 - c % 2))``, square rows ``[centre - c // 2, centre - c // 2 + c)`` clipped to
  the image (as the official code). The same for the width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from benchsuite.errors import ConfigError

__all__ = [
    "DSA",
    "DSAParams",
    "Draw",
    "VALID_OPS",
    "STRATEGY_NATURAL",
    "STRATEGY_DIGITS",
    "strategy_for",
]

VALID_OPS: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")
STRATEGY_NATURAL = "color_crop_cutout_flip_scale_rotate"
STRATEGY_DIGITS = "color_crop_cutout_scale_rotate"  # no flip: digits are not mirror-symmetric
_IDENTITY = "none"

# Scale and rotate sample with align_corners=True (grid_sample, and a sampling grid equal to
# affine_grid(..., align_corners=True)). That is the behaviour of
# torch < 1.3, which the DSA paper was run with; since torch 1.3 the default is False, which
# shifts scale/rotate by half a pixel (docs/augmentation.md, "align_corners").
_ALIGN_CORNERS = True


@dataclass(frozen=True)
class DSAParams:
    """Augmentation strengths; the defaults are the published ``ParamDiffAug`` values."""

    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    crop_pad_ratio: float = 0.125
    cutout_ratio: float = 0.5
    flip_prob: float = 0.5
    scale_ratio: float = 1.2
    rotate_degrees: float = 15.0

    def __post_init__(self) -> None:
        for name in ("brightness", "saturation", "contrast", "crop_pad_ratio", "cutout_ratio",
                     "rotate_degrees"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"DSAParams.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ConfigError(f"DSAParams.flip_prob must be in [0, 1], got {self.flip_prob!r}")
        if not self.scale_ratio >= 1.0:
            raise ConfigError(f"DSAParams.scale_ratio must be >= 1, got {self.scale_ratio!r}")
        if not self.cutout_ratio <= 1.0:
            raise ConfigError(f"DSAParams.cutout_ratio must be <= 1, got {self.cutout_ratio!r}")


@dataclass
class Draw:
    """The random parameters of one augmentation call.

    ``op`` is the chosen op (``"none"`` for the identity strategy). ``values`` maps parameter
    names to CPU tensors whose first dimension is either the batch size (per-sample draw) or 1
    (shared draw, broadcast to any batch). Keys per op:

    * ``color``: ``brightness`` (additive shift), ``saturation``, ``contrast`` (factors), ``[n,1,1,1]``
    * ``crop``: ``u_x``, ``u_y`` (uniforms in [0, 1) giving the shift, see module doc), ``[n]``
    * ``cutout``: ``u_x``, ``u_y`` (uniforms giving the square centre), ``[n]``
    * ``flip``: ``flip`` (bool), ``[n]``
    * ``scale``: ``sx``, ``sy`` (grid scale factors in [1/ratio, ratio]), ``[n]``
    * ``rotate``: ``angle`` (radians), ``[n]``
    """

    op: str
    values: dict[str, Tensor] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        """Leading size of the parameters: the batch size, or 1 for a shared draw."""
        for v in self.values.values():
            return int(v.shape[0])
        return 1


def strategy_for(digits: bool) -> str:
    """The published strategy: :data:`STRATEGY_DIGITS` (no flip) for digits, else natural images.

    Prefer ``spec.dsa_strategy`` when a :class:`DatasetSpec` is at hand.
    """
    return STRATEGY_DIGITS if digits else STRATEGY_NATURAL


def _parse_strategy(strategy: str) -> tuple[str, ...]:
    if not isinstance(strategy, str):
        raise ConfigError(f"DSA strategy must be a string such as {STRATEGY_NATURAL!r}, "
                          f"got {type(strategy).__name__}")
    s = strategy.strip().lower()
    if s in ("", _IDENTITY):
        return ()
    ops = tuple(p for p in s.split("_"))
    bad = [p for p in ops if p not in VALID_OPS]
    if bad:
        raise ConfigError(
            f"unknown DSA op(s) {', '.join(repr(b) for b in bad)} in strategy {strategy!r}; "
            f"valid ops are {', '.join(VALID_OPS)} joined by '_' (e.g. {STRATEGY_NATURAL!r}), "
            f"or 'none' for no augmentation"
        )
    return ops


def _check_generator(generator: Any) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError("DSA draws its parameters on the CPU: pass a CPU torch.Generator "
                         f"(got one on {generator.device})")


def _unit_linspace(size: int, like: Tensor) -> Tensor:
    """Normalised coordinates of ``size`` pixel centres with align_corners=True (as affine_grid)."""
    if size <= 1:
        return torch.zeros(size, device=like.device, dtype=like.dtype)
    return torch.linspace(-1.0, 1.0, size, device=like.device, dtype=like.dtype)


class DSA:
    """Differentiable siamese augmentation with a fixed strategy (mode 'S')."""

    def __init__(self, strategy: str = STRATEGY_NATURAL, params: DSAParams = DSAParams()) -> None:
        if not isinstance(params, DSAParams):
            raise ConfigError(f"params must be a DSAParams, got {type(params).__name__}")
        self.strategy = strategy
        self.ops: tuple[str, ...] = _parse_strategy(strategy)
        self.params = params

    @classmethod
    def for_dataset(cls, spec: Any, params: DSAParams = DSAParams()) -> "DSA":
        """DSA with the dataset's published strategy (``spec.dsa_strategy``: no flip for digits)."""
        return cls(spec.dsa_strategy, params)

    def __repr__(self) -> str:
        return f"DSA(strategy={self.strategy!r}, params={self.params!r})"

    # ------------------------------------------------------------------ drawing

    def draw(self, n: int, generator: torch.Generator, shared: bool = False) -> Draw:
        """Draw the op and its parameters for a batch of ``n`` images.

        With ``shared=True`` one set of parameters (leading size 1) is drawn, which
        :meth:`apply` broadcasts so that every sample of every batch gets the same
        transformation. All randomness comes from ``generator``; tensors are on the CPU.
        """
        _check_generator(generator)
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not self.ops:
            return Draw(_IDENTITY, {})
        if len(self.ops) == 1:
            op = self.ops[0]
        else:
            op = self.ops[int(torch.randint(len(self.ops), (1,), generator=generator))]
        m = 1 if shared else int(n)
        p = self.params
        g = generator

        def rand(*shape: int) -> Tensor:
            return torch.rand(shape, generator=g, dtype=torch.float32)

        if op == "color":
            values = {
                "brightness": (rand(m, 1, 1, 1) - 0.5) * p.brightness,
                "saturation": rand(m, 1, 1, 1) * p.saturation,
                "contrast": rand(m, 1, 1, 1) + p.contrast,
            }
        elif op in ("crop", "cutout"):
            values = {"u_x": rand(m), "u_y": rand(m)}
        elif op == "flip":
            values = {"flip": rand(m) < p.flip_prob}
        elif op == "scale":
            lo = 1.0 / p.scale_ratio
            values = {"sx": rand(m) * (p.scale_ratio - lo) + lo,
                      "sy": rand(m) * (p.scale_ratio - lo) + lo}
        elif op == "rotate":
            values = {"angle": (rand(m) - 0.5) * (2.0 * p.rotate_degrees * math.pi / 180.0)}
        else:  # pragma: no cover - guarded by _parse_strategy
            raise ConfigError(f"unknown DSA op {op!r}")
        return Draw(op, values)

    # ----------------------------------------------------------------- applying

    def apply(self, x: Tensor, draw: Draw) -> Tensor:
        """Apply ``draw`` to ``x`` (N, C, H, W); differentiable w.r.t. ``x``, never in place.

        The result is a contiguous tensor on ``x``'s device and dtype: a new one, except when
        the draw is a no-op (identity strategy, shared draw that does not flip, zero-size crop
        or cutout), where it is ``x.contiguous()``. Never modify the result in place.
        """
        if x.dim() != 4:
            raise ValueError(f"DSA expects images of shape (N, C, H, W), got {tuple(x.shape)}")
        if draw.op == _IDENTITY:
            return x.contiguous()
        m = draw.batch
        if m != 1 and m != x.shape[0]:
            raise ValueError(f"draw was made for {m} samples but the batch has {x.shape[0]}; "
                             "draw with n=len(x), or with shared=True to broadcast")
        if draw.op not in VALID_OPS:
            raise ConfigError(f"unknown DSA op {draw.op!r}; valid ops are {', '.join(VALID_OPS)}")
        return getattr(self, "_" + draw.op)(x, draw.values).contiguous()

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Augment ``x`` with independent parameters per sample (training and evaluation)."""
        return self.apply(x, self.draw(x.shape[0], generator))

    def siamese(self, *batches: Tensor, generator: torch.Generator) -> tuple[Tensor, ...]:
        """Augment every batch with ONE shared draw: all samples of all batches get the same
        transformation (for matching a class's real batch against its synthetic batch)."""
        if not batches:
            return ()
        d = self.draw(1, generator, shared=True)
        return tuple(self.apply(b, d) for b in batches)

    # ---------------------------------------------------------------- the ops

    @staticmethod
    def _color(x: Tensor, v: dict[str, Tensor]) -> Tensor:
        # brightness: y1 = x + b; saturation: y2 = (y1 - mpx(y1)) * s + mpx(y1);
        # contrast: y3 = (y2 - mimg(y2)) * c + mimg(y2). Since mpx(y1) = mpx(x) + b and
        # mimg(y2) = mimg(x) + b, this equals
        #   y3 = c*s*x + c*(1-s)*mpx(x) + (1-c)*mimg(x) + b,
        # computed with one full-size allocation.
        b = v["brightness"].to(device=x.device, dtype=x.dtype)
        s = v["saturation"].to(device=x.device, dtype=x.dtype)
        c = v["contrast"].to(device=x.device, dtype=x.dtype)
        mpx = x.mean(dim=1, keepdim=True)                      # [N,1,H,W]
        mimg = mpx.mean(dim=(2, 3), keepdim=True)              # [N,1,1,1]
        base = torch.addcmul((1 - c) * mimg + b, mpx, c * (1 - s))  # [N,1,H,W]
        return torch.addcmul(base, x, c * s)

    def _crop(self, x: Tensor, v: dict[str, Tensor]) -> Tensor:
        n, ch, h, w = x.shape
        r = self.params.crop_pad_ratio
        sy, sx = int(r * h + 0.5), int(r * w + 0.5)
        if sx == 0 and sy == 0:
            return x
        # integer shifts, computed on the CPU (tiny) then moved
        tx = (torch.floor(v["u_x"] * (2 * sx + 1)).long() - sx).clamp_(-sx, sx)
        ty = (torch.floor(v["u_y"] * (2 * sy + 1)).long() - sy).clamp_(-sy, sy)
        tx = tx.to(x.device)
        ty = ty.to(x.device)
        pw = w + 2 * sx
        padded = F.pad(x, (sx, sx, sy, sy))                    # zero fill, [N,C,H+2sy,W+2sx]
        # out[i, j] = x[i - ty, j - tx] = padded[i - ty + sy, j - tx + sx]
        rows = torch.arange(h, device=x.device).unsqueeze(0) - ty.unsqueeze(1) + sy   # [m,H]
        cols = torch.arange(w, device=x.device).unsqueeze(0) - tx.unsqueeze(1) + sx   # [m,W]
        idx = (rows.unsqueeze(2) * pw + cols.unsqueeze(1)).view(-1, 1, h * w)         # [m,1,HW]
        idx = idx.expand(n, ch, h * w)
        out = torch.gather(padded.reshape(n, ch, -1), 2, idx)
        return out.view(n, ch, h, w)

    def _cutout(self, x: Tensor, v: dict[str, Tensor]) -> Tensor:
        n, ch, h, w = x.shape
        r = self.params.cutout_ratio
        ch_, cw = int(r * h + 0.5), int(r * w + 0.5)
        if ch_ == 0 or cw == 0:
            return x
        cy = torch.floor(v["u_y"] * (h + 1 - ch_ % 2)).long().clamp_(max=h - ch_ % 2)
        cx = torch.floor(v["u_x"] * (w + 1 - cw % 2)).long().clamp_(max=w - cw % 2)
        top = (cy - ch_ // 2).to(x.device).unsqueeze(1)         # [m,1]
        left = (cx - cw // 2).to(x.device).unsqueeze(1)
        rows = torch.arange(h, device=x.device).unsqueeze(0)
        cols = torch.arange(w, device=x.device).unsqueeze(0)
        in_r = (rows >= top) & (rows < top + ch_)               # [m,H]
        in_c = (cols >= left) & (cols < left + cw)              # [m,W]
        keep = ~(in_r.unsqueeze(2) & in_c.unsqueeze(1))         # [m,H,W]
        return x * keep.unsqueeze(1).to(x.dtype)

    @staticmethod
    def _flip(x: Tensor, v: dict[str, Tensor]) -> Tensor:
        f = v["flip"]
        if f.numel() == 1:  # shared draw: decide on the CPU, no mask needed
            return x.flip(3) if bool(f) else x
        return torch.where(f.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)

    @staticmethod
    def _affine(x: Tensor, theta: Tensor) -> Tensor:
        """Bilinear resampling of ``x`` through the affine map ``theta`` [m,2,3], zero padding.

        The sampling grid is what ``F.affine_grid(theta, size, align_corners=True)`` returns,
        built by broadcasting (grid = theta[:, :, 0] * X + theta[:, :, 1] * Y + theta[:, :, 2]),
        which is several times faster than affine_grid's batched matmul with k = 3.
        """
        n, _, h, w = x.shape
        theta = theta.to(device=x.device, dtype=x.dtype)
        # normalised pixel centres for align_corners=True: -1 and 1 are the corner pixels
        xs = _unit_linspace(w, x)
        ys = _unit_linspace(h, x)
        px = (theta[:, :, 0:1] * xs).transpose(1, 2)                          # [m,W,2]
        py = (theta[:, :, 1:2] * ys + theta[:, :, 2:3]).transpose(1, 2)       # [m,H,2]
        grid = py.unsqueeze(2) + px.unsqueeze(1)                              # [m,H,W,2]
        if grid.shape[0] != n:
            grid = grid.expand(n, h, w, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=_ALIGN_CORNERS)

    def _scale(self, x: Tensor, v: dict[str, Tensor]) -> Tensor:
        sx, sy = v["sx"], v["sy"]
        z = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, z, z], 1), torch.stack([z, sy, z], 1)], 1)
        return self._affine(x, theta)

    def _rotate(self, x: Tensor, v: dict[str, Tensor]) -> Tensor:
        a = v["angle"]
        cos, sin, z = torch.cos(a), torch.sin(a), torch.zeros_like(a)
        theta = torch.stack([torch.stack([cos, sin, z], 1), torch.stack([-sin, cos, z], 1)], 1)
        return self._affine(x, theta)
