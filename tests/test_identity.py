"""A result is its identity: a change of config, method version, method source or data runs the
cell again instead of keeping the old record, and a saved set is reused only under its own
identity."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

from benchsuite.api import SyntheticSet
from benchsuite.data.synthetic import make_synthetic
from benchsuite.identity import display_name, method_source_digest, method_source_files
from benchsuite.plugins import get_plugin_manager
from benchsuite.protocol import load_protocol
from benchsuite.record_store import RecordStore
from benchsuite.records import read_records
from benchsuite.runner import RunOptions, Runner, plan

# `first` picks the first `ipc` images of each class, scaled; VERSION and BODY vary per test.
PLUGIN = '''
from dataclasses import dataclass
import torch
import benchsuite

@dataclass(frozen=True)
class Cfg:
    scale: float = 1.0

class First(benchsuite.Method):
    name = "first"
    version = "{version}"
    Config = Cfg
    def distill(self, real, ipc, ctx):
        imgs, labels = [], []
        for c, idx in enumerate(real.class_indices()):
            imgs.append(real.images[idx[:ipc]] * self.config.scale{extra})
            labels.append(torch.full((ipc,), c))
        return benchsuite.SyntheticSet(torch.cat(imgs), torch.cat(labels))

@benchsuite.hookimpl
def register_methods(register):
    register(First)
'''


def plugin_folder(root: Path, name: str, version: str = "1", extra: str = "") -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "first.py").write_text(textwrap.dedent(PLUGIN.format(version=version, extra=extra)))
    return folder


def run(tmp_path: Path, folder: Path, overrides: dict | None = None, **options):
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 2, "models": 1})
    opts = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                      allow_download=False, device="cpu", method_overrides={"first": overrides or {}}, **options)
    return Runner(get_plugin_manager([folder], entry_points=False), protocol, opts).run(["first"])


def test_a_config_change_reruns_the_cell_and_shows_its_overrides(tmp_path):
    folder = plugin_folder(tmp_path, "v1")
    first = run(tmp_path, folder)
    again = run(tmp_path, folder)
    changed = run(tmp_path, folder, {"scale": 0.5})
    assert (first.ok_records, again.skipped, changed.skipped, changed.ok_records) == (1, 1, 0, 1)
    records = read_records(tmp_path / "results")
    plain, modified = records
    assert plain.config_digest != modified.config_digest and plain.set_identity != modified.set_identity
    assert (plain.method_overrides, modified.method_overrides) == (None, {"scale": 0.5})
    assert (plain.display_name, modified.display_name) == ("first", "first [scale=0.5]")
    # each identity has its own saved set; the first one was not overwritten
    assert plain.artifact != modified.artifact and Path(plain.artifact).exists() and Path(modified.artifact).exists()


def test_a_version_bump_reruns_the_cell(tmp_path):
    run(tmp_path, plugin_folder(tmp_path, "v1", version="1"))
    bumped = run(tmp_path, plugin_folder(tmp_path, "v2", version="2"))
    assert bumped.skipped == 0 and bumped.ok_records == 1
    assert [r.method_version for r in read_records(tmp_path / "results")] == ["1", "2"]


def test_a_source_change_with_the_same_version_reruns_the_cell(tmp_path):
    run(tmp_path, plugin_folder(tmp_path, "a"))
    edited = run(tmp_path, plugin_folder(tmp_path, "b", extra=" + 0.0"))  # new code, same version
    assert edited.skipped == 0 and edited.ok_records == 1
    a, b = read_records(tmp_path / "results")
    assert a.method_version == b.method_version and a.source_digest != b.source_digest


def test_a_saved_set_is_reused_only_under_its_identity(tmp_path):
    folder = plugin_folder(tmp_path, "v1")
    run(tmp_path, folder)
    [first] = read_records(tmp_path / "results")
    (tmp_path / "results" / "records.jsonl").unlink()  # the records are gone, the set is not
    run(tmp_path, folder)
    run(tmp_path, folder, {"scale": 0.5})
    reused, other = read_records(tmp_path / "results")
    assert reused.artifact == first.artifact and other.artifact != first.artifact
    assert (first.reused_artifact, reused.reused_artifact, other.reused_artifact) == (False, True, False)
    _, meta = SyntheticSet.load(Path(first.artifact))
    assert meta["set_identity"] == first.set_identity and meta["source_digest"] == first.source_digest
    assert meta["commit"] == first.commit and meta["config_digest"] == first.config_digest


def test_a_dataset_with_other_contents_is_another_identity(tmp_path):
    """The fingerprint is of the contents: one changed pixel changes it, a copy does not."""
    raw = make_synthetic()
    same = make_synthetic()
    assert raw.fingerprint() == same.fingerprint()
    raw.x_train[0, 0, 0, 0] ^= 1
    assert raw.fingerprint() != same.fingerprint()
    # and resume asks for the fingerprint the cell would run with
    plugins = get_plugin_manager(entry_points=False)
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 2, "models": 1})
    opts = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                      allow_download=False, device="cpu")
    Runner(plugins, protocol, opts).run(["random"])
    record = read_records(tmp_path / "results")[0]
    assert record.dataset_fingerprint == same.fingerprint()
    store = RecordStore(tmp_path / "results")
    cell = plan(protocol, ["random"])[0]
    identity = {"method_version": record.method_version, "config_digest": record.config_digest,
                "source_digest": record.source_digest, "dataset_fingerprint": record.dataset_fingerprint}
    assert store.pending_archs(cell, [record.arch], protocol.hash, identity) == []
    other_data = identity | {"dataset_fingerprint": raw.fingerprint()}
    assert store.pending_archs(cell, [record.arch], protocol.hash, other_data) == [record.arch]


def test_records_of_before_identity_fields_rerun(tmp_path):
    """A version-2 record (no source digest, no fingerprint) is not the current result."""
    plugins = get_plugin_manager(entry_points=False)
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 2, "models": 1})
    opts = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                      allow_download=False, device="cpu")
    Runner(plugins, protocol, opts).run(["random"])
    path = tmp_path / "results" / "records.jsonl"
    import json

    old = json.loads(path.read_text())
    for key in ("source_digest", "dataset_fingerprint", "set_identity", "config_digest"):
        old.pop(key, None)
    path.write_text(json.dumps(old | {"schema_version": 2}) + "\n")
    assert read_records(tmp_path / "results")[0].config_digest is not None  # migrated from method_config
    again = Runner(plugins, protocol, opts).run(["random"])
    assert again.skipped == 0 and again.ok_records == 1


def test_the_source_digest_covers_the_method_and_the_building_blocks_it_imports():
    plugins = get_plugin_manager(entry_points=False)
    dm = [name for name, _ in method_source_files(plugins.methods.get("dm"))]
    assert "plugins/dm.py" in dm and "benchsuite/ops/matching.py" in dm
    assert not any(n.startswith(("plugins/mtt", "benchsuite/evaluate")) for n in dm)
    herding = [name for name, _ in method_source_files(plugins.methods.get("herding"))]
    # imported inside a function, not at the top: still part of herding's code
    assert "benchsuite/ops/feature_extractor.py" in herding
    glad = [name for name, _ in method_source_files(plugins.methods.get("glad-dm"))]
    assert {"glad/__init__.py", "glad/priors.py"} <= set(glad)
    assert method_source_digest(plugins.methods.get("dm")) != method_source_digest(plugins.methods.get("dc"))


def test_display_names_say_the_overrides():
    assert display_name("dm", None) == "dm"
    assert display_name("dm", {"iterations": 50, "lr_img": 1.0}) == "dm [iterations=50, lr_img=1.0]"
