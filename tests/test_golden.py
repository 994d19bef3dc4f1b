"""Reproducibility as a test: the whole smoke sweep's accuracies and a digest of every saved set,
pinned in ``tests/golden/smoke_sweep.json``.

Any change of numerics (a kernel, an initialisation, an RNG draw, a default) fails here loudly.
When a change is meant to move numbers, regenerate the file and say why in the commit:

    BENCHSUITE_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

Float results depend on the torch build, the CPU's vector instructions and the thread count, so the
file names the platform it was made on; elsewhere the test skips and says how to pin that platform.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from benchsuite.api import SyntheticSet
from benchsuite.records import read_records

GOLDEN = Path(__file__).resolve().parent / "golden" / "smoke_sweep.json"
UPDATE = os.environ.get("BENCHSUITE_UPDATE_GOLDEN") == "1"


def platform() -> dict[str, object]:
    return {"torch": torch.__version__.split("+")[0], "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def set_digest(path: Path) -> str:
    """SHA-256 of what a saved set is: images, labels and learned lr (not its timing metadata)."""
    syn, _ = SyntheticSet.load(path)
    h = hashlib.sha256()
    for t in (syn.images, syn.labels):
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode() + t.contiguous().numpy().tobytes())
    h.update(repr(syn.learned_lr).encode())
    return h.hexdigest()[:20]


def sweep_cells(results: Path) -> dict[str, dict[str, object]]:
    """Each record of a sweep as ``method ipcN arch`` -> its accuracies and its set's digest."""
    out = {}
    for r in read_records(results):
        key = f"{r.method} ipc{r.ipc} {r.arch}"
        out[key] = {"accuracy": r.accuracy.values,
                    "set": set_digest(Path(r.artifact)) if r.artifact else None}
    return dict(sorted(out.items()))


@pytest.mark.slow
def test_smoke_sweep_reproduces_the_pinned_numbers(serial_smoke_results):
    pinned = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else None
    if not UPDATE and pinned is not None and pinned["platform"] != platform():
        pytest.skip(f"pinned on {pinned['platform']}, this is {platform()}; pin this platform with "
                    "BENCHSUITE_UPDATE_GOLDEN=1 if its numbers are to be guarded")
    cells = sweep_cells(serial_smoke_results)
    if UPDATE or pinned is None:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"platform": platform(), "cells": cells}, indent=1) + "\n")
        if pinned is None and not UPDATE:
            pytest.fail(f"no pinned numbers yet: wrote {GOLDEN}; commit it")
        return
    changed = {k: (pinned["cells"].get(k), v) for k, v in cells.items() if pinned["cells"].get(k) != v}
    missing = sorted(set(pinned["cells"]) - set(cells))
    assert not changed and not missing, (
        "the smoke sweep no longer reproduces tests/golden/smoke_sweep.json; if the change is meant to move "
        f"numbers, regenerate it (see this module's docstring). changed (pinned, now): {changed}; missing: {missing}")
