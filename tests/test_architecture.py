"""The package's layers (docs/architecture.md): a module imports only from its own layer or the
ones below, so the core can be read and changed bottom-up. A new upward import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "benchsuite"

# Lowest first; a name is a module or a subpackage of benchsuite.
LAYERS = [
    ("foundations", ["errors", "hookspecs", "registry", "atomic", "locks", "progress", "bundled"]),
    ("types and data", ["api", "protocol", "protocols", "data", "archs", "modeling", "measure", "provenance",
                        "devices", "published", "identity"]),
    ("building blocks", ["ops", "training", "compiled_inference", "stats"]),
    ("evaluator and contract", ["evaluate", "contract"]),
    ("records", ["records", "record_schema", "record_checks"]),
    ("plugins", ["plugins", "builtin", "record_store", "terminal"]),
    ("cells", ["cell", "isolation", "isolation_child", "preflight", "executors", "ray_executor"]),
    ("driving", ["runner", "probe", "report", "plan", "pictures", "site", "site_plots", "fidelity",
                 "staleness"]),
    ("interface", ["cli", "__main__"]),
]
RANK = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {m for m in found if m.startswith("benchsuite.")}


def test_every_module_of_the_package_has_a_layer():
    names = {p.stem if p.parent == PACKAGE else p.relative_to(PACKAGE).parts[0]
             for p in PACKAGE.rglob("*.py") if "_bundled" not in p.parts}
    assert names - {"__init__"} <= set(RANK), sorted(names - {"__init__"} - set(RANK))


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_bundled" in path.parts or path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        source = "benchsuite." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for target in imports(path):
            if layer_of(target) is not None and layer_of(target) > layer_of(source):
                upward.append(f"{source} -> {target}")
    assert upward == [], "imports pointing up a layer:\n" + "\n".join(upward)
