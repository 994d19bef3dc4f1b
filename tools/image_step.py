"""How far a method moves the synthetic images in its first K iterations, on real Fashion-MNIST
with the quick config: RMS(images after K − images at the start) / RMS(images at the start).

Used to put the latent methods' learning rates on the scale of their pixel counterparts
(README "Methods: GLaD, H-PD", calibration): the published GLaD lrs were tuned for StyleGAN-XL's
feature maps, whose scale the suite's small prior does not share, so lr_f and lr_w are scaled
together (keeping their published ratio) until the image moves about as far as the pixel
method's does in the same number of iterations.

    python tools/image_step.py METHOD IPC K '{"key": value}'
"""
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from benchsuite.api import RunContext
from benchsuite.data import DataSources, builtin_entry, load_dataset
from benchsuite.modeling import model_factory
from benchsuite.plugins import get_plugin_manager
from benchsuite.protocol import load_protocol

method, ipc, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
overrides = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
cache = Path(os.environ.get("BENCHSUITE_CACHE", ".cache/benchsuite"))
pm = get_plugin_manager(entry_points=False)
entry = builtin_entry("fashionmnist")
data = load_dataset(entry, DataSources(root=Path(os.environ.get("BENCHSUITE_DATA", "../shared/data")),
                                       allow_download=False), cache, torch.device("cpu"))
proto = load_protocol("quick")
cls = pm.methods.get(method)
cfg = cls.resolve_config("fashionmnist", ipc, proto, overrides)


def distill(iterations: int):
    ctx = RunContext(device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), cache_dir=cache,
                     make_model=model_factory(pm.archs, entry.spec), protocol=proto, dataset=entry.spec,
                     default_arch="convnet")
    return cls(dataclasses.replace(cfg, iterations=iterations)).distill(data.train, ipc, ctx).images


start = distill(0)
t0 = time.perf_counter()
end = distill(k)
seconds = time.perf_counter() - t0
rel = float((end - start).square().mean().sqrt() / start.square().mean().sqrt())
print(json.dumps({"method": method, "ipc": ipc, "iterations": k, "overrides": overrides,
                  "relative_image_change": round(rel, 4), "seconds": round(seconds, 1)}), flush=True)
