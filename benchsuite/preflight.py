"""Checks a run makes before its first cell, so that a mistake costs seconds, not a distillation.

Each check raises :class:`ConfigError` (or :class:`UnknownNameError`) with what to do; the command
line turns either into exit status 2.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Protocol as TypingProtocol

from benchsuite.errors import ConfigError


class _Cell(TypingProtocol):
    method: str
    dataset: str
    ipc: int


def check_writable_folder(path: Path, what: str) -> None:
    """``path`` is (or can become) a folder this process can create files in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"the {what} {path} is a file, not a folder; pass another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".benchsuite-write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"the {what} {path} is not writable ({exc.strerror or exc}); pass a folder you can "
                          "write to") from None


def check_archs(archs: Iterable[str]) -> None:
    """Every ``timm:<name>`` architecture names a model timm has (registered names were checked
    when the runner was built)."""
    from benchsuite.archs.timm_models import check_timm_name

    for arch in archs:
        if arch.startswith("timm:"):
            check_timm_name(arch)


def check_cells(cells: Iterable[_Cell], plugins: Any, protocol: Any, overrides: dict[str, dict[str, Any]]) -> None:
    """Every cell's hyperparameters resolve (the ``--set`` values included) and its IPC fits the
    smallest class of its dataset, as far as that is known before loading."""
    seen: set[tuple[str, str, int]] = set()
    for cell in cells:
        if (cell.method, cell.dataset, cell.ipc) in seen:
            continue
        seen.add((cell.method, cell.dataset, cell.ipc))
        method_cls = plugins.methods.get(cell.method)
        spec = plugins.datasets.get(cell.dataset).spec
        try:
            method_cls.resolve_config(spec.name, cell.ipc, protocol, overrides.get(cell.method))
        except ConfigError as exc:
            raise ConfigError(f"{cell.method} on {spec.name} at IPC {cell.ipc}: {exc}") from None
        except (TypeError, ValueError) as exc:  # a config that rejects a value without a ConfigError
            raise ConfigError(f"{cell.method} on {spec.name} at IPC {cell.ipc}: invalid hyperparameters: "
                              f"{exc}") from None
        if getattr(method_cls, "ipc_independent", False):
            continue
        check_ipc_fits(cell.ipc, spec, protocol.train_limit_per_class)


def largest_ipc(spec: Any, train_limit_per_class: int | None) -> int | None:
    limits = [n for n in (spec.min_train_per_class, train_limit_per_class) if n is not None]
    return min(limits) if limits else None


def check_ipc_fits(ipc: int, spec: Any, train_limit_per_class: int | None, class_counts: list[int] | None = None) -> None:
    """IPC is at most the smallest class's train images (the loaded counts when given)."""
    if class_counts is not None:
        smallest = min(class_counts)
        if ipc > smallest:
            c = class_counts.index(smallest)
            raise ConfigError(f"IPC {ipc} asks for more images than class {c} of {spec.name} holds ({smallest} "
                              "train images); lower --ipc")
        return
    limit = largest_ipc(spec, train_limit_per_class)
    if limit is not None and ipc > limit:
        where = ("the protocol's train_limit_per_class" if limit == train_limit_per_class
                 else "its smallest class")
        raise ConfigError(f"IPC {ipc} asks for more images per class than {spec.name} has ({limit}, "
                          f"{where}); lower --ipc")
