"""Expert trajectories for trajectory matching (MTT, PAD), with a disk cache.

Described in docs/methods/mtt.md ("Expert trajectories").

An expert is a network of the student's exact architecture trained from a random start with SGD
(lr 0.01, no momentum, no weight decay, no lr decay, batch 256, DSA), its flattened parameters
snapshot at initialisation and after every epoch: a ``[epochs + 1, P]`` tensor.

Experts live in ``<cache>/experts/<dataset>-<arch>-<key>/expert_NNNN.pt``. ``key`` hashes
everything that changes a trajectory (:class:`ExpertSpec`: dataset and a fingerprint of its
tensors, architecture and its parameter layout, norm included, epochs, optimiser, augmentation,
ZCA, data subset, difficulty schedule, seed). The number of experts is deliberately not part of
the key: expert *i* is a function of the key and *i* alone (its generator is seeded from both), so
a run that wants more experts extends the store and one that wants fewer reuses a prefix.

Each file is written under a temporary name and renamed when complete, and is checked on load
(the key, a completion flag, the shape); a file that fails the check, e.g. one left by a process
killed while writing, is deleted and trained again, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from benchsuite import atomic
from benchsuite.locks import build_lock
from benchsuite.api import LabeledData
from benchsuite.errors import ConfigError, MethodError
from benchsuite.ops.dsa import DSA
from benchsuite.ops.trajectory import ParamLayout
from benchsuite.training import train_epochs

__all__ = ["ExpertSpec", "ExpertStore", "train_epochs", "train_expert", "data_fingerprint"]

log = logging.getLogger("benchsuite.experts")

FORMAT_VERSION = 1


def data_fingerprint(data: LabeledData) -> str:
    """A cheap identity of a train set's tensors (size, shape, sums): different data, different key."""
    s = float(data.images.double().sum())
    sq = float(data.images.double().pow(2).sum())
    return f"{len(data)}x{'x'.join(map(str, data.image_shape))}:{s:.6e}:{sq:.6e}:{int(data.labels.sum())}"


@dataclass(frozen=True)
class ExpertSpec:
    """Everything that changes an expert's trajectory; :attr:`key` is its hash."""

    dataset: str
    fingerprint: str
    arch: str
    layout: str = ""              # json of ParamLayout.describe(): names and shapes, norm layers included
    epochs: int = 50              # MTT: 50 ("the default learning rate for all of our experts")
    lr: float = 0.01              # lr_teacher
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    augment: str = "none"         # DSA strategy, or 'none'
    zca_eps: float | None = None
    subset: dict = field(default_factory=dict)    # e.g. {"per_class": 500, "seed": 0}
    schedule: dict = field(default_factory=dict)  # PAD's DifficultySchedule + its scores' recipe
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"experts need at least one epoch, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"expert batch size must be >= 1, got {self.batch_size}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def key(self) -> str:
        blob = json.dumps({"format": FORMAT_VERSION, **self.as_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def expert_seed(self, index: int) -> int:
        digest = hashlib.sha256(f"{self.key}:{index}".encode()).digest()
        return int.from_bytes(digest[:8], "little") >> 2


def train_expert(model: nn.Module, data: LabeledData, spec: ExpertSpec, generator: torch.Generator,
                 augment: DSA | None, visible: Callable[[int], Tensor] | None = None,
                 on_step: Callable[[], None] | None = None) -> Tensor:
    """Train one expert as ``spec`` says; returns its ``[epochs + 1, P]`` snapshots (CPU, float32)."""
    snaps = [ParamLayout.flatten(model).cpu()]
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)

    def snapshot(_epoch: int) -> None:
        flat = ParamLayout.flatten(model)
        if not torch.isfinite(flat).all():
            raise MethodError("an expert's parameters became non-finite; lower the expert lr")
        snaps.append(flat.cpu())

    train_epochs(model, data, opt, spec.epochs, spec.batch_size, generator, augment, visible, snapshot, on_step)
    return torch.stack(snaps)


class ExpertStore:
    """The cached experts of one :class:`ExpertSpec` (see the module docstring)."""

    def __init__(self, cache_dir: Path, spec: ExpertSpec) -> None:
        self.spec = spec
        safe_arch = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in spec.arch)
        self.dir = Path(cache_dir) / "experts" / f"{spec.dataset}-{safe_arch}-{spec.key}"
        self._memory: dict[int, Tensor] = {}
        self.build_seconds = 0.0
        self.built = 0

    def path(self, index: int) -> Path:
        return self.dir / f"expert_{index:04d}.pt"

    def _write_spec(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        spec_path = self.dir / "spec.json"
        if not spec_path.exists():
            atomic.write_text(spec_path, json.dumps(self.spec.as_dict(), indent=1, sort_keys=True, default=str))

    def load(self, index: int) -> Tensor | None:
        """Expert ``index`` if a complete, valid file exists; a bad file is deleted (``None``)."""
        if index in self._memory:
            return self._memory[index]
        path = self.path(index)
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            traj = payload["trajectory"]
            ok = (payload.get("complete") is True and payload.get("key") == self.spec.key
                  and payload.get("format") == FORMAT_VERSION and isinstance(traj, Tensor)
                  and traj.ndim == 2 and traj.shape[0] == self.spec.epochs + 1 and bool(torch.isfinite(traj).all()))
        except Exception as exc:  # truncated or foreign file: unusable
            log.warning("expert file %s is unreadable (%s); training it again", path, exc)
            ok = False
        if not ok:
            path.unlink(missing_ok=True)
            return None
        self.build_seconds += float(payload.get("train_seconds", 0.0))
        self._memory[index] = traj
        return traj

    def save(self, index: int, trajectory: Tensor, train_seconds: float) -> None:
        self._write_spec()
        path = self.path(index)
        # atomic: a reader sees the old state or the whole file
        atomic.torch_save({"format": FORMAT_VERSION, "key": self.spec.key, "index": index,
                           "trajectory": trajectory.contiguous(), "train_seconds": float(train_seconds),
                           "complete": True}, path)
        self._memory[index] = trajectory

    def ensure(self, count: int, make_model: Callable[[torch.Generator], nn.Module], data: LabeledData,
               augment: DSA | None, visible: Callable[[int], Tensor] | None = None,
               progress: Callable[..., None] | None = None) -> list[Tensor]:
        """Experts ``0 .. count-1``, training (and saving) the missing ones first."""
        if count < 1:
            raise ConfigError(f"need at least one expert, got {count}")
        trajectories: list[Tensor | None] = [self.load(i) for i in range(count)]
        if all(t is not None for t in trajectories):
            return trajectories  # type: ignore[return-value]
        with build_lock(self.dir):  # another process may be training these same experts
            return self._train_missing(trajectories, make_model, data, augment, visible, progress)

    def _train_missing(self, trajectories: list[Tensor | None], make_model: Callable[[torch.Generator], nn.Module],
                       data: LabeledData, augment: DSA | None, visible: Callable[[int], Tensor] | None,
                       progress: Callable[..., None] | None) -> list[Tensor]:
        trajectories = [t if t is not None else self.load(i) for i, t in enumerate(trajectories)]
        missing = [i for i, t in enumerate(trajectories) if t is None]
        if missing:
            steps_per_epoch = self._steps_per_expert(len(data), visible)
            total = len(missing) * steps_per_epoch
            done = [0]

            for j, i in enumerate(missing):
                def step(j: int = j) -> None:
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], total, phase=f"expert {j + 1}/{len(missing)}")

                t0 = time.perf_counter()
                g = torch.Generator().manual_seed(self.spec.expert_seed(i))
                model = make_model(g)
                layout = json.dumps(ParamLayout.of(model).describe())
                if self.spec.layout and self.spec.layout != layout:
                    raise ConfigError("the expert architecture does not match the spec's parameter layout")
                traj = train_expert(model, data, self.spec, g, augment, visible, step)
                seconds = time.perf_counter() - t0
                self.save(i, traj, seconds)
                self.build_seconds += seconds
                self.built += 1
                trajectories[i] = traj
        return [t for t in trajectories if t is not None]

    def _steps_per_expert(self, n: int, visible: Callable[[int], Tensor] | None) -> int:
        if visible is None:
            return self.spec.epochs * -(-n // self.spec.batch_size)
        return sum(-(-len(visible(e)) // self.spec.batch_size) for e in range(self.spec.epochs))

    def disk_bytes(self) -> int:
        if not self.dir.exists():
            return 0
        return sum(p.stat().st_size for p in self.dir.glob("expert_*.pt"))

    def describe(self) -> dict[str, Any]:
        """What a record says about the experts: where, how many, their cost."""
        return {"key": self.spec.key, "dir": str(self.dir), "epochs": self.spec.epochs,
                "count": len(self._memory), "trained_now": self.built,
                "build_seconds": round(self.build_seconds, 1), "disk_bytes": self.disk_bytes()}
