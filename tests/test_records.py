"""Record provenance: the digest that names the suite's code independently of git."""

from __future__ import annotations

import re
from pathlib import Path

import benchsuite
from benchsuite.plugins import bundled_plugin_dirs
from benchsuite.provenance import code_digest, source_digest


def tree(base, files):
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return base


SOURCES = {"pkg/a.py": "x = 1\n", "pkg/sub/b.py": "y = 2\n", "pkg/protocols/p.toml": "name = 'p'\n"}


def test_same_sources_in_another_place_give_the_same_digest(tmp_path):
    one = tree(tmp_path / "one", SOURCES)
    two = tree(tmp_path / "two", SOURCES)
    assert source_digest([one / "pkg"]) == source_digest([two / "pkg"])


def test_a_changed_byte_or_a_renamed_file_changes_the_digest(tmp_path):
    base = tree(tmp_path / "t", SOURCES)
    before = source_digest([base / "pkg"])
    (base / "pkg/sub/b.py").write_text("y = 3\n")
    changed = source_digest([base / "pkg"])
    (base / "pkg/sub/b.py").rename(base / "pkg/sub/c.py")
    renamed = source_digest([base / "pkg"])
    assert len({before, changed, renamed}) == 3


def test_caches_and_other_files_do_not_count(tmp_path):
    base = tree(tmp_path / "t", SOURCES)
    before = source_digest([base / "pkg"])
    tree(base, {"pkg/__pycache__/a.cpython-311.py": "junk", "pkg/notes.txt": "hi", "pkg/_bundled/plugins/d.py": "z"})
    assert source_digest([base / "pkg"]) == before


def test_code_digest_covers_the_package_and_the_bundled_methods():
    package = Path(benchsuite.__file__).resolve().parent
    assert re.fullmatch(r"[0-9a-f]{16}", code_digest())
    assert {d.name for d in bundled_plugin_dirs()} == {"baselines", "plugins"}
    assert code_digest() == source_digest([package, *bundled_plugin_dirs()])
    assert code_digest() != source_digest([package])  # the method modules count too
