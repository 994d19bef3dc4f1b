"""Time one IPC-1 model evaluation in this process: ``python one_model.py suite|official_style CACHE``.

The per-model benchmark runs each side in a process of its own, as a real run would. Both first
warm their process the way a run's evaluation finds it, after loading data and distilling: 30
epochs of training and one test pass, untimed (in a cold process the official-style model takes
about 27 s instead of the official code's measured 19.5 s, docs/performance.md). Prints one JSON
line with the seconds of one model (300 epochs with DSA, then the test pass) and its accuracy.

``network``, ``first_per_class`` and ``warm_suite_process`` are shared with the in-process
benchmarks.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # perf helpers, and conftest for the data folder

import torch  # noqa: E402

from benchsuite.api import SyntheticSet  # noqa: E402
from benchsuite.archs.convnet import ConvNet  # noqa: E402
from benchsuite.evaluate import evaluate_synset, test_accuracy, train_model  # noqa: E402
from benchsuite.ops.dsa import DSA  # noqa: E402
from benchsuite.protocol import EvalRecipe  # noqa: E402
from official_style_loop import official_style_test, official_style_train, official_style_twin  # noqa: E402
from perf_data import fashionmnist  # noqa: E402

STRATEGY = "color_crop_cutout_flip_scale_rotate"
# The official evaluate_synset per IPC-1 model, 300 epochs with DSA (7.5 s) + test (12.0 s), measured on the
# project's machine: docs/performance.md ("The official code's cost on the project's machine")
ANCHORS_IPC1_MODEL_S = 7.5 + 12.0


def network(impl: str) -> torch.nn.Module:
    """A fresh ConvNet-3 for 28x28 inputs: the suite's, or the official code's stock modules
    holding the same initial weights."""
    torch.manual_seed(0)
    model = ConvNet(1, 10, 28)
    return model if impl == "suite" else official_style_twin(model)


def first_per_class(train, ipc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``ipc`` training images of each class and their labels: a real-image set."""
    idx = torch.cat([ix[:ipc] for ix in train.class_indices()])
    return train.images[idx].clone(), train.labels[idx].clone()


def warm_suite_process(train, test) -> None:
    """Bring this process to the state a run's evaluation finds it in: 30 epochs of IPC-1 training
    and one test pass, untimed. Besides the one-off compile of the test pass, this matters for
    the allocator: until large buffers have been freed once, glibc returns freed memory to the
    system and every step faults its activations in again (the first conv of a 10-image step,
    which writes a large map from one input channel, is then several times slower)."""
    x, y = first_per_class(train, 1)
    warm = network("suite")
    train_model(warm, x, y, epochs=30, lr=0.01, generator=torch.Generator().manual_seed(1), augment=DSA(STRATEGY))
    test_accuracy(warm, test)


def main(impl: str, cache: Path) -> dict:
    torch.set_num_threads(2)
    train, test = fashionmnist(cache, fallback_train=1000, fallback_test=10000)
    x, y = first_per_class(train, 1)
    dsa = DSA(STRATEGY)
    if impl == "suite":
        warm_suite_process(train, test)
        t0 = time.perf_counter()
        result = evaluate_synset(SyntheticSet(x, y), test, arch="convnet",
                                 make_model=lambda _a, _g: network("suite"), recipe=EvalRecipe(epochs=300, models=1),
                                 device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                                 dsa_strategy=STRATEGY)
        accuracy = result.accuracies[0]
    else:
        warm = official_style_train(network(impl), x, y, 30, augment=dsa, generator=torch.Generator().manual_seed(1))
        official_style_test(warm, test.images, test.labels)
        t0 = time.perf_counter()
        model = official_style_train(network(impl), x, y, 300, augment=dsa,
                                     generator=torch.Generator().manual_seed(0))
        accuracy = official_style_test(model, test.images, test.labels)
    return {"impl": impl, "seconds": time.perf_counter() - t0, "accuracy": accuracy}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
