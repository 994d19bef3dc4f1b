"""The documentation: the MkDocs site builds with --strict (no broken links), no file of the project
refers to a document outside the repository, and the README stays a short manual."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ("METHODS" + ".md", "ANCHORS" + ".md", "DESIGN" + ".md")  # split: this file must not match itself


def project_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / line for line in listed.stdout.splitlines() if line]


def test_no_file_refers_to_a_document_outside_the_repository():
    hits = []
    for path in project_files():
        # records are data written by past runs (their configs' `source` strings) and are never rewritten
        if path.name == "records.jsonl" or path.suffix in (".png", ".pt", ".npz") or not path.is_file():
            continue
        if path.resolve() == Path(__file__).resolve():
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{path.relative_to(ROOT)}: {name}" for name in OUTSIDE if name in text]
    assert hits == []


def test_the_readme_is_a_short_manual_with_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 260
    setup = ('python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.14.1 torchvision==0.29.1 && '
             'pip install -e ".[test]" && ')
    assert setup + "BENCHSUITE_DATA=../shared/data benchsuite run --methods all" in readme
    assert setup + "python -m pytest -q" in readme


@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason='mkdocs is not installed (pip install -e ".[docs]")')
def test_the_documentation_site_builds_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "methods" / "mtt" / "index.html").exists()
