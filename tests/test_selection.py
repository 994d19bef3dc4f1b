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
