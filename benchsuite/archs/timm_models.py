"""Any timm model as ``timm:<name>``, built from scratch (``pretrained=False``).

timm is imported lazily so the rest of the suite works without it.
"""

from __future__ import annotations

import difflib

from torch import Tensor, nn

from benchsuite.errors import ConfigError, UnknownNameError


class TimmNet(nn.Module):
    """Wraps a timm model: ``forward`` gives logits, ``embed`` the pre-logits feature ``[N, D]``."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        self.timm_name = name
        self.embed_dim = int(getattr(model, "num_features", 0)) or None

    def embed(self, x: Tensor) -> Tensor:
        feats = self.model.forward_features(x)
        return self.model.forward_head(feats, pre_logits=True).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _import_timm():
    try:
        import timm  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("timm architectures need the 'timm' package; install it with `pip install timm`") from exc
    return timm


def check_timm_name(model_name: str) -> str:
    """The timm model name of ``timm:<name>`` (or ``<name>``); UnknownNameError with close matches
    when timm has no such model. Cheap: nothing is built."""
    timm = _import_timm()
    if model_name.startswith("timm:"):
        model_name = model_name[len("timm:"):]
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
        raise UnknownNameError(f"unknown timm model {model_name!r}{hint}")
    return model_name


def build_timm(model_name: str, channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Build ``timm.create_model(model_name, pretrained=False, ...)`` for this input shape.

    Models that take an ``img_size`` (ViTs and friends) are built for ``image_size``; others
    (CNNs) adapt to any size. Unknown names raise UnknownNameError listing close matches.
    """
    timm = _import_timm()
    model_name = check_timm_name(model_name)
    base = dict(pretrained=False, num_classes=num_classes, in_chans=channels)
    try:
        try:
            # ViT-like models need the input size; CNNs reject the keyword before building anything.
            model = timm.create_model(model_name, img_size=image_size, **base)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
            model = timm.create_model(model_name, **base)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise ConfigError(
            f"timm model {model_name!r} cannot be built for {channels}x{image_size}x{image_size} "
            f"inputs with {num_classes} classes: {exc}"
        ) from exc
    return TimmNet(model, model_name)
