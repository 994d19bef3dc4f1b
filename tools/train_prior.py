"""Train (or load from the cache) the generative prior of GLaD / H-PD on a dataset and report its
cost and a sanity figure: the test accuracy of ConvNet-3 models trained only on generated images
(`per_class` per class, the protocol's evaluation recipe). The figures of docs/methods/glad.md
("The Fashion-MNIST prior") came from

    BENCHSUITE_CACHE=/tmp/bscache BENCHSUITE_DATA=../shared/data python tools/train_prior.py fashionmnist '{}' 100

Arguments: dataset, JSON overrides of PriorConfig, generated images per class for the sanity check.
"""
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from benchsuite.api import SyntheticSet
from benchsuite.evaluate import evaluate_synset
from benchsuite.isolation import method_cache_dir
from benchsuite.modeling import model_factory
from benchsuite.plugins import bundled_module
from benchsuite.probe import load_data
from benchsuite.progress import Progress
from benchsuite.protocol import load_protocol

priors = bundled_module("glad.priors")
PriorConfig, PriorStore = priors.PriorConfig, priors.PriorStore
dataset = sys.argv[1] if len(sys.argv) > 1 else "fashionmnist"
cfg = PriorConfig(**json.loads(sys.argv[2])) if len(sys.argv) > 2 else PriorConfig()
per_class = int(sys.argv[3]) if len(sys.argv) > 3 else 100
cache = Path(os.environ.get("BENCHSUITE_CACHE", ".cache/benchsuite"))
data, pm = load_data(dataset, cache_dir=cache, allow_download=False)
entry = pm.datasets.get(dataset)
store = PriorStore(method_cache_dir(cache), dataset, data.train, cfg, seed=0)  # where cells find it
t0 = time.perf_counter()
prior = store.ensure(Progress("prior"))
print(json.dumps({"prior": prior.describe(), "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)

g = torch.Generator().manual_seed(7)
y = torch.arange(data.train.num_classes).repeat_interleave(per_class)
z = torch.randn((len(y), cfg.z_dim), generator=g)
with torch.no_grad():
    images = torch.cat([prior.generator(zc, yc) for zc, yc in zip(z.split(250), y.split(250))])
proto = load_protocol("quick")
r = evaluate_synset(SyntheticSet(images, y), data.test, arch="convnet", make_model=model_factory(pm.archs, entry.spec),
                    recipe=dataclasses.replace(proto.eval, models=1), device=torch.device("cpu"),
                    generator=torch.Generator().manual_seed(1), dsa_strategy=entry.spec.dsa_strategy)
print(json.dumps({"sanity": {"generated_per_class": per_class, "test_accuracy": r.accuracies,
                             "epochs": r.epochs, "train_s": round(r.train_seconds, 1)}}), flush=True)
