"""Calibration probe for a method's quick settings on real Fashion-MNIST: distill one cell with
the quick config plus JSON overrides, then train and test ONE model (a cheap signal, not a result).

    python tools/probe_method.py METHOD IPC '{"key": value}' EVAL_EPOCHS

The MTT quick lrs were checked with (README "Methods: MTT, PAD"):
    BENCHSUITE_DATA=../shared/data python tools/probe_method.py mtt 1 '{"lr_img": 100.0, "iterations": 60}' 300
    BENCHSUITE_DATA=../shared/data python tools/probe_method.py mtt 10 '{"lr_img": 100.0, "iterations": 60}' 300
"""
import os
import sys, time, json, dataclasses
import torch
from benchsuite.plugins import get_plugin_manager
from benchsuite.data import DataSources, builtin_entry, load_dataset
from benchsuite.api import RunContext
from benchsuite.modeling import model_factory
from benchsuite.protocol import load_protocol
from benchsuite.evaluate import evaluate_synset, eval_space_testset
from benchsuite.progress import Progress
from pathlib import Path

method, ipc = sys.argv[1], int(sys.argv[2])
overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
eval_epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 100
pm = get_plugin_manager(entry_points=False)
entry = builtin_entry("fashionmnist")
data = load_dataset(entry, DataSources(root=Path(os.environ.get("BENCHSUITE_DATA", "../shared/data")), allow_download=False), Path(os.environ.get("BENCHSUITE_CACHE", ".cache/benchsuite")), torch.device("cpu"))
proto = load_protocol("quick")
cls = pm.methods.get(method)
cfg = cls.resolve_config("fashionmnist", ipc, proto, overrides)
print(cfg)
ctx = RunContext(device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), cache_dir=Path(os.environ.get("BENCHSUITE_CACHE", ".cache/benchsuite")),
                 make_model=model_factory(pm.archs, entry.spec), protocol=proto, dataset=entry.spec,
                 progress=Progress("probe"), default_arch="convnet")
t0 = time.perf_counter()
syn = cls(cfg).distill(data.train, ipc, ctx)
print("distill s", time.perf_counter() - t0, {k: v for k, v in syn.extra.items()})
recipe = dataclasses.replace(proto.eval, models=1)
test = eval_space_testset(syn, data.test, data.train)
r = evaluate_synset(syn, test, arch="convnet", make_model=model_factory(pm.archs, entry.spec), recipe=recipe,
                    device=torch.device("cpu"), generator=torch.Generator().manual_seed(1), dsa_strategy=entry.spec.dsa_strategy,
                    epochs=eval_epochs)
print("ACC", r.accuracies, "train s", r.train_seconds, "test s", r.test_seconds)
