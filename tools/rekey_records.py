"""Re-key records and saved sets made before the protocol hash left out the grid axes.

Until then ``Protocol.hash`` also covered the datasets, IPCs, seeds and evaluation architectures,
so adding ``--archs convnet,resnet18`` to a finished run started a new protocol and distilled
everything again. No result changes with the new hash; only the key does. For each built-in
protocol this recomputes the old hash, and every record or artifact folder that carries it gets
the new one. Records of any other hash are left alone. Run it once per results folder:

    python tools/rekey_records.py results
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from benchsuite.api import SyntheticSet
from benchsuite.protocol import available_protocols, digest, load_protocol


def old_hash(protocol) -> str:
    fields = protocol.as_dict()
    fields.pop("description")
    return digest(fields)


def rekey(results: Path) -> None:
    renames = {}
    for name in available_protocols():
        p = load_protocol(name)
        renames[old_hash(p)] = (p.name, p.hash)
    path = results / "records.jsonl"
    if not path.exists():
        raise SystemExit(f"no {path}; pass the results folder that holds records.jsonl (default: results)")
    lines = path.read_text(encoding="utf-8").splitlines()
    changed = 0
    out = []
    for line in lines:
        record = json.loads(line)
        hit = renames.get(record.get("protocol_hash"))
        if hit and record.get("protocol") == hit[0]:
            old = record["protocol_hash"]
            record["protocol_hash"] = hit[1]
            if record.get("artifact"):
                record["artifact"] = record["artifact"].replace(f"{hit[0]}-{old}", f"{hit[0]}-{hit[1]}")
            changed += 1
        out.append(json.dumps(record, sort_keys=True, allow_nan=False, default=str))
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    print(f"{path}: {changed} of {len(lines)} record(s) re-keyed")

    for old, (name, new) in renames.items():
        folder = results / "artifacts" / f"{name}-{old}"
        if not folder.exists():
            continue
        target = folder.with_name(f"{name}-{new}")
        if target.exists():
            raise SystemExit(f"{target} exists already; merge it by hand")
        for pt in folder.rglob("*.pt"):
            syn, meta = SyntheticSet.load(pt)
            syn.save(pt, metadata=meta | {"protocol_hash": new})
        folder.rename(target)
        print(f"{folder} -> {target}")


if __name__ == "__main__":
    rekey(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
