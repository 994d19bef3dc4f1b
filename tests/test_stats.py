"""The leaderboard's statistics against values worked out by hand (and, where scipy has one, its own
implementation of the same test)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from benchsuite.stats import cell_stats, holm, rank_groups, t_interval, variance_components, welch_greater


def test_t_interval_of_a_known_sample():
    # mean 3, s = sqrt(2.5), se = s / sqrt(5) = 0.70711, t(0.975, 4) = 2.776445
    low, high = t_interval([1, 2, 3, 4, 5])
    assert low == pytest.approx(3 - 2.776445 * 0.7071068, abs=1e-5)
    assert high == pytest.approx(3 + 2.776445 * 0.7071068, abs=1e-5)
    assert t_interval([7.0]) == (7.0, 7.0)  # one value: nothing is known about the spread


def test_variance_components_of_a_known_design():
    # two seeds of three models: within-seed variances 1 and 1; seed means 2 and 5 (variance 4.5)
    seed, model = variance_components([[1, 2, 3], [4, 5, 6]])
    assert model == pytest.approx(1.0)
    assert seed == pytest.approx(4.5 - 1.0 / 3)
    # seeds that differ less than the models explain: floored at zero
    seed, model = variance_components([[1, 5], [2, 4]])
    assert seed == 0.0 and model == pytest.approx((8 + 2) / 2)


def test_cell_stats_use_seed_means_with_several_seeds_and_models_with_one():
    one = cell_stats([[70.0, 71.0, 72.0]])
    assert (one.unit, one.n, one.seeds, one.mean) == ("models", 3, 1, 71.0)
    assert one.var_seed is None and one.var_model == pytest.approx(1.0)
    assert (one.ci_low, one.ci_high) == pytest.approx(t_interval([70, 71, 72]))
    several = cell_stats([[1, 2, 3], [4, 5, 6]])
    assert (several.unit, several.n, several.seeds, several.observations) == ("seed means", 6, 2, (2.0, 5.0))
    assert (several.ci_low, several.ci_high) == pytest.approx(t_interval([2, 5]))


def test_welch_matches_a_hand_computation_and_scipy():
    a, b = [1, 2, 3, 4], [0, 0.5, 1, 1.5]
    # se^2 = 1.6667/4 + 0.41667/4 = 0.52083; t = 1.75 / 0.72169 = 2.4249; dof = 4.4118
    t = 1.75 / math.sqrt(0.5208333)
    dof = 0.5208333 ** 2 / ((1.6666667 / 4) ** 2 / 3 + (0.4166667 / 4) ** 2 / 3)
    assert dof == pytest.approx(4.4118, abs=1e-3)
    assert welch_greater(a, b) == pytest.approx(scipy_stats.t.sf(t, dof), rel=1e-6)
    assert welch_greater(a, b) == pytest.approx(
        scipy_stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue, rel=1e-9)
    assert welch_greater(b, a) == pytest.approx(1 - welch_greater(a, b), rel=1e-9)
    assert welch_greater([5, 5], [4, 4]) == 0.0 and welch_greater([4, 4], [4, 4]) == 1.0
    assert math.isnan(welch_greater([1.0], [0.0, 1.0]))


def test_holm_adjusts_in_order_and_keeps_monotonicity():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.02, math.nan])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def test_rank_groups_tie_what_the_test_cannot_separate():
    cells = {
        "a": cell_stats([[80.0, 80.2, 79.8]]),
        "b": cell_stats([[79.9, 80.5, 79.2]]),   # within a's noise: shares rank 1
        "c": cell_stats([[70.0, 70.1, 69.9]]),   # far below: rank 3 (two methods above it)
        "d": cell_stats([[69.8, 70.3, 69.6]]),   # tied with c
        "e": cell_stats([[50.0, 50.1, 49.9]]),
    }
    assert rank_groups(cells) == {"a": 1, "b": 1, "c": 3, "d": 3, "e": 5}
    # one model per cell: nothing to test, so ranks follow the means
    single = {"x": cell_stats([[60.0]]), "y": cell_stats([[61.0]])}
    assert rank_groups(single) == {"y": 1, "x": 2}
