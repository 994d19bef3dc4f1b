"""Published accuracies of the methods the suite carries, as data (``accuracies.csv``).

One row per (method, dataset, IPC, architecture, source): the accuracy, its ± and n where given,
where it comes from and how reliable that reading is, and the protocol facts that decide whether
a suite figure can be compared with it (best checkpoint or final epoch, evaluation epochs and
augmentation, soft or hard labels, ZCA, images decoded per stored image). Where sources disagree
(k-center in the DC and DM papers; random in the DC paper and DATM's re-run) every source has its
own row. Columns are documented in docs/results.md ("Published numbers").
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PUBLISHED_CSV = Path(__file__).resolve().parent / "accuracies.csv"
COLUMNS = ("method", "dataset", "ipc", "arch", "accuracy", "std", "n", "source", "reliability", "reported_value",
           "eval_epochs", "eval_augment", "labels", "zca", "images_per_stored", "notes")


def load_published(path: Path = PUBLISHED_CSV) -> pd.DataFrame:
    """The table, with numeric columns as numbers (blank: not given)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}")
    for column in ("ipc", "accuracy", "std", "n", "eval_epochs"):
        table[column] = pd.to_numeric(table[column].replace("", None))
    table["ipc"] = table["ipc"].astype(int)
    return table
