"""Protocols: everything about a benchmark run that a method does not own, loaded from TOML."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchsuite.errors import ConfigError, UnknownNameError

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"


AUGMENTS = ("dsa", "dc", "none")


@dataclass(frozen=True)
class EvalRecipe:
    """How every synthetic set is evaluated: train fresh models, report final-epoch test accuracy.

    Defaults are the DC/DSA/DM evaluation (docs/protocols.md, "The evaluation recipe"): SGD lr
    0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at half of the epochs, DSA
    augmentation during training.
    """

    epochs: int = 1000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    lr_decay_at: float = 0.5
    lr_decay_factor: float = 0.1
    augment: str = "dsa"  # "dsa", "dc" (DC augmentation, the DC paper's MNIST recipe) or "none"
    models: int = 5  # fresh models per architecture
    test_batch_size: int = 500
    division: str = "closed"  # "closed": hard labels + fixed lr; "open": honour soft labels and learned lr
    # Epochs when the "set" is the whole training set (the `full` upper bound): an epoch there is
    # thousands of steps, so the protocol budgets it separately. None: same as `epochs`.
    full_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise ConfigError(f"eval.augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.division not in ("closed", "open"):
            raise ConfigError(f"eval.division must be 'closed' or 'open', got {self.division!r}")
        if self.full_epochs is not None and self.full_epochs < 1:
            raise ConfigError(f"eval.full_epochs must be >= 1, got {self.full_epochs}")
        for name in ("epochs", "batch_size", "models", "test_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"eval.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.lr_decay_at <= 1:
            raise ConfigError(f"eval.lr_decay_at must be in (0, 1], got {self.lr_decay_at}")
        # NaN fails every comparison, so each bound is written to be False for NaN.
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"eval.lr must be a finite number > 0, got {self.lr}")
        if not (0 <= self.momentum < 1):
            raise ConfigError(f"eval.momentum must be in [0, 1), got {self.momentum}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"eval.weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if not (0 < self.lr_decay_factor <= 1):
            raise ConfigError(f"eval.lr_decay_factor must be in (0, 1], got {self.lr_decay_factor}")


@dataclass(frozen=True)
class Protocol:
    """A named, hashed benchmark protocol.

    ``archs[0]`` is the architecture methods distill with (the protocol's ConvNet); every
    architecture in ``archs`` evaluates every synthetic set (cross-architecture transfer).
    ``budget`` selects the methods' hyperparameter tables: ``smoke``, ``quick`` or ``paper``.
    ``train_limit_per_class`` caps the real training images per class (tiny real runs).
    """

    name: str
    datasets: tuple[str, ...]
    ipcs: tuple[int, ...]
    archs: tuple[str, ...]
    seeds: tuple[int, ...]
    eval: EvalRecipe
    budget: str = "quick"
    description: str = ""
    train_limit_per_class: int | None = None
    source: str = ""
    # Seconds a method may distil one cell for before it is ended and the cell becomes an error
    # record (None: no limit). A limit decides whether a result exists, never what it is, so it
    # is left out of the hash.
    cell_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("datasets", "ipcs", "archs", "seeds"):
            if not getattr(self, name):
                raise ConfigError(f"protocol {self.name!r}: {name} must not be empty")
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ConfigError(f"protocol {self.name!r}: {name} repeats a value: {list(getattr(self, name))}")
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"protocol {self.name!r}: seeds must be >= 0, got {list(self.seeds)}")
        if self.train_limit_per_class is not None and self.train_limit_per_class < 1:
            raise ConfigError(f"protocol {self.name!r}: train_limit_per_class must be >= 1, "
                              f"got {self.train_limit_per_class}")
        if self.cell_timeout is not None and not (math.isfinite(self.cell_timeout) and self.cell_timeout > 0):
            raise ConfigError(f"protocol {self.name!r}: cell_timeout must be a number of seconds > 0, "
                              f"got {self.cell_timeout}")
        if any(i < 1 for i in self.ipcs):
            raise ConfigError(f"protocol {self.name!r}: every IPC must be >= 1, got {list(self.ipcs)}")
        if self.budget not in ("smoke", "quick", "paper"):
            raise ConfigError(f"protocol {self.name!r}: budget must be smoke, quick or paper, got {self.budget!r}")

    @property
    def distill_arch(self) -> str:
        return self.archs[0]

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d

    @property
    def hash(self) -> str:
        """Hash of every field that can change a record's result, and of nothing else.

        That is the name, the budget, the evaluation recipe, the train-set cap and the
        distillation architecture. The grid axes (datasets, IPCs, seeds, and the evaluation
        architectures after the first) only choose which cells run: a record depends on its own
        cell alone, so narrowing the grid (``--ipc 1``) or widening it (``--archs
        convnet,resnet18``) keeps the hash. Records from such runs rank together, and saved
        distilled sets are reused instead of being distilled again.
        """
        return digest(self.results_fields())

    def results_fields(self) -> dict[str, Any]:
        d = self.as_dict()
        d.pop("description")  # words, not a setting
        d.pop("cell_timeout")  # whether a result exists, not what it is
        for grid_axis in ("datasets", "ipcs", "seeds", "archs"):
            d.pop(grid_axis)
        d["distill_arch"] = self.distill_arch  # the one arch that shapes every synthetic set
        return d

    def with_overrides(self, **changes: Any) -> "Protocol":
        """A copy with grid axes narrowed (``--datasets`` etc.); ``eval`` takes a dict of recipe fields."""
        clean = {k: v for k, v in changes.items() if v is not None}
        if "eval" in clean and isinstance(clean["eval"], dict):
            clean["eval"] = _replace_checked(self.eval, clean["eval"], "eval")
        for key in ("datasets", "archs"):
            if key in clean:
                clean[key] = tuple(clean[key])
        for key in ("ipcs", "seeds"):
            if key in clean:
                clean[key] = tuple(int(v) for v in clean[key])
        return dataclasses.replace(self, **clean)


def digest(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _replace_checked(obj: Any, values: dict[str, Any], where: str) -> Any:
    """``dataclasses.replace`` that rejects unknown keys and coerces strings (from the CLI)."""
    fields = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    typed = {k: coerce_like(getattr(obj, k), v, f"{where}.{k}") for k, v in values.items()}
    return dataclasses.replace(obj, **typed)


def coerce_like(default: Any, value: Any, where: str) -> Any:
    """Convert ``value`` (often a CLI string) to the type of ``default``."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    text = value.strip()
    if text.lower() in ("none", "null"):
        return None
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    kind = type(default) if default is not None else None
    for caster in ([kind] if kind in (int, float) else [int, float]):
        try:
            number = caster(text)
        except ValueError:
            continue
        if isinstance(number, float) and not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if kind is int:
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if kind is float:
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return text


def available_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.toml"))


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a built-in protocol by name (``quick``) or any TOML file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROTOCOL_DIR / f"{name_or_path}.toml"
        if not path.exists():
            import difflib

            known = available_protocols()
            close = difflib.get_close_matches(str(name_or_path), known, n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"unknown protocol {str(name_or_path)!r}.{hint} Known: {', '.join(known)}; "
                "or pass the path of a .toml file"
            )
    elif not path.exists():
        raise ConfigError(f"protocol file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"protocol file {path} is not valid TOML: {exc}") from exc
    return protocol_from_dict(raw, source=str(path), default_name=path.stem)


# What a protocol file may hold at the top level, with the TOML type each key needs.
_TOP_LEVEL_TYPES: dict[str, tuple[type, type | None]] = {
    "name": (str, None), "description": (str, None), "budget": (str, None), "source": (str, None),
    "datasets": (list, str), "archs": (list, str), "ipcs": (list, int), "seeds": (list, int),
    "train_limit_per_class": (int, None), "cell_timeout": (float, None),
}


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _expect(where: str, key: str, value: Any, kind: type, item: type | None = None) -> None:
    """Raise unless ``value`` is exactly of TOML type ``kind`` (a list of ``item``); a boolean
    is never an integer, and an integer is accepted where a number (float) is expected."""
    def fits(v: Any, t: type) -> bool:
        if isinstance(v, bool):
            return t is bool
        if t is float:
            return isinstance(v, (int, float))
        return isinstance(v, t)

    wanted = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if item is not None:
        if not isinstance(value, list) or not all(fits(v, item) for v in value):
            example = "[1, 10]" if item is int else '["a", "b"]'
            raise ConfigError(f"protocol {where}: {key} = {value!r} is {_type_name(value)}; expected a list of "
                              f"{'integers' if item is int else 'strings'}, e.g. {key} = {example}")
        return
    if not fits(value, kind):
        raise ConfigError(f"protocol {where}: {key} = {value!r} is {_type_name(value)}; expected {wanted[kind]}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"protocol {where}: {key} = {value!r} must be a finite number")


def _eval_field_types() -> dict[str, type]:
    hints = typing.get_type_hints(EvalRecipe)
    out = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = args[0] if args else hint
    return out


def protocol_from_dict(raw: dict[str, Any], source: str = "", default_name: str = "custom") -> Protocol:
    """A protocol from a TOML table. Every value must have its key's type: nothing is coerced, so
    ``ipcs = "one"`` or ``epochs = 2.5`` is an error naming the key, not a silent surprise."""
    raw = dict(raw)
    where = source or default_name
    eval_raw = raw.pop("eval", {})
    unknown = sorted(set(raw) - set(_TOP_LEVEL_TYPES))
    if unknown:
        raise ConfigError(f"protocol {where}: unknown key(s) {unknown}; known: {sorted(_TOP_LEVEL_TYPES)}")
    for key, value in raw.items():
        _expect(where, key, value, *_TOP_LEVEL_TYPES[key])
    if not isinstance(eval_raw, dict):
        raise ConfigError(f"protocol {where}: eval must be a table ([eval]), got {_type_name(eval_raw)}")
    types = _eval_field_types()
    for key, value in eval_raw.items():
        if key in types:
            _expect(where, f"eval.{key}", value, types[key])
    recipe = _replace_checked(EvalRecipe(), eval_raw, "eval")
    raw.pop("source", None)
    return Protocol(
        name=raw.pop("name", default_name),
        datasets=tuple(raw.pop("datasets", ())),
        ipcs=tuple(raw.pop("ipcs", ())),
        archs=tuple(raw.pop("archs", ("convnet",))),
        seeds=tuple(raw.pop("seeds", (0,))),
        eval=recipe,
        source=source,
        **raw,
    )
