"""The leaderboard's statistics against values worked out by hand (and, where scipy has one, its own
implementation of the same test)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from benchsuite.stats import (ONE_SET, cell_stats, compare_greater, detectable_difference, holm, paired_greater,
                              rank_groups, sets_to_settle, t_interval, variance_components, welch_greater)


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


def test_cell_stats_use_set_means_with_several_sets_and_models_with_one():
    one = cell_stats([[70.0, 71.0, 72.0]])
    assert (one.unit, one.n, one.seeds, one.mean, one.testable) == ("models of one set", 3, 1, 71.0, False)
    assert one.var_seed is None and one.var_model == pytest.approx(1.0) and one.set_sd is None
    assert (one.ci_low, one.ci_high) == pytest.approx(t_interval([70, 71, 72]))
    several = cell_stats({3: [1, 2, 3], 7: [4, 5, 6]})
    assert (several.unit, several.n, several.seeds, several.observations) == ("set means", 6, 2, (2.0, 5.0))
    assert several.set_means == ((3, 2.0), (7, 5.0)) and several.testable
    assert (several.ci_low, several.ci_high) == pytest.approx(t_interval([2, 5]))
    # unequal models per set: each set counts once in the mean
    uneven = cell_stats({0: [10.0], 1: [20.0, 20.0, 20.0]})
    assert uneven.mean == 15.0 and uneven.n == 4


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
    # no spread in either sample: a t-test cannot be made (not p = 0, which would claim certainty)
    assert math.isnan(welch_greater([5, 5], [4, 4])) and math.isnan(welch_greater([4, 4], [4, 4]))
    assert math.isnan(welch_greater([1.0], [0.0, 1.0]))


def test_the_paired_test_matches_a_hand_computation_and_scipy():
    # differences 1, 2, 3: mean 2, s = 1, t = 2 / (1 / sqrt 3) = 3.4641, 2 degrees of freedom
    assert paired_greater([1, 2, 3]) == pytest.approx(scipy_stats.t.sf(3.4641016, 2), rel=1e-6)
    assert paired_greater([1, 2, 3]) == pytest.approx(
        scipy_stats.ttest_rel([11, 12, 13], [10, 10, 10], alternative="greater").pvalue, rel=1e-9)
    assert math.isnan(paired_greater([1, 1, 1])) and math.isnan(paired_greater([2.0]))


def test_compare_pairs_sets_of_the_same_seeds_and_never_tests_one_set():
    a = cell_stats({0: [80.0, 80.4], 1: [81.0, 81.2], 2: [79.0, 79.4]})
    b = cell_stats({0: [79.0, 79.4], 1: [80.0, 80.2], 2: [78.5, 78.5]})
    paired = compare_greater(a, b)
    assert paired.test == "paired t"
    # per-set means 80.2, 81.1, 79.2 against 79.2, 80.1, 78.5: differences 1.0, 1.0, 0.7
    assert paired.p == pytest.approx(paired_greater([1.0, 1.0, 0.7]), rel=1e-9)
    other_seeds = cell_stats({5: [79.0, 79.4], 6: [80.0, 80.2], 7: [78.5, 78.5]})
    welch = compare_greater(a, other_seeds)
    assert welch.test == "Welch t" and welch.p == pytest.approx(welch_greater(a.observations,
                                                                               other_seeds.observations))
    one = compare_greater(a, cell_stats([[70.0, 71.0, 72.0]]))
    assert math.isnan(one.p) and one.test == ONE_SET



def test_holm_adjusts_in_order_and_keeps_monotonicity():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.02, math.nan])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def sets(*means: float, spread: float = 0.2) -> object:
    """A cell of one set per mean (seeds 0, 1, ...), each of two models ``mean ± spread``."""
    return cell_stats({s: [m - spread, m + spread] for s, m in enumerate(means)})


def test_rank_groups_follow_the_means():
    # b is tight and significantly below a; c is noisy, lower, and not significantly below a.
    # The old rule tied a with c and put b (79.0) below c (78.0); groups are now runs of the order.
    cells = {"a": sets(80.0, 80.2, 79.8), "b": sets(79.0, 79.1, 78.9), "c": sets(78.0, 70.0, 86.0)}
    # a - b per seed: 1.0, 1.1, 0.9 -> t = 17.3 (2 dof), p = 0.0017; Holm x2 = 0.0033 < 0.05
    assert compare_greater(cells["a"], cells["b"]).p * 2 < 0.05
    assert compare_greater(cells["a"], cells["c"]).p > 0.05
    assert rank_groups(cells) == {"a": 1, "b": 2, "c": 2}


def test_rank_groups_tie_what_the_test_cannot_separate_and_leave_one_set_cells_unranked():
    cells = {
        "a": sets(80.0, 80.3, 79.7),
        "b": sets(79.9, 80.6, 79.1),   # within a's noise: shares rank 1
        "c": sets(70.0, 70.2, 69.8),   # far below: rank 3 (two methods above it)
        "d": sets(69.9, 70.4, 69.5),   # tied with c
        "e": sets(50.0, 50.1, 49.6),
        "f": cell_stats([[90.0, 90.1, 89.9]]),  # one set: highest mean, but not tested
    }
    assert rank_groups(cells) == {"a": 1, "b": 1, "c": 3, "d": 3, "e": 5, "f": None}
    # every cell of one set: nothing is ranked
    assert rank_groups({"x": cell_stats([[60.0, 61.0]]), "y": cell_stats([[61.0, 62.0]])}) == {"x": None, "y": None}
    # no spread anywhere: no test separates them
    flat = {"p": cell_stats({0: [5.0], 1: [5.0]}), "q": cell_stats({0: [4.0], 1: [4.0]})}
    assert rank_groups(flat) == {"p": 1, "q": 1}


def test_the_detectable_difference_of_a_known_design():
    # sets {1, 3}, {3, 5}, {5, 7}: σ²_model = 2, set means 2, 4, 6 (variance 4), σ²_set = 4 - 2/2 = 3;
    # v = 3 + 2/2 = 4, k = 3 sets, 4 dof: (t(0.95, 4) + t(0.80, 4)) * sqrt(2 * 4 / 3)
    cell = cell_stats({0: [1, 3], 1: [3, 5], 2: [5, 7]})
    assert (cell.var_seed, cell.var_model) == pytest.approx((3.0, 2.0))
    expected = (2.131847 + 0.940965) * math.sqrt(8 / 3)
    assert detectable_difference([cell, cell]) == pytest.approx(expected, rel=1e-5)
    assert detectable_difference([cell_stats([[1.0, 2.0]])]) is None  # one set per cell: not estimable


def test_sets_to_settle_an_interval():
    # t(0.975, 5) * 2 / sqrt 6 = 2.099 > 2, t(0.975, 6) * 2 / sqrt 7 = 1.850 <= 2
    assert sets_to_settle(2.0, 2.0) == 7
    assert sets_to_settle(0.0, 2.0) == 2
