"""A network trained on the whole training set, whose penultimate features the selection
baselines (herding, k-center) select in, as the DC and DM papers and IDC do.

The network is built once per dataset and cached under
``<cache>/extractors/<dataset>-<arch>-<key>/net.pt``, where the key hashes everything that
changes it: the data (a fingerprint of its tensors), the architecture and its parameter layout,
the training recipe (epochs, lr, momentum, weight decay, batch, augmentation) and the seed. It is
built under the entry's lock (two workers never train the same one), written atomically, and
read with ``weights_only=True``; a file that is not a complete extractor of this key is trained
again. docs/methods/baselines.md ("The embedding") says which recipe each budget uses and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from benchsuite import atomic
from benchsuite.api import LabeledData, RunContext
from benchsuite.errors import ConfigError
from benchsuite.locks import build_lock
from benchsuite.ops.dsa import DSA
from benchsuite.ops.experts import data_fingerprint
from benchsuite.ops.trajectory import ParamLayout
from benchsuite.training import run_epochs

log = logging.getLogger("benchsuite")

FORMAT_VERSION = 1
EMBEDDINGS = ("trained", "random")


@dataclass(frozen=True)
class ExtractorSpec:
    """Everything that changes the trained extractor; :attr:`key` is its hash."""

    dataset: str
    fingerprint: str
    arch: str
    layout: str
    epochs: int
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    augment: str = "none"   # a DSA strategy, or 'none'
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"the feature extractor needs at least one epoch, got {self.epochs}")

    @property
    def key(self) -> str:
        blob = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ExtractorStore:
    def __init__(self, cache_dir: Path, spec: ExtractorSpec) -> None:
        self.spec = spec
        safe_arch = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in spec.arch)
        self.dir = Path(cache_dir) / "extractors" / f"{spec.dataset}-{safe_arch}-{spec.key}"
        self.path = self.dir / "net.pt"
        self.train_seconds = 0.0
        self.train_accuracy: float | None = None
        self.trained_now = False

    def load(self, model: nn.Module) -> bool:
        """Fill ``model`` from the cache; ``False`` (and the bad file removed) when it is not there."""
        if not self.path.exists():
            return False
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
            ok = payload.get("complete") is True and payload.get("key") == self.spec.key \
                and payload.get("format") == FORMAT_VERSION
            if ok:
                model.load_state_dict(payload["state"])
        except Exception as exc:  # noqa: BLE001 - truncated, foreign or of another layout
            log.warning("feature extractor %s is unreadable (%s); training it again", self.path, exc)
            ok = False
        if not ok:
            self.path.unlink(missing_ok=True)
            return False
        self.train_seconds = float(payload.get("train_seconds", 0.0))
        self.train_accuracy = payload.get("train_accuracy")
        return True

    def ensure(self, make_model: Callable[[torch.Generator], nn.Module], data: LabeledData,
               progress: Callable[..., None] | None = None) -> nn.Module:
        """The trained extractor, training (and saving) it first when the cache lacks it."""
        model = make_model(torch.Generator().manual_seed(self.spec.seed))
        if self.load(model):
            return model
        with build_lock(self.dir):  # another process may be training this very extractor
            if self.load(model):
                return model
            model = self._train(make_model, data, progress)
        return model

    def _train(self, make_model: Callable[[torch.Generator], nn.Module], data: LabeledData,
               progress: Callable[..., None] | None) -> nn.Module:
        spec = self.spec
        generator = torch.Generator().manual_seed(spec.seed)
        model = make_model(generator)
        if json.dumps(ParamLayout.of(model).describe()) != spec.layout:
            raise ConfigError("the extractor architecture does not match its spec's parameter layout")
        opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
        augment = None if spec.augment == "none" else DSA(spec.augment)
        steps = spec.epochs * -(-len(data) // spec.batch_size)
        decay = max(1, spec.epochs // 2)

        def before_epoch(epoch: int) -> None:  # the evaluation recipe's schedule: x0.1 at half
            if epoch == decay:
                for group in opt.param_groups:
                    group["lr"] = spec.lr * 0.1

        def on_step(step: int, epoch: int) -> None:
            if progress is not None:
                progress(step, steps, phase=f"feature extractor epoch {epoch + 1}/{spec.epochs}")

        t0 = time.perf_counter()
        run_epochs(model, opt, data.images, data.labels, epochs=spec.epochs, batch_size=spec.batch_size,
                   generator=generator, augment=augment, before_epoch=before_epoch, on_step=on_step)
        self.train_seconds = time.perf_counter() - t0
        self.train_accuracy = train_accuracy(model, data)
        self.trained_now = True
        atomic.torch_save({"format": FORMAT_VERSION, "key": spec.key, "complete": True,
                           "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                           "train_seconds": self.train_seconds, "train_accuracy": self.train_accuracy,
                           "spec": asdict(spec)}, self.path)
        log.info("feature extractor for %s trained in %.0fs (train accuracy %.1f%%)", spec.dataset,
                 self.train_seconds, self.train_accuracy)
        return model

    def describe(self) -> dict[str, Any]:
        return {"key": self.spec.key, "dir": str(self.dir), "arch": self.spec.arch, "epochs": self.spec.epochs,
                "augment": self.spec.augment, "train_seconds": round(self.train_seconds, 1),
                "train_accuracy": None if self.train_accuracy is None else round(self.train_accuracy, 2),
                "trained_now": self.trained_now}


@torch.inference_mode()
def train_accuracy(model: nn.Module, data: LabeledData, batch_size: int = 1000) -> float:
    """Accuracy (%) of ``model`` on ``data`` (eval mode), a sanity figure of the extractor."""
    model.eval()
    hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(data.images.split(batch_size),
                                                                    data.labels.split(batch_size)))
    return 100.0 * hits / max(1, len(data))


def extractor_store(ctx: RunContext, real: LabeledData, arch: str, epochs: int, augment: str,
                    lr: float = 0.01) -> tuple[ExtractorStore, Callable[[torch.Generator], nn.Module]]:
    """The store of the extractor a cell of ``ctx`` needs, and the model factory it trains with."""
    def make(generator: torch.Generator) -> nn.Module:
        return ctx.model(arch, generator=generator)

    layout = json.dumps(ParamLayout.of(make(torch.Generator().manual_seed(0))).describe())
    spec = ExtractorSpec(dataset=ctx.dataset.name, fingerprint=data_fingerprint(real), arch=arch, layout=layout,
                         epochs=epochs, lr=lr, augment=augment)
    return ExtractorStore(ctx.cache_dir, spec), make


def trained_features(ctx: RunContext, real: LabeledData, arch: str, epochs: int, augment: str,
                     batch_size: int, progress: Callable[..., None] | None = None) -> tuple[Tensor, dict[str, Any]]:
    """Penultimate features of all of ``real`` under the cached trained extractor."""
    from benchsuite.ops.selection import embed_all

    store, make = extractor_store(ctx, real, arch, epochs, augment)
    model = store.ensure(make, real, progress)
    return embed_all(model, real.images, batch_size), store.describe()
