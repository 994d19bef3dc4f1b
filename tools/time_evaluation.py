"""Evaluator cost per model as a run pays it: load Fashion-MNIST, take the first image of each
class (an IPC-1 set), evaluate it with the suite's evaluator (3 ConvNet-3 models, 300 epochs,
DSA; the first model's test pass includes the one-off compile), print the seconds.

    BENCHSUITE_DATA=../shared/data python tools/time_evaluation.py
    BENCHSUITE_DATA=../shared/data BENCHSUITE_MALLOC_TUNING=0 python tools/time_evaluation.py

The allocator is tuned as `benchsuite run` tunes it (``benchsuite/allocator.py``) unless
BENCHSUITE_MALLOC_TUNING=0, so alternating the two commands measures what the tuning buys.
"""
import json
import os
from pathlib import Path

import torch

from benchsuite import allocator
from benchsuite.api import SyntheticSet
from benchsuite.archs.convnet import ConvNet
from benchsuite.data import DataSources, builtin_entry, load_dataset
from benchsuite.evaluate import evaluate_synset
from benchsuite.protocol import EvalRecipe

tuned = allocator.tune()
torch.manual_seed(0)  # the three models start from the same weights in every process
torch.set_num_threads(2)
data = load_dataset(builtin_entry("fashionmnist"),
                    DataSources(root=Path(os.environ.get("BENCHSUITE_DATA", "../shared/data")), allow_download=False),
                    Path(os.environ.get("BENCHSUITE_CACHE", ".cache/benchsuite")), torch.device("cpu"))
idx = torch.cat([ix[:1] for ix in data.train.class_indices()])
syn = SyntheticSet(data.train.images[idx].clone(), data.train.labels[idx].clone())


def make(_arch, generator):
    return ConvNet(1, 10, 28)


result = evaluate_synset(syn, data.test, arch="convnet", make_model=make, recipe=EvalRecipe(epochs=300, models=3),
                         device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                         dsa_strategy="color_crop_cutout_flip_scale_rotate")
print(json.dumps({"allocator_tuned": tuned, "train_s_per_model": round(result.train_seconds / 3, 2),
                  "test_s_3_models_with_compile": round(result.test_seconds, 2), "accuracies": result.accuracies}))
