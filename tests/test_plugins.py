"""Plugin discovery: folders, entry points, and the errors a plugin author sees."""

import sys
import textwrap

import pytest

from benchsuite.errors import PluginError
from benchsuite.plugins import get_plugin_manager

METHOD_PLUGIN = '''
from dataclasses import dataclass
import torch
import benchsuite

@dataclass(frozen=True)
class Cfg:
    scale: float = 1.0

class Mean(benchsuite.Method):
    name = "{name}"
    Config = Cfg
    def distill(self, real, ipc, ctx):
        imgs, labels = [], []
        for c, idx in enumerate(real.class_indices()):
            imgs.append(real.images[idx].mean(0, keepdim=True).repeat(ipc, 1, 1, 1) * self.config.scale)
            labels.append(torch.full((ipc,), c))
        return benchsuite.SyntheticSet(torch.cat(imgs), torch.cat(labels))

@benchsuite.hookimpl
def register_methods(register):
    register(Mean)
'''


def test_builtin_methods_and_plugins_listed(plugins):
    assert {"random", "herding", "kcenter", "full"} <= set(plugins.methods)
    assert plugins.methods.origin("random") == "baselines/random"
    assert "register_methods" in plugins.infos["baselines/random"].hooks


def test_plugin_from_folder(tmp_path):
    (tmp_path / "meanmethod.py").write_text(METHOD_PLUGIN.format(name="class-mean"))
    ps = get_plugin_manager([tmp_path], entry_points=False)
    assert "class-mean" in ps.methods
    assert ps.infos[f"{tmp_path}/meanmethod"].source == "folder"


def test_plugin_from_entry_point(tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "bs_ep_plugin.py").write_text(METHOD_PLUGIN.format(name="ep-mean"))
    dist = pkg / "bs_ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bs-ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[benchsuite]\nep-mean = bs_ep_plugin\n")
    monkeypatch.syspath_prepend(str(pkg))
    ps = get_plugin_manager()
    assert "ep-mean" in ps.methods
    assert ps.infos["entry-point:ep-mean"].source == "entry-point"
    sys.modules.pop("bs_ep_plugin", None)


def test_misspelt_hook_names_the_plugin(tmp_path):
    (tmp_path / "typo.py").write_text(textwrap.dedent('''
        import benchsuite
        @benchsuite.hookimpl
        def register_method(register):
            pass
    '''))
    with pytest.raises(PluginError, match=r"typo.*register_method"):
        get_plugin_manager([tmp_path], entry_points=False)


def test_import_failure_names_the_file(tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(PluginError, match=r"broken\.py.*failed to import.*not_a_module_anywhere"):
        get_plugin_manager([tmp_path], entry_points=False)


def test_duplicate_method_name_names_both_plugins(tmp_path):
    (tmp_path / "dup.py").write_text(METHOD_PLUGIN.format(name="random"))
    with pytest.raises(PluginError, match=r"'random' is registered twice: by 'baselines/random' and by '.*dup'"):
        get_plugin_manager([tmp_path], entry_points=False)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(PluginError, match="does not exist"):
        get_plugin_manager([tmp_path / "nope"], entry_points=False)


def test_a_package_plugin_keeps_its_family_code_in_its_own_modules(tmp_path):
    """A method family ships as a folder with ``__init__.py`` whose modules import each other
    relatively (as plugins/glad/ and plugins/hmn/ do)."""
    family = tmp_path / "plug" / "family"
    family.mkdir(parents=True)
    (family / "core.py").write_text("SCALE = 0.5\n")
    (family / "__init__.py").write_text(METHOD_PLUGIN.format(name="family-mean").replace(
        "import benchsuite\n", "import benchsuite\nfrom .core import SCALE\n").replace(
        "scale: float = 1.0", "scale: float = SCALE"))
    (tmp_path / "plug" / "_private").mkdir()  # folders starting with _ are not plugins
    pm = get_plugin_manager([tmp_path / "plug"], entry_points=False)
    assert pm.methods.get("family-mean").Config().scale == 0.5
    assert any(name.endswith("/family") for name in pm.infos)


def test_bundled_families_are_package_plugins():
    from benchsuite.plugins import bundled_module

    pm = get_plugin_manager(entry_points=False)
    glad = bundled_module("glad")
    assert pm.methods.get("glad-dm").__module__ == glad.__name__
    assert bundled_module("glad.priors").PriorStore is sys.modules[f"{glad.__name__}.priors"].PriorStore
    assert pm.methods.get("hmn").__module__ == bundled_module("hmn").__name__
