"""What a sweep will cost before it runs: the grid, and an estimate of its wall time.

Each group of cells (method, dataset, IPC; one cell per seed) gets an estimate of one cell's
distillation and evaluation time on the target device, from the first source that has one:

1. **records**: timing records already in the results folders, on the same kind of device
   (``cpu`` or ``cuda``); a record that reused a saved set is not used for distillation or cache
   times (it carries the original run's, maybe from another device). Distillation scales by the iteration count (seconds per iteration of
   the record's config times the target's iterations); evaluation by models and epochs (seconds
   per model-epoch of the record's recipe, plus its test pass). A record of another dataset or
   IPC is used only when no closer one exists, scaled by input size times classes, and the
   estimate says so.
2. **calibration** (``calibrate=True``): a short run of the cell on this machine: distillation
   with 1 and 3 iterations (the difference is the cost of an iteration; the rest, the set-up), and
   one evaluation model trained for 1 and 3 epochs (likewise). Caches the cell reads (expert
   trajectories, priors) are built first and timed; a config with ``num_experts`` builds 2 of them
   and the time is scaled to the full count.

Everything else is "no estimate", and the plan says which groups lack one and how to get it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from benchsuite.probe import ProbeResult, prepare, probe
from benchsuite.protocol import Protocol
from benchsuite.records import RunRecord, read_records
from benchsuite.runner import plan as plan_cells

CALIBRATION_ITERATIONS = (1, 3)
CALIBRATION_EPOCHS = (1, 3)
CALIBRATION_EXPERTS = 2


@dataclass
class Estimate:
    seconds: float
    source: str  # how it was obtained, in words


@dataclass
class GroupPlan:
    """One (method, dataset, IPC) of the grid: its cells (one per seed) and one cell's estimate."""

    method: str
    dataset: str
    ipc: int
    cells: int
    iterations: int | None
    eval_models: int           # per cell: archs x models
    eval_epochs: int
    distill: Estimate | None = None
    evaluation: Estimate | None = None
    prerequisites: Estimate | None = None  # once per group (caches), not per cell

    @property
    def cell_seconds(self) -> float | None:
        if self.distill is None or self.evaluation is None:
            return None
        return self.distill.seconds + self.evaluation.seconds

    @property
    def total_seconds(self) -> float | None:
        cell = self.cell_seconds
        if cell is None:
            return None
        return cell * self.cells + (self.prerequisites.seconds if self.prerequisites else 0.0)


@dataclass
class Plan:
    protocol: Protocol
    device: str
    groups: list[GroupPlan] = field(default_factory=list)

    @property
    def cells(self) -> int:
        return sum(g.cells for g in self.groups)

    @property
    def known_seconds(self) -> float:
        return sum(g.total_seconds or 0.0 for g in self.groups)

    @property
    def unknown(self) -> list[GroupPlan]:
        return [g for g in self.groups if g.total_seconds is None]


def _iterations(config: Any) -> int | None:
    value = getattr(config, "iterations", None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _train_size(spec: Any, fallback: int | None) -> float:
    """Train images of a dataset: its smallest class times its classes when the spec knows it."""
    if spec.min_train_per_class:
        return float(spec.min_train_per_class * spec.num_classes)
    return float(fallback or 1)


def _size(spec: Any) -> float:
    c, h, w = spec.shape
    return float(c * h * w * spec.num_classes)


def _device_kind(record: RunRecord) -> str | None:
    machine = record.machine or {}
    device = str(machine.get("device", ""))
    return device.split(":")[0] or None


class RecordTimings:
    """Timing records, filtered to the target device kind, and estimates drawn from them."""

    def __init__(self, records: Iterable[RunRecord], device_kind: str, specs: dict[str, Any]) -> None:
        self.records = [r for r in records if r.status == "ok" and _device_kind(r) == device_kind]
        self.specs = specs

    def _closest(self, candidates: list[RunRecord], dataset: str, ipc: int) -> RunRecord | None:
        if not candidates:
            return None
        # same dataset before another one, then the nearest IPC, then the newest record
        return min(candidates, key=lambda r: (r.dataset != dataset, abs(math.log((r.ipc or 1) / max(ipc, 1))),
                                              -(candidates.index(r))))

    def _scale_note(self, r: RunRecord, dataset: str, ipc: int) -> tuple[float, str]:
        factor, notes = 1.0, []
        if r.dataset != dataset and r.dataset in self.specs and dataset in self.specs:
            factor = _size(self.specs[dataset]) / _size(self.specs[r.dataset])
            notes.append(f"from {r.dataset} x{factor:.2g} (input size x classes)")
        if r.ipc != ipc:
            notes.append(f"from IPC {r.ipc}")
        return factor, ", ".join(notes)

    def distill(self, method: str, dataset: str, ipc: int, iterations: int | None) -> Estimate | None:
        # a reused set's record carries the original run's time, possibly from another device
        candidates = [r for r in self.records if r.method == method and r.distill_seconds is not None
                      and not r.reused_artifact and (iterations is None or _iterations_of(r))]
        r = self._closest(candidates, dataset, ipc)
        if r is None:
            return None
        factor, note = self._scale_note(r, dataset, ipc)
        seconds = max(0.0, float(r.distill_seconds) - cache_seconds_in(r)) * factor
        where = f"records ({r.protocol}, {r.dataset} IPC {r.ipc}"
        if iterations is not None:
            done = _iterations_of(r) or 1
            seconds = seconds / done * iterations
            where += f", {seconds / max(iterations, 1):.3g} s/iteration from {done} iterations"
            if done < 20:
                where += " (so few that set-up counts as iterations: an over-estimate)"
        return Estimate(seconds, where + (f"; {note}" if note else "") + ")")

    def caches(self, method: str, dataset: str, config: Any, train_images: int | None
               ) -> list[tuple[tuple, Estimate]]:
        """The caches a cell of ``config`` reads, each as (identity, estimate): experts from the
        cost per image-epoch of recorded expert training, a prior from its recorded seconds per
        step. The identity lets cells that share a cache count it once."""
        out: list[tuple[tuple, Estimate]] = []
        target = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}
        spec = self.specs.get(dataset)
        if spec is None:
            return out
        if all(k in target for k in ("num_experts", "expert_train_epochs")):
            for r in self.records:
                experts = _find(r.method_extra, "experts")
                if not (experts and experts.get("build_seconds") and r.method_config and not r.reused_artifact
                        and "num_experts" in r.method_config and r.dataset in self.specs):
                    continue
                rec_spec = self.specs[r.dataset]
                built = float(experts["build_seconds"]) / max(1, int(experts.get("count") or 1))
                per_image = built / (float(r.method_config["expert_train_epochs"])
                                     * (_expert_images({**r.method_config, "num_experts": 1, "expert_train_epochs": 1},
                                                       rec_spec, r.train_images or 0)))
                pixels = math.prod(spec.shape) / math.prod(rec_spec.shape)
                images = _expert_images(target, spec, train_images or spec.num_classes * 5000)
                identity = ("experts", dataset, *(target.get(k) for k in sorted(target) if "expert" in k
                                                  or k in ("lr_teacher", "zca", "dsa_strategy")))
                out.append((identity, Estimate(per_image * pixels * images,
                                               f"{target['num_experts']} experts x {target['expert_train_epochs']} "
                                               f"epochs at {per_image * pixels:.2g} s/image-epoch (from {r.method} "
                                               f"{r.dataset} records)")))
                break
        steps = getattr(getattr(config, "prior_config", lambda: None)(), "steps", None)
        if steps:
            for r in self.records:
                prior = _find(r.method_extra, "prior")
                rec_steps = ((prior or {}).get("config") or {}).get("steps")
                if (prior and prior.get("train_seconds") and rec_steps and r.dataset in self.specs
                        and not r.reused_artifact):
                    pixels = math.prod(spec.shape) / math.prod(self.specs[r.dataset].shape)
                    per_step = float(prior["train_seconds"]) / rec_steps * pixels
                    identity = ("prior", dataset, json.dumps(dataclasses.asdict(config.prior_config()), sort_keys=True),
                                getattr(config, "prior_seed", None))
                    out.append((identity, Estimate(per_step * steps, f"prior: {steps} steps at {per_step:.2g} s/step "
                                                                     f"(from {r.method} {r.dataset} records)")))
                    break
        return out

    def evaluation(self, method: str, dataset: str, ipc: int, arch: str, models: int, epochs: int,
                   batch_size: int) -> Estimate | None:
        """Seconds per evaluation step of the closest record (the whole-set bound only from its own
        records), times the target's steps: models x epochs x ceil(IPC x classes / batch)."""
        full = ipc == 0
        usable = [r for r in self.records if r.eval_train_seconds is not None and r.eval_epochs
                  and r.accuracy is not None and r.accuracy.n and ((r.method == method) if full else bool(r.ipc))]
        timed = {r.arch for r in usable}
        stand_in = arch
        if arch not in timed:
            # a relative of the same family (resnet18 for resnet18bn), else the cheapest timed arch
            # (a lower bound), and the estimate says so
            kin = sorted(a for a in timed if a.startswith(arch) or arch.startswith(a))
            stand_in = kin[0] if kin else ("convnet" if "convnet" in timed else (sorted(timed)[0] if timed else arch))
        r = self._closest([r for r in usable if r.arch == stand_in], dataset, ipc)
        if r is None or r.dataset not in self.specs or dataset not in self.specs:
            return None
        mine, theirs = self.specs[dataset], self.specs[r.dataset]
        pixels = math.prod(mine.shape) / math.prod(theirs.shape)
        n = r.accuracy.n
        rec_steps = max(1, math.ceil((r.num_images or r.ipc * theirs.num_classes) / batch_size))
        if full:  # the whole train set: scale the record's steps by the train sets' sizes
            steps = rec_steps * (_train_size(mine, r.num_images) / _train_size(theirs, r.num_images))
        else:
            steps = math.ceil(ipc * mine.num_classes / batch_size)
        per_step = float(r.eval_train_seconds) / (n * r.eval_epochs * rec_steps) * pixels
        test = float(r.eval_test_seconds or 0.0) / n * pixels
        seconds = models * (epochs * steps * per_step + test)
        notes = [f"from {r.dataset}, x{pixels:.2g} per step (pixels)"] if r.dataset != dataset else []
        if stand_in != arch:
            notes.append(f"no {arch} timing: assumed as costly as {stand_in}")
        if r.ipc != ipc:
            notes.append(f"from IPC {r.ipc}")
        return Estimate(seconds, f"records ({r.protocol}, {r.dataset} IPC {r.ipc}, {stand_in}: {per_step:.3g} s/step"
                                 + (f"; {', '.join(notes)}" if notes else "") + ")")


def _find(value: Any, name: str) -> dict[str, Any] | None:
    """The first dict under key ``name`` at any depth of a record's method_extra."""
    if isinstance(value, dict):
        if isinstance(value.get(name), dict):
            return value[name]
        for v in value.values():
            found = _find(v, name)
            if found is not None:
                return found
    return None


def cache_seconds_in(r: RunRecord) -> float:
    """Seconds of ``r``'s distillation spent building caches (experts trained in that cell; a
    prior whose training time fits inside the cell's time, i.e. was trained there)."""
    spent = 0.0
    experts = _find(r.method_extra, "experts")
    if experts and experts.get("trained_now") and experts.get("count"):
        spent += float(experts.get("build_seconds", 0.0)) * experts["trained_now"] / experts["count"]
    prior = _find(r.method_extra, "prior")
    if prior and r.distill_seconds and float(prior.get("train_seconds", 0.0)) <= r.distill_seconds:
        spent += float(prior.get("train_seconds", 0.0))
    return spent


def _expert_images(config: Mapping[str, Any], spec: Any, train_images: int) -> float:
    """Image-epochs of training all of a config's experts."""
    per_class = config.get("expert_subset_per_class") or 0
    images = per_class * spec.num_classes if per_class else train_images
    return float(config["num_experts"]) * float(config["expert_train_epochs"]) * images


def _iterations_of(r: RunRecord) -> int | None:
    value = (r.method_config or {}).get("iterations")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def calibrate_group(g: GroupPlan, protocol: Protocol, *, config: Any, archs: list[str], device: str,
                    data_root: str | None, cache_dir: Path | None, plugins: Any, allow_download: bool
                    ) -> None:
    """Fill ``g``'s missing estimates by a short run on this machine (see the module docstring)."""
    common = dict(protocol=protocol, device=device, data_root=data_root, cache_dir=cache_dir, plugins=plugins,
                  allow_download=allow_download)
    cache_overrides: dict[str, Any] = {}
    full_experts = getattr(config, "num_experts", None)
    if isinstance(full_experts, int) and full_experts > CALIBRATION_EXPERTS:
        cache_overrides["num_experts"] = CALIBRATION_EXPERTS
    if g.prerequisites is None:
        t0 = time.perf_counter()
        prepare([g.method], protocol.with_overrides(datasets=[g.dataset], ipcs=[g.ipc]),
                overrides={g.method: cache_overrides}, device=device, data_root=data_root, cache_dir=cache_dir,
                plugins=plugins, allow_download=allow_download)
        seconds = time.perf_counter() - t0
        note = "calibration: caches built here"
        if cache_overrides:
            seconds *= full_experts / CALIBRATION_EXPERTS
            note += f" ({CALIBRATION_EXPERTS} experts, scaled to {full_experts})"
        g.prerequisites = Estimate(seconds, note)
    if g.distill is None:
        if g.iterations is None:
            run = probe(g.method, g.dataset, g.ipc, overrides=cache_overrides, evaluate=False, **common)
            g.distill = Estimate(run.distill_seconds, "calibration: one run here")
        else:
            lo, hi = (probe(g.method, g.dataset, g.ipc, overrides={**cache_overrides, "iterations": k},
                            evaluate=False, **common) for k in CALIBRATION_ITERATIONS)
            per = max(0.0, (hi.distill_seconds - lo.distill_seconds) / (CALIBRATION_ITERATIONS[1]
                                                                       - CALIBRATION_ITERATIONS[0]))
            setup = max(0.0, lo.distill_seconds - per * CALIBRATION_ITERATIONS[0])
            g.distill = Estimate(setup + per * g.iterations,
                                 f"calibration: {per:.3g} s/iteration + {setup:.3g} s set-up")
    if g.evaluation is None:
        total, notes = 0.0, []
        for arch in archs:
            runs: list[ProbeResult] = [
                probe(g.method, g.dataset, g.ipc, overrides={**cache_overrides,
                                                             **({"iterations": 1} if g.iterations else {})},
                      eval_changes={"models": 1, "epochs": e}, arch=arch, **common)
                for e in CALIBRATION_EPOCHS]
            a, b = (r.evaluation for r in runs)
            per_epoch = max(0.0, (b.train_seconds - a.train_seconds) / (CALIBRATION_EPOCHS[1] - CALIBRATION_EPOCHS[0]))
            models = protocol.eval.models
            total += models * (g.eval_epochs * per_epoch + b.test_seconds)
            notes.append(f"{arch} {per_epoch:.3g} s/model-epoch")
        g.evaluation = Estimate(total, "calibration: " + ", ".join(notes))


def make_plan(protocol: Protocol, methods: list[str], *, plugins: Any, device_kind: str,
              results_dirs: Iterable[Path] = (), calibrate: bool = False, device: str = "auto",
              data_root: str | None = None, cache_dir: Path | None = None, allow_download: bool = True,
              overrides: dict[str, dict[str, Any]] | None = None) -> Plan:
    """The grid of ``protocol`` x ``methods`` with an estimate per group (see the module docstring)."""
    specs = {name: entry.spec for name, entry in plugins.datasets.items()}
    records: list[RunRecord] = []
    for folder in results_dirs:
        if (Path(folder) / "records.jsonl").exists():
            records += read_records(Path(folder), warn=False)
    timings = RecordTimings(records, device_kind, specs)
    independent = [m for m in methods if getattr(plugins.methods.get(m), "ipc_independent", False)]
    cells = plan_cells(protocol, methods, independent)
    out = Plan(protocol, device_kind)
    groups: dict[tuple, GroupPlan] = {}
    seen_caches: set[tuple] = set()
    for c in cells:
        key = (c.method, c.dataset, c.ipc)
        if key in groups:
            groups[key].cells += 1
            continue
        cls = plugins.methods.get(c.method)
        config = cls.resolve_config(plugins.datasets.canonical(c.dataset), max(c.ipc, 1), protocol,
                                    (overrides or {}).get(c.method))
        full = bool(cls.ipc_independent)
        epochs = protocol.eval.full_epochs if full and protocol.eval.full_epochs else protocol.eval.epochs
        g = GroupPlan(c.method, c.dataset, c.ipc, 1, _iterations(config), len(protocol.archs) * protocol.eval.models,
                      epochs)
        g.distill = timings.distill(c.method, c.dataset, c.ipc, g.iterations)
        for identity, estimate in timings.caches(c.method, c.dataset, config, None):
            if identity not in seen_caches:  # a cache several groups read is built once
                seen_caches.add(identity)
                g.prerequisites = Estimate((g.prerequisites.seconds if g.prerequisites else 0.0) + estimate.seconds,
                                           "; ".join(x for x in (g.prerequisites.source if g.prerequisites else "",
                                                                 estimate.source) if x))
        parts = [timings.evaluation(c.method, c.dataset, c.ipc, arch, protocol.eval.models, epochs,
                                    protocol.eval.batch_size) for arch in protocol.archs]
        if all(p is not None for p in parts):
            g.evaluation = Estimate(sum(p.seconds for p in parts), "; ".join(p.source for p in parts))
        if calibrate and (g.distill is None or g.evaluation is None):
            calibrate_group(g, protocol, config=config, archs=list(protocol.archs), device=device,
                            data_root=data_root, cache_dir=cache_dir, plugins=plugins,
                            allow_download=allow_download)
        groups[key] = g
    out.groups = list(groups.values())
    return out


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def plan_rows(p: Plan) -> list[dict[str, Any]]:
    rows = []
    for g in p.groups:
        rows.append({
            "method": g.method, "dataset": g.dataset, "ipc": g.ipc, "cells": g.cells,
            "iterations": g.iterations if g.iterations is not None else "-",
            "eval models/cell": g.eval_models, "epochs": g.eval_epochs,
            "distill/cell": hours(g.distill.seconds) if g.distill else "?",
            "eval/cell": hours(g.evaluation.seconds) if g.evaluation else "?",
            "total": hours(g.total_seconds) if g.total_seconds is not None else "?",
        })
    return rows


def plan_sources(p: Plan) -> list[str]:
    """One line per group: how its estimate was obtained."""
    lines = []
    for g in p.groups:
        parts = [f"distill: {g.distill.source}" if g.distill else "distill: no estimate",
                 f"eval: {g.evaluation.source}" if g.evaluation else "eval: no estimate"]
        if g.prerequisites:
            parts.append(f"caches: {hours(g.prerequisites.seconds)} ({g.prerequisites.source})")
        lines.append(f"{g.method} {g.dataset} ipc{g.ipc}: " + "; ".join(parts))
    return lines


def as_dict(p: Plan) -> dict[str, Any]:
    return {"protocol": p.protocol.name, "protocol_hash": p.protocol.hash, "device": p.device, "cells": p.cells,
            "known_seconds": round(p.known_seconds, 1), "groups_without_estimate": len(p.unknown),
            "groups": [dataclasses.asdict(g) for g in p.groups]}
