"""Which records a report ranks: current ones, stale ones, and those of methods not installed.

A record is *current* when the installed method (the plugin set the report was given) has the
record's method version and source digest (:func:`benchsuite.identity.method_source_digest`): its
number is what the installed code does. Otherwise it is *stale*, with a reason: another method
version, other source code, or no source digest at all (a record made before digests were
recorded, whose code cannot be compared). Stale records are left out of the ranking and counted by
reason; ``include_stale`` keeps them, marked. A record whose method is not installed cannot be
compared with anything and is never ranked.

Every table is built from :attr:`Selection.shown`: the newest record (file order) of each cell and
display name, so a cell run with ``--set`` overrides (``dm [iterations=50]``) is a row of its own,
and two records of one cell and name (an old configuration and a newer one) are never pooled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from benchsuite.identity import method_source_digest
from benchsuite.records import RunRecord

NO_SOURCE_DIGEST = "made before source digests were recorded"
STALE_MARK = "‡"


@dataclass(frozen=True)
class Installed:
    """What a record is compared with: the installed method class's version and source digest."""

    version: str
    source_digest: str
    container: bool


class InstalledMethods:
    """The installed methods of a plugin set, their digests computed once and only when asked
    (a digest reads and parses every source file of the method)."""

    def __init__(self, plugins: Any) -> None:
        self.plugins = plugins
        self._found: dict[str, Installed | None] = {}

    def get(self, name: str) -> Installed | None:
        if name not in self._found:
            cls = self.plugins.methods.get(name) if name in self.plugins.methods else None
            self._found[name] = None if cls is None else Installed(
                str(cls.version), method_source_digest(cls), bool(getattr(cls, "container", False)))
        return self._found[name]

    def containers(self) -> dict[str, bool]:
        """Every installed method's ``container`` flag, for the checks made when records are read."""
        return {name: bool(getattr(cls, "container", False)) for name, cls in self.plugins.methods.items()}


def default_plugins() -> Any:
    """The plugin set a report uses when its caller gives none: what ``benchsuite`` loads."""
    from benchsuite.plugins import get_plugin_manager

    return get_plugin_manager()


def stale_reason(record: RunRecord, installed: Installed) -> str | None:
    """Why ``record`` does not describe the installed method (``None`` when it does), worded to
    follow a count: "3 records <reason>"."""
    if record.method_version is None:
        return f"of {record.method} without a method version (installed: {installed.version})"
    if str(record.method_version) != installed.version:
        return f"of {record.method} version {record.method_version} (installed: {installed.version})"
    if record.source_digest is None:
        return NO_SOURCE_DIGEST
    if record.source_digest != installed.source_digest:
        return f"of {record.method} made by other source code than the installed one"
    return None


@dataclass(frozen=True)
class Entry:
    """A record the tables use, and why it is stale when it is (kept by ``include_stale``)."""

    record: RunRecord
    stale: str | None = None


@dataclass
class Selection:
    """The records a report's tables are built from, and what it left out."""

    shown: list[Entry] = field(default_factory=list)
    stale_left_out: list[Entry] = field(default_factory=list)  # not ranked (without include_stale)
    not_installed: list[RunRecord] = field(default_factory=list)
    include_stale: bool = False

    @property
    def records(self) -> list[RunRecord]:
        return [e.record for e in self.shown]

    @property
    def left_out(self) -> Counter:
        """Stale reason -> records left out of the ranking."""
        return Counter(e.stale for e in self.stale_left_out)

    def left_out_text(self) -> str | None:
        """One sentence on the stale records left out of the ranking, by reason; ``None`` if none."""
        if not self.left_out:
            return None
        return (f"Left out of the ranking: {_by_reason(self.stale_left_out)}. These records do not describe the "
                "installed code; rerun their cells to rank them, or pass `--include-stale` to show them marked "
                f"{STALE_MARK}.")

    def kept_stale_text(self) -> str | None:
        kept = [e for e in self.shown if e.stale]
        if not kept:
            return None
        return (f"Cells marked {STALE_MARK} are stale (kept by `--include-stale`): {_by_reason(kept)}. "
                "They do not describe the installed code and are not comparable with the other cells.")

    def not_installed_summary(self) -> list[tuple[str, int, int]]:
        """(method, records, of which errors) for every method that is not installed."""
        counts: dict[str, list[int]] = {}
        for r in self.not_installed:
            c = counts.setdefault(r.method, [0, 0])
            c[0] += 1
            c[1] += r.status == "error"
        return [(m, n, e) for m, (n, e) in sorted(counts.items())]


def _by_reason(entries: list[Entry], most_methods: int = 8) -> str:
    """Counts by reason, for example ``3 records of herding version 1 (installed: 2); 2 records made
    before source digests were recorded (dm, random)``: a reason that does not name its method is
    followed by the methods it covers."""
    methods: dict[str, set[str]] = {}
    for e in entries:
        methods.setdefault(e.stale or "", set()).add(e.record.method)
    counts = Counter(e.stale or "" for e in entries)
    parts = []
    for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        names = sorted(methods[reason])
        named = "" if len(names) == 1 and f"of {names[0]} " in f"{reason} " else (
            f" ({', '.join(names[:most_methods])}{', ...' if len(names) > most_methods else ''})")
        parts.append(f"{n} record{'s' if n != 1 else ''} {reason}{named}")
    return "; ".join(parts)


def select(records: Iterable[RunRecord], plugins: Any = None, include_stale: bool = False,
           installed: InstalledMethods | None = None) -> Selection:
    """The newest current record of each (cell, display name), in file order; stale ones only
    with ``include_stale`` (and only where the cell and name has no current record)."""
    installed = installed or InstalledMethods(plugins if plugins is not None else default_plugins())
    newest: dict[tuple, tuple[int, RunRecord]] = {}
    for position, r in enumerate(records):
        newest[r.identity] = (position, r)  # a rerun of one identity supersedes it
    selection = Selection(include_stale=include_stale)
    groups: dict[tuple, list[tuple[int, RunRecord, str | None]]] = {}
    for position, r in sorted(newest.values(), key=lambda pr: pr[0]):
        found = installed.get(r.method)
        if found is None:
            selection.not_installed.append(r)
            continue
        cell = (r.protocol_hash, r.display_name, r.dataset, r.ipc, r.arch, r.seed)
        groups.setdefault(cell, []).append((position, r, stale_reason(r, found)))
    chosen: list[tuple[int, Entry]] = []
    left_out: list[tuple[int, Entry]] = []
    for items in groups.values():
        current = [(p, r) for p, r, why in items if why is None]
        if current:
            # older records of the cell and name, stale or not, are superseded by the newest current one
            position, r = current[-1]
            chosen.append((position, Entry(r)))
        elif include_stale:
            position, r, why = items[-1]
            chosen.append((position, Entry(r, why)))
        else:
            left_out += [(position, Entry(r, why)) for position, r, why in items]
    selection.shown = [e for _, e in sorted(chosen, key=lambda pe: pe[0])]
    selection.stale_left_out = [e for _, e in sorted(left_out, key=lambda pe: pe[0])]
    return selection
