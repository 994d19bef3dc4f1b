"""The built-in record store: a plugin on the run hooks, registered like any other.

It appends and fsyncs each record as it arrives (first among the ``record_ready`` observers) and
answers ``pending_archs`` from the file, which is what makes a rerun resume: an architecture of a
cell is done when the file holds an ``ok`` record of the same identity (method version, config,
source and dataset digests), so a change of any of them runs the cell again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from benchsuite.errors import BenchsuiteError
from benchsuite.hookspecs import hookimpl
from benchsuite.records import append_record, latest_records, read_records


class RecordStoreError(BenchsuiteError):
    """The store could not write a record (disk full, permissions): the run stops."""


class RecordStore:
    """Appends records to ``<results>/records.jsonl``; answers which archs a cell still needs."""

    def __init__(self, results_dir: Path, containers: Mapping[str, bool] | None = None) -> None:
        self.results_dir = Path(results_dir)
        # which installed methods are containers: the per-class check of a record depends on it
        self.containers = dict(containers) if containers is not None else None

    @hookimpl(tryfirst=True)
    def record_ready(self, record: dict[str, Any]) -> None:
        try:
            append_record(self.results_dir, record)
        except (OSError, ValueError) as exc:
            raise RecordStoreError(f"could not append a record to {self.results_dir / 'records.jsonl'}: {exc}") from exc

    @hookimpl
    def pending_archs(self, cell: Any, archs: list[str], protocol_hash: str, identity: dict[str, Any]) -> list[str]:
        records = read_records(self.results_dir, warn=False, containers=self.containers)
        done = {r.identity for r in latest_records(records) if r.status == "ok"}
        tail = tuple(identity.get(k) for k in IDENTITY_FIELDS)
        return [a for a in archs
                if (protocol_hash, cell.method, cell.dataset, cell.ipc, a, cell.seed, *tail) not in done]


#: What, besides the cell, identifies a result (the order of :attr:`RunRecord.identity`'s tail).
IDENTITY_FIELDS = ("method_version", "config_digest", "source_digest", "dataset_fingerprint")
