import pytest

from benchsuite.errors import ConfigError, UnknownNameError
from benchsuite.protocol import available_protocols, load_protocol


def test_builtin_protocols_load_and_have_distinct_hashes():
    names = available_protocols()
    assert {"smoke", "quick", "paper"} <= set(names)
    hashes = {load_protocol(n).hash for n in names}
    assert len(hashes) == len(names)


def test_paper_protocol_is_the_published_one():
    p = load_protocol("paper")
    assert p.ipcs == (1, 10, 50)
    assert p.archs[0] == "convnet" and {"resnet18bn", "vgg11", "alexnet"} <= set(p.archs)
    r = p.eval
    assert (r.epochs, r.lr, r.momentum, r.weight_decay, r.batch_size, r.lr_decay_at, r.lr_decay_factor, r.augment) == (
        1000, 0.01, 0.9, 5e-4, 256, 0.5, 0.1, "dsa")
    assert p.budget == "paper"


def test_quick_is_real_fashion_mnist_default():
    p = load_protocol("quick")
    assert p.datasets == ("fashionmnist",) and p.ipcs == (1, 10) and p.archs[0] == "convnet"


def test_hash_changes_with_results_relevant_fields_only():
    p = load_protocol("quick")
    assert p.with_overrides(eval={"epochs": "100"}).hash != p.hash
    assert p.with_overrides(eval={"epochs": "100"}).eval.epochs == 100
    import dataclasses

    assert dataclasses.replace(p, description="other words").hash == p.hash


def test_hash_ignores_the_grid_but_not_the_distillation_arch():
    p = load_protocol("quick")
    # Narrowing or widening the grid selects cells; each record's result is unchanged.
    assert p.with_overrides(ipcs=[1]).hash == p.hash
    assert p.with_overrides(seeds=[0, 1], datasets=["cifar10"]).hash == p.hash
    assert p.with_overrides(archs=["convnet", "resnet18", "vgg11"]).hash == p.hash
    # The first arch distills, so swapping it changes every synthetic set.
    assert p.with_overrides(archs=["resnet18", "convnet"]).hash != p.hash
    assert p.with_overrides(eval={"models": "1"}).hash != p.hash


def test_unknown_protocol_and_bad_keys_are_clear(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'quick'"):
        load_protocol("quik")
    bad = tmp_path / "bad.toml"
    bad.write_text('datasets=["synthetic"]\nipcs=[1]\n[eval]\nepoks=3\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_protocol(bad)
    with pytest.raises(ConfigError, match="expected an integer"):
        load_protocol("quick").with_overrides(eval={"epochs": "many"})
    with pytest.raises(ConfigError, match="augment"):
        load_protocol("quick").with_overrides(eval={"augment": "mixup"})
