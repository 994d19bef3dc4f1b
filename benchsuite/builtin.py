"""The suite's own datasets and architectures, registered through the same hooks as any plugin."""

from __future__ import annotations

from typing import Callable

from benchsuite.hookspecs import hookimpl


@hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    from benchsuite.data import BUILTIN_DATASETS

    for entry in BUILTIN_DATASETS:
        register(entry)


@hookimpl
def register_architectures(register: Callable[..., None]) -> None:
    from benchsuite.archs import ARCH_DESCRIPTIONS, BUILTIN_ARCHS

    for name, factory in BUILTIN_ARCHS.items():
        register(name, factory, ARCH_DESCRIPTIONS.get(name, ""))
