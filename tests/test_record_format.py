"""The typed record: its JSON Schema and reference page match the dataclass, committed records load
through the migrations unchanged on disk, and a record survives a round trip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from benchsuite import record_schema
from benchsuite.protocol import digest, load_protocol
from benchsuite.records import (
    SCHEMA_VERSION,
    Accuracy,
    ErrorInfo,
    RecordFormatError,
    RunRecord,
    migrate,
    read_records,
)

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
COMMITTED = sorted(REPO.glob("results/**/records.jsonl"))


def test_the_committed_schema_and_reference_page_are_generated_from_the_dataclass():
    assert json.loads((DOCS / record_schema.SCHEMA_FILE).read_text()) == record_schema.json_schema(), \
        "regenerate with: python -m benchsuite.record_schema docs/"
    assert (DOCS / record_schema.REFERENCE_FILE).read_text() == record_schema.reference_markdown(), \
        "regenerate with: python -m benchsuite.record_schema docs/"


def test_the_schema_names_every_field_of_the_dataclasses_and_nothing_else():
    schema = record_schema.json_schema()
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(RunRecord)}
    for cls in (Accuracy, ErrorInfo):
        assert set(schema["$defs"][cls.__name__]["properties"]) == {f.name for f in dataclasses.fields(cls)}
    page = (DOCS / record_schema.REFERENCE_FILE).read_text()
    for f in dataclasses.fields(RunRecord):
        assert f"`{f.name}`" in page and f.metadata.get("doc"), f.name


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_records_load_and_fit_the_schema(path):
    before = path.read_bytes()
    records = read_records(path.parent)
    assert len(records) == len(before.splitlines())
    validator = jsonschema.Draft202012Validator(record_schema.json_schema())
    for r in records:
        validator.validate(r.to_json())
        assert RunRecord.from_json(r.to_json()) == r
    assert path.read_bytes() == before, "reading never rewrites the file"


def test_migration_rekeys_a_version_1_record_of_an_old_builtin_hash():
    quick = load_protocol("quick")
    fields = quick.as_dict()
    fields.pop("description")
    fields.pop("cell_timeout")  # a later field, never part of any hash
    old = digest(fields)  # the hash before the grid axes left it
    v1 = {"schema_version": 1, "protocol": "quick", "protocol_hash": old, "method": "dm", "dataset": "fashionmnist",
          "ipc": 1, "arch": "convnet", "seed": 0, "status": "ok", "accuracy": {"values": [70.0]},
          "artifact": f"results/artifacts/quick-{old}/fashionmnist/dm/ipc1-seed0.pt"}
    now = migrate(dict(v1))
    assert now["schema_version"] == SCHEMA_VERSION and now["protocol_hash"] == quick.hash
    assert now["artifact"] == f"results/artifacts/quick-{quick.hash}/fashionmnist/dm/ipc1-seed0.pt"
    other = migrate(v1 | {"protocol_hash": "0123456789ab"})
    assert other["protocol_hash"] == "0123456789ab", "a hash of no built-in protocol is left alone"


def test_wrong_types_are_named_field_by_field():
    good = {"schema_version": SCHEMA_VERSION, "protocol_hash": "h", "method": "m", "dataset": "d", "ipc": 1,
            "arch": "a", "seed": 0, "status": "ok", "accuracy": {"values": [1.0]}}
    assert RunRecord.from_json(good).accuracy.values == [1.0]
    for change, words in [({"ipc": True}, "'ipc' is bool"), ({"eval_seconds": "slow"}, "'eval_seconds' is str"),
                          ({"accuracy": {"values": ["x"]}}, "'accuracy'"), ({"machine": [1]}, "'machine' is list"),
                          ({"accuracy": None}, "without accuracy values"), ({"status": "done"}, "'status'")]:
        with pytest.raises(RecordFormatError, match=words):
            RunRecord.from_json(good | change)
    bare = dict(good)
    del bare["seed"]
    with pytest.raises(RecordFormatError, match="'seed' is missing"):
        RunRecord.from_json(bare)
