"""The hooks a benchsuite plugin may implement. Built-in features use the same hooks.

Mark implementations with ``@benchsuite.hookimpl``; a misspelt hook name is caught at start-up by
``check_pending`` and reported with the plugin's name.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "benchsuite"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register(MethodClass)`` for each :class:`benchsuite.Method`
    subclass this plugin provides. The class's ``name`` must be unique across all plugins."""


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register(entry)`` with a :class:`benchsuite.data.DatasetEntry`
    (a :class:`DatasetSpec` plus a reader of uint8 arrays) for each dataset provided."""


@hookspec
def register_architectures(register: Callable[..., None]) -> None:
    """Called once at start-up. Call ``register(name, factory, description="")`` where
    ``factory(channels, num_classes, image_size)`` returns a fresh ``nn.Module`` with ``forward``
    (logits) and ``embed`` (features before the classifier)."""


@hookspec
def record_ready(record: dict[str, Any]) -> None:
    """Called after each run record has been written to disk (status ``ok`` or ``error``).
    Use it to mirror records to an external logger. Exceptions here are logged, not raised."""
