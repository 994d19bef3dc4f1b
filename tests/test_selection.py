import torch

from benchsuite.ops.selection import herding, kcenter


def test_herding_first_pick_is_closest_to_the_mean_then_corrects_the_running_mean():
    feats = torch.tensor([[0.0], [1.0], [10.0], [3.0], [5.0]])  # mean 3.8
    picks = herding(feats, 3).tolist()
    assert picks[0] == 3  # 3.0 is closest to 3.8 (argmin; DeepCore's argmax would pick 10.0)
    # step 2 target: 2*3.8 - 3 = 4.6 -> 5.0 ; step 3 target: 3*3.8 - 8 = 3.4 -> 1.0 (|2.4|) vs 0.0 (|3.4|) vs 10
    assert picks[1:] == [4, 1]


def test_kcenter_covers_far_clusters():
    feats = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [10.0, 10.0], [10.1, 10.0], [-10.0, 5.0]])
    for seed in range(5):
        picks = set(kcenter(feats, 3, torch.Generator().manual_seed(seed)).tolist())
        clusters = {0 if i < 3 else 1 if i < 5 else 2 for i in picks}
        assert clusters == {0, 1, 2}


def test_selection_is_deterministic_for_a_seed():
    feats = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    a = kcenter(feats, 7, torch.Generator().manual_seed(3))
    b = kcenter(feats, 7, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and len(set(a.tolist())) == 7


# ---------------------------------------------------------------- the trained feature extractor


def _extractor(make_ctx, synthetic, tmp_path, epochs=1):
    import dataclasses

    from benchsuite.ops.feature_extractor import extractor_store

    ctx = dataclasses.replace(make_ctx(0), cache_dir=tmp_path)
    return ctx, extractor_store(ctx, synthetic.train, ctx.default_arch, epochs, "none")


def test_the_trained_extractor_is_built_once_then_loaded_and_learns(make_ctx, synthetic, tmp_path):
    from benchsuite.ops.feature_extractor import train_accuracy

    ctx, (store, make) = _extractor(make_ctx, synthetic, tmp_path, epochs=3)
    untrained = train_accuracy(make(torch.Generator().manual_seed(0)), synthetic.train)
    model = store.ensure(make, synthetic.train)
    assert store.trained_now and store.path.exists()
    assert store.train_accuracy > untrained + 5  # it trained
    _, (again, make_again) = _extractor(make_ctx, synthetic, tmp_path, epochs=3)
    loaded = again.ensure(make_again, synthetic.train)
    assert not again.trained_now and again.train_accuracy == store.train_accuracy
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    # a different recipe is a different entry
    _, (other, _) = _extractor(make_ctx, synthetic, tmp_path, epochs=2)
    assert other.spec.key != store.spec.key and not other.path.exists()


def test_a_foreign_or_torn_extractor_file_is_trained_again(make_ctx, synthetic, tmp_path):
    ctx, (store, make) = _extractor(make_ctx, synthetic, tmp_path)
    store.ensure(make, synthetic.train)
    blob = store.path.read_bytes()
    store.path.write_bytes(blob[: len(blob) // 2])
    _, (again, make_again) = _extractor(make_ctx, synthetic, tmp_path)
    again.ensure(make_again, synthetic.train)
    assert again.trained_now


def test_herding_selects_in_trained_features_by_default_and_random_on_request(plugins, make_ctx, synthetic, smoke):
    herding_cls = plugins.methods.get("herding")
    trained_cfg = herding_cls.resolve_config("synthetic", 2, smoke)
    assert trained_cfg.embedding == "trained" and trained_cfg.extractor_epochs == 1
    trained = herding_cls(trained_cfg).distill(synthetic.train, 2, make_ctx(0))
    assert trained.extra["embedding"] == "trained" and trained.extra["extractor"]["epochs"] == 1
    random_cfg = herding_cls.resolve_config("synthetic", 2, smoke, {"embedding": "random"})
    chosen = herding_cls(random_cfg).distill(synthetic.train, 2, make_ctx(0))
    assert chosen.extra["embedding"] == "random"
    assert not torch.equal(trained.images, chosen.images)  # another feature space, other picks
    import pytest

    from benchsuite.errors import ConfigError

    with pytest.raises(ConfigError, match="embedding must be 'trained' or 'random'"):
        herding_cls.resolve_config("synthetic", 2, smoke, {"embedding": "pretrained"})
