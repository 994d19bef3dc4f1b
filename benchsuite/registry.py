"""A name -> object registry that remembers where each entry came from and suggests close names."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Generic, Iterable, Iterator, TypeVar

from benchsuite.errors import PluginError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, each with its origin (the plugin that registered it).

    Names are case-insensitive; ``aliases`` resolve to the canonical name. A duplicate name from a
    second plugin is an error naming both plugins, because silently shadowing a method would make
    results ambiguous.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, item: T, origin: str = "?", aliases: Iterable[str] = ()) -> None:
        key = name.lower()
        if not key or any(ch.isspace() or ch == "," for ch in key):
            raise PluginError(f"plugin {origin!r} registered an invalid {self.kind} name {name!r}")
        for k in (key, *[a.lower() for a in aliases]):
            existing = self._origins.get(k) or self._origins.get(self._aliases.get(k, ""))
            if existing is not None:
                raise PluginError(
                    f"{self.kind} {k!r} is registered twice: by {existing!r} and by {origin!r}; "
                    "rename one of them or remove the duplicate plugin"
                )
        self._items[key] = item
        self._origins[key] = origin
        for alias in aliases:
            self._aliases[alias.lower()] = key

    def canonical(self, name: str) -> str:
        key = name.lower()
        key = self._aliases.get(key, key)
        if key not in self._items:
            raise UnknownNameError(self._unknown_message(name))
        return key

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def origin(self, name: str) -> str:
        return self._origins[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return self._aliases.get(key, key) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(k, self._items[k]) for k in sorted(self._items)]

    def match(self, spec: str | Iterable[str]) -> list[str]:
        """Resolve ``"all"``, comma lists and glob patterns (``glad-*``) to canonical names, in order."""
        parts = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else [p.strip() for p in spec]
        out: list[str] = []
        for part in filter(None, parts):
            if part.lower() == "all":
                hits = list(self)
            elif any(ch in part for ch in "*?["):
                hits = [k for k in self if fnmatch.fnmatch(k, part.lower())]
                if not hits:
                    raise UnknownNameError(f"no {self.kind} matches {part!r}; known: {', '.join(self)}")
            else:
                hits = [self.canonical(part)]
            out.extend(h for h in hits if h not in out)
        if not out:
            raise UnknownNameError(f"no {self.kind} selected; known: {', '.join(self)}")
        return out

    def _unknown_message(self, name: str) -> str:
        candidates = list(self._items) + list(self._aliases)
        close = difflib.get_close_matches(name.lower(), candidates, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self)}"
