"""No code runs from a data file: priors and saved sets load as plain tensors, and a scan of the
source keeps it that way (a future ``weights_only=False`` or ``pickle`` fails CI)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch

from benchsuite.api import LabeledData, SyntheticSet
from benchsuite.errors import ArtifactError, MethodError
from benchsuite.plugins import bundled_module

priors = bundled_module("glad.priors")
PriorConfig, PriorStore, StyleGenerator = priors.PriorConfig, priors.PriorStore, priors.StyleGenerator

REPO = Path(__file__).resolve().parent.parent
SCANNED = ("benchsuite", "plugins", "baselines", "tools")
TINY = PriorConfig(z_dim=8, w_dim=8, mapping_layers=2, channels=8, steps=2, batch=8, ema_half_life=2)


class MakesADirectoryWhenUnpickled:
    """A pickle that runs code on load: ``os.mkdir(marker)``, harmless and easy to detect."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _hostile_file(path: Path, marker: Path) -> Path:
    torch.save({"config": {}, "num_classes": 10, "image_shape": [1, 16, 16], "state": {},
                "payload": MakesADirectoryWhenUnpickled(marker)}, path)
    return path


def _real() -> LabeledData:
    g = torch.Generator().manual_seed(0)
    return LabeledData(torch.randn((40, 1, 16, 16), generator=g), torch.arange(40) % 10, 10)


def test_the_hostile_file_does_run_code_when_loaded_unsafely(tmp_path):
    """The payload the other tests use is live: without weights_only it creates its marker."""
    marker = tmp_path / "pwned"
    path = _hostile_file(tmp_path / "prior.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_prior_passed_by_path_never_runs_its_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = _hostile_file(tmp_path / "prior.pt", marker)
    store = PriorStore(tmp_path / "cache", "synthetic", _real(), TINY, seed=0)
    with pytest.raises(MethodError, match="not a generative prior written by benchsuite.*could run code"):
        store.load(path)  # the route of --set glad-dm.prior_path=FILE
    assert not marker.exists()


def test_a_prior_in_the_cache_never_runs_its_pickle_and_is_replaced(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    real = _real()
    store = PriorStore(tmp_path / "cache", "synthetic", real, TINY, seed=0)
    store.dir.mkdir(parents=True)
    _hostile_file(store.path, marker)

    def untrained(data, cfg, generator, progress):  # the load path is under test, not training
        return StyleGenerator(cfg, data.num_classes, data.image_shape, generator).eval()

    monkeypatch.setattr(priors, "train_prior", untrained)
    prior = store.ensure()
    assert not marker.exists()
    assert list(store.dir.glob("prior.pt.corrupt-*")), "the foreign file is kept aside for inspection"
    assert prior.generator.num_classes == 10 and store.load() is not None


def test_a_prior_file_of_the_wrong_shape_is_refused_clearly(tmp_path):
    store = PriorStore(tmp_path, "synthetic", _real(), TINY, seed=0)
    for payload, why in [([1, 2, 3], "not a dict"), ({"config": {}, "num_classes": 10}, "'image_shape' missing"),
                         ({"config": {}, "num_classes": 10, "image_shape": [1, 16, 16], "state": {"w": 3}},
                          "not tensors")]:
        torch.save(payload, tmp_path / "p.pt")
        with pytest.raises(MethodError, match=why):
            store.load(tmp_path / "p.pt")


def test_a_saved_set_never_runs_its_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "set.pt"
    torch.save({"images": torch.zeros(1, 1, 4, 4), "labels": torch.zeros(1, dtype=torch.long),
                "storage_bytes": 64, "learned_lr": None, "extra": MakesADirectoryWhenUnpickled(marker)}, path)
    with pytest.raises(ArtifactError, match="not a distilled set written by benchsuite"):
        SyntheticSet.load(path)
    assert not marker.exists()


# -- the source scan ---------------------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loading(source: str, filename: str = "<source>") -> list[str]:
    """Every place in ``source`` that could load untrusted content as code."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.endswith("torch.load") or name == "load" and isinstance(node.func, ast.Name):
                if not _is_true(_kw(node, "weights_only")):
                    found.append(f"{where}: {name}(...) without weights_only=True")
            elif name in UNSAFE_BUILTINS:
                found.append(f"{where}: {name}(...)")
            elif name.endswith(("np.load", "numpy.load")) and _is_true(_kw(node, "allow_pickle")):
                found.append(f"{where}: {name}(..., allow_pickle=True)")
            elif name in ("os.system", "os.popen") or name.startswith("os.exec") or name.startswith("os.spawn"):
                found.append(f"{where}: {name}(...)")
            elif name.startswith("subprocess.") and _is_true(_kw(node, "shell")):
                found.append(f"{where}: {name}(..., shell=True)")
            elif name in ("yaml.load", "yaml.unsafe_load", "torch.jit.load", "torch.package.PackageImporter"):
                found.append(f"{where}: {name}(...)")
    return found


def test_the_scan_catches_each_unsafe_pattern():
    bad = [
        "import torch\ntorch.load(p, weights_only=False)", "import torch\ntorch.load(p)", "import pickle",
        "from dill import loads", "eval('1')", "exec(code)", "import subprocess\nsubprocess.run(c, shell=True)",
        "import os\nos.system('ls')", "import numpy as np\nnp.load(p, allow_pickle=True)", "import yaml\nyaml.load(s)",
    ]
    for source in bad:
        assert unsafe_loading(source), source
    good = "import torch\nmodel.eval()\ntorch.load(p, map_location='cpu', weights_only=True)\nnp.load(p)"
    assert unsafe_loading(good) == []


def test_no_file_of_the_project_loads_untrusted_content_as_code():
    files = [p for folder in SCANNED for p in sorted((REPO / folder).rglob("*.py")) if "_bundled" not in p.parts]
    assert len(files) > 50
    found = [hit for p in files for hit in unsafe_loading(p.read_text(), str(p.relative_to(REPO)))]
    assert found == [], "untrusted content could run as code:\n" + "\n".join(found)
