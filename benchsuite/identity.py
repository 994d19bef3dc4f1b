"""What identifies a result, computed in one place.

A distilled set is identified by everything that can change it: the protocol (its hash), the
method's name and version, a digest of its resolved configuration (budget table and ``--set``
overrides applied), a digest of the method's source code, the dataset's content fingerprint, the
IPC and the distillation seed. A record adds the evaluation architecture. Resume
(:mod:`benchsuite.record_store`), reuse of saved sets (:mod:`benchsuite.cell`) and the report's
"stale" mark (:mod:`benchsuite.report`) all read these digests, so a change of any part reruns the
cell instead of keeping a result that no longer says what ran.

The method's source is the code that runs when it distils: the module (or package) that defines
the method class, every other plugin module it uses, and the suite's building blocks
(``benchsuite.ops``) it reaches, found by following the names each module imports. The suite's
other code (evaluator, networks, records) is named by each record's ``commit`` and
``code_digest``; it is part of the protocol, not of a method.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

import benchsuite
from benchsuite.bundled import bundled_plugin_dirs

DIGEST_CHARS = 16
_PACKAGE = Path(benchsuite.__file__).resolve().parent
_OPS = _PACKAGE / "ops"


def digest_of(value: Any) -> str:
    """SHA-256 (16 hex digits) of a JSON value, with sorted keys (the same on every machine)."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:DIGEST_CHARS]


def config_digest(config_json: Mapping[str, Any] | None) -> str | None:
    """The digest of a resolved configuration as recorded (``method_config``)."""
    return None if config_json is None else digest_of(dict(config_json))


def set_identity(*, protocol_hash: str, method: str, method_version: str | None, config_digest: str | None,
                 source_digest: str | None, dataset_fingerprint: str | None, dataset: str, ipc: int,
                 seed: int) -> str:
    """The digest naming one distilled set: what a saved set is reused under."""
    return digest_of({"protocol_hash": protocol_hash, "method": method, "method_version": method_version,
                      "config_digest": config_digest, "source_digest": source_digest,
                      "dataset_fingerprint": dataset_fingerprint, "dataset": dataset, "ipc": ipc, "seed": seed})


def display_name(method: str, overrides: Mapping[str, Any] | None) -> str:
    """The name a result is shown under: the method, with its ``--set`` overrides when it had any
    (``dm [iterations=50]``), so a modified method never passes for the published one."""
    if not overrides:
        return method
    shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(overrides.items()))
    return f"{method} [{shown}]"


def _short(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


# -- the method's source ------------------------------------------------------------------------


def _module_file(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _shared_roots() -> list[Path]:
    """Folders whose modules count as a method's code when it uses them: the bundled plugin
    folders and the suite's building blocks (``benchsuite/ops``). A plugin's own package is
    added per method; a lone plugin module counts as its own file only."""
    return [*bundled_plugin_dirs(), _OPS]


def _package_root(module: ModuleType) -> Path | None:
    """The folder of the top-level package a module belongs to (``None`` for a lone module)."""
    top = module.__name__.split(".")[0]
    top_module = sys.modules.get(top)
    if top_module is None or not hasattr(top_module, "__path__"):
        return None
    file = _module_file(top_module)
    return file.parent if file is not None else None


def _owned(file: Path, roots: Iterable[Path]) -> bool:
    return any(file == r or r in file.parents for r in roots)


def _imported_names(module: ModuleType) -> Iterable[str]:
    """Absolute names of the modules a module's source imports anywhere (also inside functions,
    where a lazy import hides from the module's globals)."""
    file = _module_file(module)
    if file is None or file.suffix != ".py":
        return
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return
    package = module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                head = f"{base}.{node.module}" if node.module else base
            else:
                head = node.module or ""
            yield head
            yield from (f"{head}.{alias.name}" for alias in node.names)


def _import_quietly(name: str) -> ModuleType | None:
    if name in sys.modules:
        return sys.modules[name]
    if not (name.startswith("benchsuite.ops.") or name.startswith("benchsuite_plugin_")):
        return None  # only the code a digest covers is imported for it
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a name that is an attribute, not a module
        return None


def _referenced_modules(module: ModuleType) -> Iterable[ModuleType]:
    """Modules a module names: imported modules (at the top or inside functions), and the
    modules of imported functions and classes."""
    for name in _imported_names(module):
        found = _import_quietly(name)
        if found is not None:
            yield found
    for value in list(vars(module).values()):
        if isinstance(value, ModuleType):
            yield value
            continue
        name = getattr(value, "__module__", None)
        if isinstance(name, str) and name in sys.modules and (callable(value) or isinstance(value, type)):
            yield sys.modules[name]


def method_source_files(cls: type) -> list[tuple[str, Path]]:
    """``(name, file)`` of every source file that makes up ``cls``'s code, sorted by name.

    ``name`` is the file's path relative to the parent of the folder it belongs to
    (``plugins/dm.py``, ``benchsuite/ops/matching.py``, ``mypkg/core.py``), so a wheel and a
    checkout of the same code, or two machines, give the same digest.
    """
    start = sys.modules.get(cls.__module__)
    if start is None or _module_file(start) is None:
        return []
    own_root = _package_root(start)
    start_file = _module_file(start)
    roots = _shared_roots() + ([own_root] if own_root is not None else [])
    named_roots = sorted(roots, key=lambda r: len(r.parts), reverse=True)

    def name_of(file: Path) -> str:
        for r in named_roots:
            if file == r or r in file.parents:
                base = _PACKAGE.parent if r == _OPS else r.parent
                return file.relative_to(base).as_posix()
        return file.name

    seen: dict[Path, ModuleType] = {}
    todo = [start]
    while todo:
        module = todo.pop()
        file = _module_file(module)
        if file is None or file in seen:
            continue
        if module is not start and not _owned(file, roots):
            continue
        seen[file] = module
        todo.extend(_referenced_modules(module))
        # a plugin package's own __init__ (its registration and re-exports) is part of it; the
        # suite's ``benchsuite.ops`` package file is not (it only re-exports the modules used)
        parent = sys.modules.get(module.__name__.rpartition(".")[0])
        if parent is not None and own_root is not None and _owned(_module_file(parent) or own_root, [own_root]):
            todo.append(parent)
    files = sorted((name_of(f), f) for f in seen if f.suffix == ".py")
    if start_file is not None and start_file.suffix == ".py" and not any(f == start_file for _, f in files):
        files.append((name_of(start_file), start_file))
    return sorted(files)


@lru_cache(maxsize=None)
def method_source_digest(cls: type) -> str:
    """SHA-256 (16 hex digits) of the method's source files (:func:`method_source_files`)."""
    h = hashlib.sha256()
    for name, file in method_source_files(cls):
        h.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:DIGEST_CHARS]



def cell_identity(method_cls: type, config_json: Mapping[str, Any], protocol: Any, cell: Any,
                  dataset_fingerprint: str | None, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The identity fields of a cell's records: ``config_digest``, ``source_digest``,
    ``method_overrides`` and the ``set_identity`` built from them (with the method version, the
    protocol hash and the dataset fingerprint)."""
    config = config_digest(config_json)
    source = method_source_digest(method_cls)
    return {
        "config_digest": config, "source_digest": source, "method_overrides": dict(overrides) if overrides else None,
        "set_identity": set_identity(protocol_hash=protocol.hash, method=cell.method,
                                     method_version=str(getattr(method_cls, "version", "")), config_digest=config,
                                     source_digest=source, dataset_fingerprint=dataset_fingerprint,
                                     dataset=cell.dataset, ipc=cell.ipc, seed=cell.seed),
    }
