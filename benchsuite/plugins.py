"""Plugin discovery: built-ins, the bundled method folders, user folders and entry points."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from benchsuite import hookspecs
from benchsuite.bundled import bundled_plugin_dirs
from benchsuite.errors import PluginError
from benchsuite.registry import Registry

log = logging.getLogger("benchsuite")

ENTRY_POINT_GROUP = hookspecs.PROJECT
HOOK_NAMES = ("register_methods", "register_datasets", "register_architectures", "run_started", "pending_archs",
              "cell_started", "cell_skipped", "cell_waiting", "record_ready", "run_finished", "make_progress")


@dataclass
class PluginInfo:
    name: str
    source: str  # "builtin", "bundled", "folder", "entry-point"
    location: str
    hooks: list[str] = field(default_factory=list)


def _module_name(path: Path) -> str:
    # A unique module name per file or folder: plugin folders are not packages, and two folders
    # may both hold a ``dc.py``.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"benchsuite_plugin_{path.stem}_{digest}"


def _load_module_from_path(path: Path, source: str) -> ModuleType:
    """Import a plugin: a ``name.py`` module, or a ``name/`` package (a folder with
    ``__init__.py``, whose modules import each other relatively: a method family's own code)."""
    mod_name = _module_name(path)
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(mod_name, path / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load plugin {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        for name in [m for m in sys.modules if m == mod_name or m.startswith(mod_name + ".")]:
            del sys.modules[name]
        tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise PluginError(f"plugin {path} ({source}) failed to import: {tb}. Fix or remove it.") from exc
    return module


def _plugin_files(folder: Path) -> list[Path]:
    """The plugins of a folder: its ``*.py`` modules and its package subfolders (names starting
    with ``_`` are skipped)."""
    if not folder.is_dir():
        raise PluginError(f"plugins folder {folder} does not exist")
    modules = [p for p in folder.glob("*.py") if not p.name.startswith("_")]
    packages = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
                and (p / "__init__.py").is_file()]
    return sorted(modules + packages, key=lambda p: p.stem)


def bundled_module(name: str) -> ModuleType:
    """A module of a bundled method family by its dotted name under ``plugins/`` or
    ``baselines/`` (``"glad.priors"``, ``"hmn"``), imported as the plugin loader imports it, so
    its classes are the ones the registered methods use."""
    head, _, rest = name.partition(".")
    for folder in bundled_plugin_dirs():
        for candidate in (folder / head, folder / f"{head}.py"):
            if candidate.exists():
                package = _load_module_from_path(candidate, "bundled")
                return importlib.import_module(f"{package.__name__}.{rest}") if rest else package
    raise PluginError(f"no bundled plugin {head!r}; the bundled ones are in {[str(d) for d in bundled_plugin_dirs()]}")


class PluginSet:
    """A pluggy manager plus the registries its plugins filled."""

    def __init__(self, plugin_dirs: Iterable[Path | str] = (), entry_points: bool = True, bundled: bool = True) -> None:
        plugin_dirs = list(plugin_dirs)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        # How to load the same plugins again in another process (an executor's worker).
        self.plugin_dirs = [str(Path(d).expanduser()) for d in plugin_dirs]
        self.entry_points = entry_points
        from benchsuite import builtin  # local import: builtin imports data/archs (heavy)

        self._register(builtin, "benchsuite.builtin", "builtin", builtin.__file__ or "")
        if bundled:
            for folder in bundled_plugin_dirs():
                for path in _plugin_files(folder):
                    self._register(_load_module_from_path(path, "bundled"), f"{folder.name}/{path.stem}", "bundled",
                                   str(path))
        for folder in plugin_dirs:
            folder = Path(folder).expanduser()
            for path in _plugin_files(folder):
                self._register(_load_module_from_path(path, "folder"), f"{folder}/{path.stem}", "folder", str(path))
        if entry_points:
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                try:
                    obj = ep.load()
                except Exception as exc:
                    raise PluginError(
                        f"plugin entry point {ep.name!r} ({ep.value}) failed to import: {exc!r}. "
                        "Reinstall or uninstall the package that provides it."
                    ) from exc
                self._register(obj, f"entry-point:{ep.name}", "entry-point", ep.value)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(self._pending_message(exc)) from exc

        self.methods: Registry[type] = Registry("method")
        self.datasets: Registry[Any] = Registry("dataset")
        self.archs: Registry[Callable[..., Any]] = Registry("architecture")
        self.arch_descriptions: dict[str, str] = {}
        self._fill_registries()

    # -- loading ---------------------------------------------------------------------------
    def _register(self, obj: object, name: str, source: str, location: str) -> None:
        if self.pm.is_registered(obj) or name in self.infos:
            return
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} ({location}) is invalid: {exc}") from exc
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} ({location}) could not be registered: {exc}") from exc
        hooks = [h.name for h in self.pm.get_hookcallers(obj) or []]
        self.infos[name] = PluginInfo(name, source, location, sorted(hooks))

    def _pending_message(self, exc: pluggy.PluginValidationError) -> str:
        plugin_name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
        location = self.infos[plugin_name].location if plugin_name in self.infos else "?"
        known = ", ".join(HOOK_NAMES)
        return f"plugin {plugin_name!r} ({location}): {exc}. Known hooks: {known}."

    def _fill_registries(self) -> None:
        from benchsuite.api import Method

        def each(hook_name: str, make_register: Callable[[str], Callable[..., None]]) -> None:
            # One call per plugin, through pluggy (a subset caller of just that plugin), so each
            # registration knows its origin and hook wrappers and tracing still apply.
            impls = getattr(self.pm.hook, hook_name).get_hookimpls()  # registration order: built-ins first
            everyone = [i.plugin for i in impls]
            for impl in impls:
                caller = self.pm.subset_hook_caller(hook_name, remove_plugins=[p for p in everyone if p is not impl.plugin])
                try:
                    caller(register=make_register(impl.plugin_name))
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook_name}: {exc!r}") from exc

        def method_register(origin: str) -> Callable[..., None]:
            def register(cls: type) -> None:
                if not (isinstance(cls, type) and issubclass(cls, Method)):
                    raise PluginError(f"plugin {origin!r} registered {cls!r}, which is not a benchsuite.Method subclass")
                for attr in ("name", "Config"):
                    if not hasattr(cls, attr):
                        raise PluginError(f"plugin {origin!r}: method class {cls.__name__} lacks {attr!r}")
                self.methods.register(cls.name, cls, origin)

            return register

        def dataset_register(origin: str) -> Callable[..., None]:
            def register(entry: Any) -> None:
                self.datasets.register(entry.spec.name, entry, origin, aliases=entry.spec.aliases)

            return register

        def arch_register(origin: str) -> Callable[..., None]:
            def register(name: str, factory: Callable[..., Any], description: str = "") -> None:
                self.archs.register(name, factory, origin)
                self.arch_descriptions[name.lower()] = description

            return register

        each("register_datasets", dataset_register)
        each("register_architectures", arch_register)
        each("register_methods", method_register)

def get_plugin_manager(plugin_dirs: Iterable[Path | str] = (), entry_points: bool = True) -> PluginSet:
    """Load every plugin and fill the registries; raises :class:`PluginError` naming a bad plugin."""
    return PluginSet(plugin_dirs=plugin_dirs, entry_points=entry_points)
