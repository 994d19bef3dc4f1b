"""The leaderboard site: rendered from the smoke sweep (structure), and loaded in a real headless
browser (images load, sorting works, no console errors)."""

from __future__ import annotations

import html
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from benchsuite.records import read_records

SCREENSHOT = Path(__file__).resolve().parent.parent / "build" / "site-screenshot.png"


@pytest.fixture(scope="module")
def site(serial_smoke_results, tmp_path_factory):
    """The smoke sweep's results copied (so a failed cell can be added) and its site written."""
    results = tmp_path_factory.mktemp("site") / "results"
    shutil.copytree(serial_smoke_results, results)
    # as if the sweep had run here: the records name the saved sets in this folder
    records = results / "records.jsonl"
    records.write_text(records.read_text().replace(str(serial_smoke_results), str(results)))
    # one failed cell of an installed method (at an IPC the sweep did not run), which the site must
    # show instead of dropping it, and one record of a method that is not installed
    first = json.loads((results / "records.jsonl").read_text().splitlines()[0])
    bad = first | {"ipc": 7, "status": "error", "error": {"type": "MethodError", "message": "it broke on purpose",
                                                          "traceback": "Traceback ...", "expected": True}}
    for field in ("accuracy", "artifact", "eval_seconds", "eval_train_seconds", "eval_test_seconds",
                  "images_per_class", "num_images"):
        bad.pop(field, None)
    gone = {k: v for k, v in first.items() if k != "artifact"} | {"method": "gone-method"}
    with open(results / "records.jsonl", "a") as fh:
        fh.write(json.dumps(bad) + "\n" + json.dumps(gone) + "\n")
    assert run_cli("--no-entry-points", "report", "--results", str(results)) == 0
    return results


def test_the_site_shows_every_record_and_every_picture_exists(site):
    index = site / "site" / "index.html"
    page = index.read_text()
    records = read_records(site, warn=False)
    # every record is a row of the cells table (its details hold its protocol hash and method)
    rows = re.findall(r"<tr><td data-sort='([^']+)'>[^<]+</td><td>([^<]+)</td><td class=num data-sort='(\d+)'>", page)
    assert sorted((m, int(i)) for m, _, i in rows) == sorted((r.method, r.ipc) for r in records)
    assert "error: MethodError" in page and "it broke on purpose" in page
    not_installed = page.split("<h2>Not installed</h2>")[1]
    assert "gone-method" in not_installed and "gone-method" not in page.split("<h2>Not installed</h2>")[0]
    sources = [html.unescape(s) for s in re.findall(r"(?:src|href)='([^']+)'", page) if not s.startswith("data:")]
    assert sources and all((index.parent / s).exists() for s in sources), [s for s in sources
                                                                               if not (index.parent / s).exists()]
    saved = {r.method for r in records if r.artifact}
    thumbs = {Path(s).name.split("-ipc")[0] for s in sources if s.endswith("-thumb.png")}
    assert saved <= thumbs  # every method with a saved set has its picture
    assert any("accuracy-vs-ipc" in s for s in sources) and any("accuracy-vs-storage" in s for s in sources)
    assert "http://" not in page and "https://" not in page  # opens offline


def test_a_missing_set_keeps_its_earlier_picture_and_says_so(site, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(site, copy)
    records = copy / "records.jsonl"
    records.write_text(records.read_text().replace(str(site), str(copy)))
    for artifact in (copy / "artifacts").rglob("*.pt"):
        artifact.unlink()
    assert run_cli("--no-entry-points", "report", "--results", str(copy)) == 0
    page = (copy / "site" / "index.html").read_text()
    assert "the picture is from an earlier render" in page
    shutil.rmtree(copy / "site" / "img")
    assert run_cli("--no-entry-points", "report", "--results", str(copy)) == 0
    assert "the saved set is not on this machine" in (copy / "site" / "index.html").read_text()


def test_a_re_distilled_set_says_so_and_the_note_outlives_the_set(site, tmp_path):
    from benchsuite.api import SyntheticSet

    copy = tmp_path / "results"
    shutil.copytree(site, copy)
    records = copy / "records.jsonl"
    records.write_text(records.read_text().replace(str(site), str(copy)))
    record = next(r for r in read_records(copy, warn=False) if r.artifact and r.method == "dm")
    syn, meta = SyntheticSet.load(Path(record.artifact))
    # as `benchsuite probe --save` writes it, by a newer method version with one new setting
    config = dict(record.method_config) | {"new_setting": 7}
    syn.save(Path(record.artifact), metadata={"probe": True, "commit": "0123456789abcdef", "method_version": "99",
                                              "method_config": config, "dataset": record.dataset, "ipc": record.ipc,
                                              "seed": record.seed})
    assert run_cli("--no-entry-points", "report", "--results", str(copy)) == 0
    page = html.unescape((copy / "site" / "index.html").read_text())
    said = ("re-distilled with this cell's configuration and seed by `benchsuite probe` at commit 01234567",
            "method version 99", "new_setting=7")
    assert all(s in page for s in said), [s for s in said if s not in page]
    for artifact in (copy / "artifacts").rglob("*.pt"):
        artifact.unlink()
    assert run_cli("--no-entry-points", "report", "--results", str(copy)) == 0
    page = html.unescape((copy / "site" / "index.html").read_text())
    assert all(s in page for s in said) and "the picture is from an earlier render" in page


def test_set_provenance_names_what_differs_from_the_record():
    from benchsuite.records import RunRecord
    from benchsuite.site import set_provenance

    record = RunRecord.from_json(_record_json(method_config={"source": "a", "lr": 1.0, "iterations": 10},
                                              method_version="1"))
    same = {"method_config": {"source": "b", "lr": 1.0, "iterations": 10}, "method_version": "1",
            "dataset": record.dataset, "ipc": record.ipc, "seed": record.seed}
    assert set_provenance(same, record) == []  # a differing source string is not a different set
    other = same | {"method_config": {"lr": 2.0, "iterations": 10}, "seed": record.seed + 1}
    assert set_provenance(other, record) == [f"the saved set is for seed {record.seed + 1}, this cell for {record.seed}",
                                             "the saved set's configuration differs from this cell's in lr"]


def _record_json(**changes):
    line = Path(__file__).resolve().parent.parent / "results" / "records.jsonl"
    obj = json.loads(line.read_text().splitlines()[0])
    obj.update(changes)
    return obj


def _load_chromium_helper():
    # tools/ is not a package: load the helper the README screenshot uses, so both share one setup
    path = Path(__file__).resolve().parents[1] / "tools" / "chromium.py"
    spec = importlib.util.spec_from_file_location("benchsuite_tools_chromium", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chromium = _load_chromium_helper()


@pytest.mark.skipif(chromium.binaries() is None, reason="no chromium + chromedriver (apt-get install chromium "
                                                 "chromium-driver; .ci/run installs them)")
def test_the_site_in_a_real_headless_browser(site):
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By

    driver = chromium.headless_driver(1400, 1800, console_log=True)
    try:
        driver.get((site / "site" / "index.html").resolve().as_uri())
        images = driver.find_elements(By.TAG_NAME, "img")
        assert images
        widths = [driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", im)
                  for im in images]
        assert all(w and w > 0 for w in widths), widths
        table = driver.find_elements(By.CSS_SELECTOR, "table.sortable")[-1]  # every cell
        def column(i):
            return [td.get_attribute("data-sort") for td in
                    table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({i})")]
        header = table.find_elements(By.TAG_NAME, "th")[0]  # method
        header.click()
        first = column(1)
        assert first == sorted(first)
        header.click()
        assert column(1) == sorted(first, reverse=True)
        ipc = table.find_elements(By.TAG_NAME, "th")[2]
        ipc.click()
        assert [float(v) for v in column(3)] == sorted(float(v) for v in column(3))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        SCREENSHOT.parent.mkdir(exist_ok=True)
        driver.find_element(By.TAG_NAME, "h1").click()
        driver.save_screenshot(str(SCREENSHOT))
    finally:
        driver.quit()
