"""Compare two sweeps' records: accuracies and saved-set digests per (method, ipc, arch).

    python tools/compare_sweeps.py RESULTS_A RESULTS_B
"""
import hashlib, json, sys
from pathlib import Path
import torch

def digest(path):
    p = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for t in (p["images"], p["labels"]):
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode() + t.contiguous().numpy().tobytes())
    h.update(repr(p["learned_lr"]).encode())
    return h.hexdigest()[:20]

def cells(folder):
    out = {}
    for line in (Path(folder) / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        key = f"{r['method']} ipc{r['ipc']} {r['arch']}"
        art = r.get("artifact")
        out[key] = (r["status"], r.get("accuracy", {}).get("values"), digest(art) if art else None)
    return out

a, b = cells(sys.argv[1]), cells(sys.argv[2])
same = [k for k in a if a.get(k) == b.get(k)]
diff = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
print(f"{len(same)} cells identical (accuracies and set digests), {len(diff)} differ")
for k in sorted(diff):
    print("  ", k, a.get(k), b.get(k))
