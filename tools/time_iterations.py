"""Per-iteration distillation time on CIFAR-10 IPC 10 with the `paper` configs, 2 threads:
distill with `iterations` overridden and divide. README "Planning CIFAR-10" came from

    BENCHSUITE_DATA=../shared/data python tools/time_iterations.py dm:3 dc:1
"""
import os
import sys, json, torch
from pathlib import Path
from benchsuite.plugins import get_plugin_manager
from benchsuite.data import DataSources, builtin_entry, load_dataset
from benchsuite.api import RunContext
from benchsuite.modeling import model_factory
from benchsuite.protocol import load_protocol
from benchsuite.measure import measure
torch.set_num_threads(2)
pm = get_plugin_manager(entry_points=False)
entry = builtin_entry("cifar10")
data = load_dataset(entry, DataSources(root=Path(os.environ.get("BENCHSUITE_DATA", "../shared/data")), allow_download=False), Path(os.environ.get("BENCHSUITE_CACHE", ".cache/benchsuite")), torch.device("cpu"))
paper = load_protocol("paper")
for method, iters in [(m.split(":")[0], int(m.split(":")[1])) for m in sys.argv[1:]]:
    cls = pm.methods.get(method)
    cfg = cls.resolve_config("cifar10", 10, paper, {"iterations": iters})
    ctx = RunContext(device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), cache_dir=Path(os.environ.get("BENCHSUITE_CACHE", ".cache/benchsuite")),
                     make_model=model_factory(pm.archs, entry.spec), protocol=paper, dataset=entry.spec, default_arch="convnet")
    with measure("cpu") as m:
        cls(cfg).distill(data.train, 10, ctx)
    print(json.dumps({"method": method, "ipc": 10, "iterations": iters, "seconds": round(m.seconds, 1),
                      "per_iteration": round(m.seconds / iters, 2), "peak_gib": round(m.peak_bytes / 2**30, 2),
                      "config": {k: v for k, v in cfg.__dict__.items() if k in ("outer_loop", "inner_loop", "batch_real", "lr_img")}}), flush=True)
