"""Statistics of a leaderboard cell: confidence intervals, variance components, rank groups, and
the test against `random`.

A cell (method, dataset, IPC, architecture) holds accuracies of evaluation models nested in
distilled sets (one per distillation seed). Two sources of noise: which set the seed produced, and
which evaluation model was drawn for it.

- **Confidence interval** (95%, Student's t). With two or more seeds the interval is built from
  the per-seed mean accuracies (n = seeds), so it covers both sources of noise. With one seed it
  can only use the models (n = models) and covers the evaluation noise alone; the report says
  which.
- **Variance components**, with two or more seeds: a one-way random-effects analysis of variance
  (seeds as groups): ``σ²_model`` is the mean within-seed variance, ``σ²_seed`` the between-seed
  variance of the means less the share the models explain (floored at 0).
- **Rank groups**: Welch's t-test (unequal variances, which distilled sets of different methods
  do have) between each method and the best one of the column, on the same observations as the
  interval, one-sided, with Holm's correction over the comparisons of the column (family-wise
  error 5%). Methods not significantly below the best share its rank; the best of the rest
  opens the next group, and so on. Welch on a handful of models is a small-sample test: it
  rarely separates methods less than two standard deviations apart, which is what "tied" means.
- **Beats random**: the same one-sided Welch test, method above `random`, uncorrected p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats as _scipy

ALPHA = 0.05
RANK_TEST = ("Welch's t-test (one-sided, unequal variances) of each method against the best of its column, "
             "Holm-corrected over the column's comparisons at α = 0.05; on per-seed means when every "
             "method has ≥ 2 distillation seeds, else on per-model accuracies")


@dataclass(frozen=True)
class CellStats:
    mean: float
    ci_low: float
    ci_high: float
    n: int                       # accuracies pooled (models x seeds)
    seeds: int
    unit: str                    # "seed means" or "models": what the interval and tests use
    observations: tuple[float, ...]  # the values tests use (seed means, or model accuracies)
    var_seed: float | None = None    # between-seed variance component (>= 2 seeds)
    var_model: float | None = None   # within-seed (evaluation model) variance component

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def sample_variance(values: Sequence[float]) -> float:
    """Unbiased (n - 1) variance; 0 for a single value."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student's t confidence interval of the mean; a single value gives a zero-width interval
    at that value (nothing is known about the spread)."""
    m = mean(values)
    if len(values) < 2:
        return m, m
    half = _scipy.t.ppf((1 + level) / 2, len(values) - 1) * math.sqrt(sample_variance(values) / len(values))
    return m - half, m + half


def variance_components(by_seed: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(σ²_seed, σ²_model) of a one-way random-effects model; unequal group sizes use their mean."""
    groups = [list(g) for g in by_seed if g]
    if len(groups) < 2:
        raise ValueError("variance components need at least two seeds")
    within = mean([sample_variance(g) for g in groups])
    size = mean([len(g) for g in groups])
    between_means = sample_variance([mean(g) for g in groups])
    return max(0.0, between_means - within / size), within


def cell_stats(by_seed: Sequence[Sequence[float]], level: float = 0.95) -> CellStats:
    """Statistics of one cell from its accuracies grouped by distillation seed."""
    groups = [list(map(float, g)) for g in by_seed if g]
    if not groups:
        raise ValueError("a cell needs at least one accuracy")
    flat = [v for g in groups for v in g]
    if len(groups) >= 2:
        observations = [mean(g) for g in groups]
        unit = "seed means"
        var_seed, var_model = variance_components(groups)
    else:
        observations, unit, var_seed, var_model = groups[0], "models", None, sample_variance(groups[0])
    low, high = t_interval(observations, level)
    return CellStats(mean(flat), low, high, len(flat), len(groups), unit, tuple(observations), var_seed, var_model)


def welch_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value of Welch's t-test that mean(a) > mean(b). Two samples without spread
    give 0 or 1 (the difference is certain), equal constant samples 1."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    va, vb = sample_variance(a), sample_variance(b)
    diff = mean(a) - mean(b)
    if va == 0 and vb == 0:
        return 0.0 if diff > 0 else 1.0
    se = math.sqrt(va / len(a) + vb / len(b))
    dof = (va / len(a) + vb / len(b)) ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    return float(_scipy.t.sf(diff / se, dof))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
    return adjusted


def rank_groups(cells: dict[str, CellStats], alpha: float = ALPHA) -> dict[str, int]:
    """Rank of each method in a column: 1 for the best and every method not significantly below
    it, then the best of the rest and its ties get the next rank (the number of methods above
    plus one, as in sports tables), and so on. Without enough observations to test (fewer than
    two), methods are ranked by their means alone."""
    remaining = sorted(cells, key=lambda m: -cells[m].mean)
    ranks: dict[str, int] = {}
    while remaining:
        best = remaining[0]
        others = remaining[1:]
        p = holm([welch_greater(cells[best].observations, cells[m].observations) for m in others])
        tied = [best] + [m for m, q in zip(others, p) if not (q <= alpha) and not math.isnan(q)]
        rank = len(ranks) + 1
        for m in tied:
            ranks[m] = rank
        remaining = [m for m in remaining if m not in tied]
    return ranks
