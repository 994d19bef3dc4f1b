"""Hand-made records that describe the installed methods: the version and source digest a report
compares a record with, so a test record is ranked instead of being left out as stale."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from benchsuite.identity import method_source_digest


@lru_cache(maxsize=1)
def _plugins() -> Any:
    from benchsuite.plugins import get_plugin_manager

    return get_plugin_manager(entry_points=False)


def installed_identity(method: str) -> dict[str, str]:
    """``method_version`` and ``source_digest`` of the installed ``method`` (record fields)."""
    cls = _plugins().methods.get(method)
    return {"method_version": str(cls.version), "source_digest": method_source_digest(cls)}


def current(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (a JSON object) as the installed method would have made it."""
    return record | installed_identity(record["method"])
