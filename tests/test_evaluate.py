import dataclasses

import pytest
import torch
from torch import nn

from benchsuite.api import LabeledData, SyntheticSet
from benchsuite.evaluate import evaluate_synset, test_accuracy as accuracy_of, train_model
from benchsuite.modeling import model_factory


def _eval(plugins, synthetic, smoke, syn, **recipe_changes):
    recipe = dataclasses.replace(smoke.eval, **recipe_changes)
    return evaluate_synset(
        syn, synthetic.test, arch="convnet-w32", make_model=model_factory(plugins.archs, synthetic.spec),
        recipe=recipe, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
        dsa_strategy=synthetic.spec.dsa_strategy,
    )


def test_training_on_real_data_beats_chance_by_far(plugins, synthetic, smoke):
    train = synthetic.train
    res = _eval(plugins, synthetic, smoke, SyntheticSet(train.images, train.labels), epochs=15, models=2)
    assert len(res.accuracies) == 2
    assert res.mean > 60.0, res.accuracies  # chance is 10%
    assert res.std >= 0


def test_same_generator_same_accuracies(plugins, synthetic, smoke):
    syn = SyntheticSet(synthetic.train.images[:40], synthetic.train.labels[:40])
    a = _eval(plugins, synthetic, smoke, syn, epochs=3)
    b = _eval(plugins, synthetic, smoke, syn, epochs=3)
    assert a.accuracies == b.accuracies


def test_closed_division_ignores_soft_labels_and_learned_lr(plugins, synthetic, smoke):
    x = synthetic.train.images[:20]
    soft = torch.softmax(torch.randn(20, 10, generator=torch.Generator().manual_seed(1)), dim=1)
    syn = SyntheticSet(x, soft, learned_lr=0.123)
    closed = _eval(plugins, synthetic, smoke, syn, epochs=1)
    assert closed.lr == smoke.eval.lr and not closed.soft_labels
    opened = _eval(plugins, synthetic, smoke, syn, epochs=1, division="open")
    assert opened.lr == pytest.approx(0.123) and opened.soft_labels


class _Constant(nn.Module):
    def __init__(self, cls: int, k: int = 10):
        super().__init__()
        self.cls, self.k = cls, k

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.k)
        out[:, self.cls] = 1
        return out


def test_accuracy_counts_every_test_image():
    labels = torch.tensor([0, 1, 1, 1, 2, 3, 3, 1, 0, 1])
    data = LabeledData(torch.zeros(10, 1, 4, 4), labels, 10)
    assert accuracy_of(_Constant(1), data, batch_size=3) == pytest.approx(50.0)


def test_lr_decays_once_at_half():
    model = nn.Linear(4, 2)
    seen = []
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        x = torch.randn(8, 4)
        y = torch.randint(0, 2, (8,))
        train_model(model, x, y, epochs=10, lr=0.5, generator=torch.Generator().manual_seed(0), augment=None)
    finally:
        torch.optim.SGD.step = orig
    assert seen == [0.5] * 5 + [pytest.approx(0.05)] * 5


def test_channels_last_test_pass_equals_plain_forward(plugins, synthetic):
    model = model_factory(plugins.archs, synthetic.spec)("convnet", torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        plain = (model(synthetic.test.images).argmax(1) == synthetic.test.labels).float().mean().item() * 100
    assert accuracy_of(model, synthetic.test, batch_size=37) == pytest.approx(plain)


def test_chunked_gradient_accumulation_trains_the_same_model(plugins, synthetic):
    """The evaluator accumulates each minibatch's gradient over chunks (faster on the CPU); for a
    network with per-sample outputs that is the same SGD trajectory, up to float rounding."""
    make = model_factory(plugins.archs, synthetic.spec)
    x, y = synthetic.train.images[:40], synthetic.train.labels[:40]
    trained = []
    for chunk in (None, 7):
        model = make("convnet-w32", torch.Generator().manual_seed(0))
        loss = train_model(model, x, y, epochs=3, lr=0.01, generator=torch.Generator().manual_seed(1),
                           batch_size=20, chunk=chunk)
        trained.append((torch.cat([p.detach().flatten() for p in model.parameters()]), loss))
    (a, la), (b, lb) = trained
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert la == pytest.approx(lb, rel=1e-4)
    untrained = torch.cat([p.flatten() for p in make("convnet-w32", torch.Generator().manual_seed(0)).parameters()])
    assert not torch.allclose(a, untrained)
