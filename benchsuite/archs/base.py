"""The shape every zoo model shares: ``embed`` (features before the classifier), then ``classifier``."""

from __future__ import annotations

from torch import Tensor, nn


class EmbeddingClassifier(nn.Module):
    """``forward(x) = classifier(embed(x))``. Subclasses set ``features`` (or override ``embed``),
    ``classifier`` and ``embed_dim``; DM and herding use ``embed``."""

    features: nn.Module
    classifier: nn.Module
    embed_dim: int

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))
