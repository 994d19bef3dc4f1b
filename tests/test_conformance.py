"""Every registered method, on the smoke protocol: the contract a plugin gets tested against for free."""

from __future__ import annotations

import pytest
import torch

from benchsuite.api import SyntheticSet
from benchsuite.contract import check_synthetic_set
from benchsuite.plugins import get_plugin_manager

METHODS = sorted(get_plugin_manager(entry_points=False).methods)


def _distill(plugins, name, synthetic, smoke, make_ctx, ipc, seed):
    cls = plugins.methods.get(name)
    config = cls.resolve_config(synthetic.spec.name, ipc, smoke)
    return cls(config).distill(synthetic.train, ipc, make_ctx(seed))


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("ipc", [1, 2])
def test_method_contract(plugins, name, synthetic, smoke, make_ctx, ipc):
    cls = plugins.methods.get(name)
    syn = _distill(plugins, name, synthetic, smoke, make_ctx, ipc, seed=0)
    spec = synthetic.spec
    assert isinstance(syn, SyntheticSet)
    assert syn.images.shape[1:] == spec.shape
    assert torch.isfinite(syn.images).all()
    assert syn.storage_bytes and syn.storage_bytes > 0
    counts = syn.per_class_counts(spec.num_classes)
    if cls.ipc_independent:
        assert counts == synthetic.train.class_counts()
    elif cls.container:
        assert len(set(counts)) == 1 and counts[0] >= 1, counts
        c, h, w = spec.shape
        assert syn.storage_bytes <= ipc * spec.num_classes * c * h * w * 4
    else:
        assert counts == [ipc] * spec.num_classes
    if syn.soft_labels:
        assert syn.labels.shape == (syn.images.shape[0], spec.num_classes)
    # The exact check the runner applies to every set in a sweep.
    check_synthetic_set(syn, method=name, shape=spec.shape, num_classes=spec.num_classes, ipc=ipc,
                        container=cls.container, ipc_independent=cls.ipc_independent,
                        train_counts=synthetic.train.class_counts())


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_set_and_global_rng_untouched(plugins, name, synthetic, smoke, make_ctx):
    state = torch.get_rng_state()
    a = _distill(plugins, name, synthetic, smoke, make_ctx, 2, seed=7)
    b = _distill(plugins, name, synthetic, smoke, make_ctx, 2, seed=7)
    assert torch.equal(torch.get_rng_state(), state), "methods must not use the global RNG"
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize("name", METHODS)
def test_hyperparameter_tables_are_data_on_the_method_class(plugins, name):
    """Budgets are a table (budget -> config builder), not a config_for written per method."""
    cls = plugins.methods.get(name)
    assert not any("config_for" in vars(k) for k in cls.__mro__ if k.__module__ != "benchsuite.api"), name
    if cls.budgets:
        assert set(cls.budgets) == {"smoke", "quick", "paper"}, name


def test_a_budget_without_a_table_is_a_clear_error(plugins, smoke):
    import dataclasses

    from benchsuite.errors import ConfigError

    weird = dataclasses.replace(smoke, budget="quick")
    object.__setattr__(weird, "budget", "huge")  # a budget no method has a table for
    with pytest.raises(ConfigError, match="dm has no hyperparameters for budget 'huge'; it has paper, quick, smoke"):
        plugins.methods.get("dm").config_for("synthetic", 1, weird)
