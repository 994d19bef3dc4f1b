"""Matching objectives shared by the distillation methods (docs/methods/dc.md, docs/methods/dm.md).

Functions of tensors (no state, every random draw from an explicit generator), so DC/DSA, DM and
the methods that reuse their objectives (GLaD, H-PD, HMN) share one definition:

* :func:`gradient_distance`: DC's distance between two lists of parameter gradients, per output
  unit 1 − cosine (``"ours"``, the published default), or the ``"mse"`` / ``"cos"`` alternatives.
* :func:`loss_gradients`: the gradient of the mean cross-entropy of a batch with respect to chosen
  parameters, optionally with the graph kept (synthetic branch) and computed in chunks (real
  branch; see :func:`forward_chunk`).
* :func:`mean_embedding_distance` and :func:`classwise_mean_embedding_distance`: DM's squared L2
  distance between mean embeddings (an MMD with a linear kernel).
* :func:`siamese_per_class`: one shared DSA draw per class for its real and synthetic batch.
* :class:`LossMonitor`: progress reporting, and a clear error instead of NaN images when the loss
  stops being finite.

Chunking: on the CPU a ConvNet-3 forward/backward of 256 images is about a third slower than the
same work in chunks of 16 (measured on the 2-core project machine, docs/methods/dc.md "Speed against
the official code"; most likely because a chunk's activations are small enough for the allocator to
reuse memory instead of faulting in fresh pages for every layer, which shows as system time). Chunking never
changes the result for networks whose outputs are per-sample (instance, group, layer norm, no
norm, BatchNorm in eval mode); callers must not chunk a BatchNorm network in train mode, whose
statistics depend on the whole batch (:func:`has_batchnorm`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchsuite.errors import ConfigError, MethodError
from benchsuite.ops.dsa import DSA

__all__ = [
    "METRICS",
    "EPS",
    "gradient_distance",
    "matched_parameters",
    "loss_gradients",
    "forward_chunk",
    "embed_chunked",
    "has_batchnorm",
    "mean_embedding_distance",
    "classwise_mean_embedding_distance",
    "published_dsa_strategy",
    "make_augment",
    "siamese_per_class",
    "LossMonitor",
]

METRICS: tuple[str, ...] = ("ours", "mse", "cos", "l1")
EPS = 1e-6  # DC's constant in the cosine denominator (docs/methods/dc.md, "Algorithm")


def forward_chunk(device: torch.device | str, image_shape: Sequence[int] | None = None) -> int | None:
    """Images per forward that is fastest for ConvNet-3 on ``device``: on the CPU 16 images of up to
    32×32 pixels (fewer for larger images, so a chunk's activations stay about the same size);
    on accelerators the whole batch (``None``)."""
    if torch.device(device).type != "cpu":
        return None
    pixels = 1024 if image_shape is None else max(1024, int(image_shape[-1]) * int(image_shape[-2]))
    return max(1, (16 * 1024) // pixels)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ConfigError(f"unknown gradient distance {metric!r}; choose one of {list(METRICS)} "
                          "('ours' is DC's per-output-unit 1 - cosine)")


def _unit_rows(g: Tensor) -> Tensor | None:
    """A gradient tensor as rows, one per output unit; ``None`` for 1-D tensors (they count 0).

    Conv weights ``(out, in, kh, kw)`` become ``(out, in·kh·kw)``; 3-D tensors (LayerNorm over
    ``[C, H, W]``) become ``(C, H·W)``; 2-D (linear) weights stay as they are.
    """
    if g.ndim <= 1:
        return None
    if g.ndim == 2:
        return g
    if g.ndim == 3:
        return g.reshape(g.shape[0], g.shape[1] * g.shape[2])
    return g.reshape(g.shape[0], -1)


def _unit_distance(a: Tensor, b: Tensor, eps: float) -> Tensor:
    """Σ_rows (1 − ⟨a_i, b_i⟩ / (‖a_i‖‖b_i‖ + eps))."""
    dot = (a * b).sum(dim=-1)
    norms = torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1)
    return (1.0 - dot / (norms + eps)).sum()


def gradient_distance(g_syn: Sequence[Tensor], g_real: Sequence[Tensor], metric: str = "ours",
                      eps: float = EPS) -> Tensor:
    """DC's distance between two gradient lists of the same parameters (docs/methods/dc.md, "Algorithm").

    * ``"ours"``: Σ over tensors, Σ over output units of 1 − cosine; 1-D tensors (biases, norm
      γ/β) contribute 0.
    * ``"mse"``: squared L2 distance of the concatenated gradient vectors.
    * ``"cos"``: 1 − cosine of the concatenated gradient vectors.
    * ``"l1"``: L1 distance of the concatenated gradient vectors (IDC's choice for the MNIST
      family, docs/methods/hmn.md).

    Differentiable in both arguments (DC differentiates through ``g_syn``). Returns a 0-d tensor.
    """
    _check_metric(metric)
    if len(g_syn) != len(g_real):
        raise ValueError(f"gradient lists differ in length: {len(g_syn)} vs {len(g_real)}")
    if not g_syn:
        raise ValueError("gradient_distance needs at least one gradient tensor")
    for s, r in zip(g_syn, g_real):
        if s.shape != r.shape:
            raise ValueError(f"gradient shapes differ: {tuple(s.shape)} vs {tuple(r.shape)}")
    if metric == "ours":
        total = g_syn[0].new_zeros(())
        for s, r in zip(g_syn, g_real):
            rs, rr = _unit_rows(s), _unit_rows(r)
            if rs is not None:
                total = total + _unit_distance(rs, rr, eps)
        return total
    vs = torch.cat([s.reshape(-1) for s in g_syn])
    vr = torch.cat([r.reshape(-1) for r in g_real])
    if metric == "mse":
        return (vs - vr).pow(2).sum()
    if metric == "l1":
        return (vs - vr).abs().sum()
    return _unit_distance(vs.unsqueeze(0), vr.unsqueeze(0), eps)


def matched_parameters(model: nn.Module, metric: str = "ours") -> list[nn.Parameter]:
    """The parameters whose gradients :func:`gradient_distance` can see under ``metric``.

    For ``"ours"`` 1-D tensors contribute 0, so their gradients need not be computed at all.
    """
    _check_metric(metric)
    params = [p for p in model.parameters() if p.requires_grad]
    if metric == "ours":
        params = [p for p in params if p.ndim >= 2]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no parameters to match under metric {metric!r}")
    return params


def loss_gradients(model: nn.Module, params: Sequence[Tensor], images: Tensor, labels: Tensor, *,
                   create_graph: bool = False, chunk: int | None = None) -> list[Tensor]:
    """∇ of the mean cross-entropy of ``model(images)`` with respect to ``params``.

    ``create_graph=True`` keeps the graph (DC's synthetic branch, which is differentiated again);
    then the batch is processed in one piece. Otherwise the result is detached and, with ``chunk``,
    accumulated over chunks of that many images (the same gradient, less memory, faster on CPU).
    """
    n = images.shape[0]
    if create_graph or chunk is None or n <= chunk:
        loss = F.cross_entropy(model(images), labels)
        grads = torch.autograd.grad(loss, params, create_graph=create_graph)
        return list(grads) if create_graph else [g.detach() for g in grads]
    total: list[Tensor] | None = None
    for xb, yb in zip(images.split(chunk), labels.split(chunk)):
        loss = F.cross_entropy(model(xb), yb, reduction="sum") / n
        grads = torch.autograd.grad(loss, params)
        if total is None:
            total = list(grads)
        else:
            for t, g in zip(total, grads):
                t.add_(g)
    assert total is not None
    return total


def embed_chunked(embed: Callable[[Tensor], Tensor], images: Tensor, chunk: int | None) -> Tensor:
    """``embed(images)`` computed ``chunk`` images at a time (all at once when ``chunk`` is None)."""
    if chunk is None or images.shape[0] <= chunk:
        return embed(images)
    return torch.cat([embed(xb) for xb in images.split(chunk)])


def mean_embedding_distance(emb_real: Tensor, emb_syn: Tensor) -> Tensor:
    """‖mean(emb_real) − mean(emb_syn)‖² for ``[n, D]`` and ``[m, D]`` embeddings (DM, one class)."""
    if emb_real.ndim != 2 or emb_syn.ndim != 2 or emb_real.shape[1] != emb_syn.shape[1]:
        raise ValueError(f"embeddings must be [n, D] and [m, D], got {tuple(emb_real.shape)} and "
                         f"{tuple(emb_syn.shape)}")
    return (emb_real.mean(dim=0) - emb_syn.mean(dim=0)).pow(2).sum()


def classwise_mean_embedding_distance(emb_real: Tensor, emb_syn: Tensor, num_classes: int) -> Tensor:
    """Σ_c ‖mean(real_c) − mean(syn_c)‖² for class-major embeddings with equal counts per class.

    ``emb_real`` is ``[C·n, D]`` (class 0's n rows, then class 1's, ...) and ``emb_syn`` is
    ``[C·m, D]``: DM's loss for all classes from one forward of each set.
    """
    c = int(num_classes)
    if emb_real.shape[0] % c or emb_syn.shape[0] % c:
        raise ValueError(f"{emb_real.shape[0]} real and {emb_syn.shape[0]} synthetic rows do not split "
                         f"into {c} equal classes")
    mr = emb_real.reshape(c, -1, emb_real.shape[-1]).mean(dim=1)
    ms = emb_syn.reshape(c, -1, emb_syn.shape[-1]).mean(dim=1)
    return (mr - ms).pow(2).sum()


# ------------------------------------------------------------------ augmentation for matching


def published_dsa_strategy(dataset: str) -> str:
    """The published DSA strategy of a built-in dataset (no flip for MNIST/SVHN, docs/augmentation.md);
    ``"auto"`` (resolved from the run's dataset spec) for a dataset the suite does not ship."""
    from benchsuite.data import builtin_entry
    from benchsuite.errors import UnknownNameError

    try:
        return builtin_entry(dataset).spec.dsa_strategy
    except UnknownNameError:
        return "auto"


def make_augment(strategy: str | None, spec) -> DSA | None:
    """The DSA for a method config's ``dsa_strategy``: ``"auto"`` = ``spec.dsa_strategy``,
    ``"none"``/``None``/``""`` = no augmentation, anything else a strategy string."""
    if strategy is None or strategy.strip().lower() in ("", "none"):
        return None
    return DSA(spec.dsa_strategy if strategy == "auto" else strategy)


def siamese_per_class(dsa: DSA | None, real: Tensor, syn: Tensor, num_classes: int,
                      generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Augment class-major ``real`` ``[C·n, ...]`` and ``syn`` ``[C·m, ...]`` with one shared DSA draw
    per class (the same transformation for every image of the class, real and synthetic), drawn
    in class order from ``generator``. Without ``dsa`` both are returned unchanged."""
    if dsa is None:
        return real, syn
    rs, ss = [], []
    for r, s in zip(real.chunk(num_classes), syn.chunk(num_classes)):
        ra, sa = dsa.siamese(r, s, generator=generator)
        rs.append(ra)
        ss.append(sa)
    return torch.cat(rs), torch.cat(ss)


# ------------------------------------------------------------------ loss monitoring


class LossMonitor:
    """Reports an iterative method's loss through ``progress`` and stops on a non-finite loss.

    On the CPU every loss is read at once (reading it costs nothing); on an accelerator losses are
    kept as tensors and read every ``every`` steps (and at :meth:`close`), so the device is not
    synchronised each step. A non-finite loss raises :class:`~benchsuite.MethodError` naming the
    method, the iteration and what to try.
    """

    def __init__(self, method: str, total: int, progress: Callable[..., None], device: torch.device | str,
                 every: int = 10, hint: str = "lower lr_img", unit: str = "iteration") -> None:
        self.method, self.total, self.progress, self.hint, self.unit = method, int(total), progress, hint, unit
        self.every = 1 if torch.device(device).type == "cpu" else max(1, int(every))
        self._pending: list[tuple[int, Tensor, dict]] = []
        self.last: float | None = None

    def start(self) -> None:
        """Show the bar at step 0, so its elapsed time includes the first (slowest) step."""
        self.progress(0, self.total)

    def update(self, step: int, loss: Tensor, **info) -> None:
        """Record the loss of ``step`` (1-based, out of ``total``)."""
        self._pending.append((int(step), loss.detach(), info))
        if len(self._pending) >= self.every or step >= self.total:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        values = torch.stack([v.float().reshape(()) for _, v, _ in self._pending]).cpu().tolist()
        for (step, _, info), value in zip(self._pending, values):
            if not math.isfinite(value):
                self._pending.clear()
                where = "".join(f", {k} {v}" for k, v in info.items())
                raise MethodError(
                    f"method {self.method!r}: the loss became {value} at {self.unit} {step} of "
                    f"{self.total}{where}; the synthetic images are no longer usable. Try to "
                    f"{self.hint} (e.g. --set {self.method}.lr_img=...)."
                )
        step, _, info = self._pending[-1]
        self.last = values[-1]
        self._pending.clear()
        self.progress(step, self.total, loss=self.last, **info)

    def check_images(self, images: Tensor) -> None:
        """Raise the same error if the final images are not finite (a last step that overflowed)."""
        self.flush()
        if not torch.isfinite(images).all():
            raise MethodError(f"method {self.method!r}: the synthetic images contain non-finite values "
                              f"after the last update. Try to {self.hint}.")
