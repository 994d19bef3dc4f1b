"""Statistics of a leaderboard cell: confidence intervals, variance components, tests between
methods, rank groups and the smallest difference a column can detect.

A cell (method, dataset, IPC, architecture) holds accuracies of evaluation models nested in
distilled sets (one set per distillation seed). Two sources of noise: which set the seed produced,
and which evaluation model was drawn for it. The **distilled set is the unit of replication**: a
method is compared with another through the sets it makes, so every interval and test uses the
per-set mean accuracies (the evaluation models average within their set).

- **One set**: nothing is known about how another set of the same method would do. The cell shows
  the spread of its evaluation models (a t-interval over them, labelled so) and is *not tested*:
  no p-value, no rank separation.
- **Confidence interval** (95%, Student's t) of the mean of the per-set means, with two or more sets.
- **Variance components**, with two or more sets: a one-way random-effects analysis of variance
  (sets as groups): ``σ²_model`` is the mean within-set variance, ``σ²_set`` the between-set
  variance of the means less the share the models explain (floored at 0).
- **Tests between two methods**, one-sided (is A above B?), on per-set means. When both cells have
  the same distillation seeds, their sets pair: set *s* of either method was evaluated with the
  same evaluation-model initialisations (they are seeded by the cell, not the method), so the
  paired t-test on the per-seed differences removes that shared part of the noise. Otherwise
  Welch's t-test (unequal variances). Samples without any spread cannot be tested (the p-value
  would claim a certainty the data do not have): the result is *not tested*.
- **Rank groups**, monotone: rows in the order of their means; the best and every method after it
  down to the first one significantly below it (Holm's correction over the column's comparisons
  with the best, family-wise error 5%) share rank 1; the next group starts at that first method,
  and so on. A group never places a method below one with a lower mean. Cells of one set are not
  ranked.
- **Detectable difference** of a column: the smallest true difference between two methods that a
  one-sided test at α = 0.05 finds with 80% power, for the column's own design (its number of sets
  and models per set) and its own variance components pooled over its cells: with
  ``v = σ²_set + σ²_model / m`` the variance of one set's mean, ``k`` sets per method,
  ``(t(1-α, 2k-2) + t(power, 2k-2)) · sqrt(2v / k)``. It needs cells of two or more sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from scipy import stats as _scipy

ALPHA = 0.05
POWER = 0.8
ONE_SET = "one set: not tested"
NO_SPREAD = "no spread: not tested"
RANK_TEST = ("on per-set mean accuracies (the distilled set is the unit): a paired t-test on the per-seed "
             "differences when both methods have the same distillation seeds (their sets share the evaluation "
             "models' initialisations), else Welch's t-test; one-sided, each method against the best of the rest, "
             "Holm-corrected at α = 0.05; rows in the order of their means, and a group ends at the first method "
             "significantly below its best; cells of one set are not tested")


@dataclass(frozen=True)
class CellStats:
    mean: float                      # mean of the per-set means (one set: of its models)
    ci_low: float
    ci_high: float
    n: int                           # evaluation models, all sets together
    seeds: int                       # distilled sets
    unit: str                        # "set means", or "models of one set"
    observations: tuple[float, ...]  # per-set means, or the one set's model accuracies
    var_seed: float | None = None    # between-set variance component (>= 2 sets)
    var_model: float | None = None   # within-set (evaluation model) variance component
    set_means: tuple[tuple[int, float], ...] = field(default=())  # (seed, mean) of each set

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    @property
    def testable(self) -> bool:
        """Whether the cell can be compared with another: two or more distilled sets."""
        return self.seeds >= 2

    @property
    def models_per_set(self) -> float:
        return self.n / self.seeds if self.seeds else 0.0

    @property
    def set_sd(self) -> float | None:
        """Standard deviation of the per-set means (``None`` with one set)."""
        return math.sqrt(sample_variance(self.observations)) if self.testable else None


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
    """(σ²_set, σ²_model) of a one-way random-effects model; unequal group sizes use their mean."""
    groups = [list(g) for g in by_seed if g]
    if len(groups) < 2:
        raise ValueError("variance components need at least two distilled sets")
    within = mean([sample_variance(g) for g in groups])
    size = mean([len(g) for g in groups])
    between_means = sample_variance([mean(g) for g in groups])
    return max(0.0, between_means - within / size), within


def cell_stats(by_seed: Sequence[Sequence[float]] | Mapping[int, Sequence[float]], level: float = 0.95) -> CellStats:
    """Statistics of one cell from its accuracies grouped by distilled set (a mapping seed ->
    accuracies, or a list, whose positions then stand for the seeds)."""
    items = by_seed.items() if isinstance(by_seed, Mapping) else enumerate(by_seed)
    groups = {int(s): [float(v) for v in g] for s, g in items if len(g)}
    if not groups:
        raise ValueError("a cell needs at least one accuracy")
    n = sum(len(g) for g in groups.values())
    means = tuple((s, mean(g)) for s, g in sorted(groups.items()))
    if len(groups) >= 2:
        observations = tuple(m for _, m in means)
        var_seed, var_model = variance_components(list(groups.values()))
        low, high = t_interval(observations, level)
        return CellStats(mean(observations), low, high, n, len(groups), "set means", observations, var_seed,
                         var_model, means)
    (only,) = groups.values()
    low, high = t_interval(only, level)
    return CellStats(mean(only), low, high, n, 1, "models of one set", tuple(only), None, sample_variance(only), means)


def welch_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value of Welch's t-test that mean(a) > mean(b); NaN when either sample has
    fewer than two values or neither has any spread (no test can be made)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    va, vb = sample_variance(a), sample_variance(b)
    if va == 0 and vb == 0:
        return math.nan
    diff = mean(a) - mean(b)
    se = math.sqrt(va / len(a) + vb / len(b))
    dof = (va / len(a) + vb / len(b)) ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    return float(_scipy.t.sf(diff / se, dof))


def paired_greater(differences: Sequence[float]) -> float:
    """One-sided p-value of the paired t-test that the mean difference is above 0; NaN with
    fewer than two pairs or no spread in the differences."""
    if len(differences) < 2:
        return math.nan
    var = sample_variance(differences)
    if var == 0:
        return math.nan
    t = mean(differences) / math.sqrt(var / len(differences))
    return float(_scipy.t.sf(t, len(differences) - 1))


@dataclass(frozen=True)
class Comparison:
    p: float     # one-sided p-value that a is above b (NaN: not tested)
    test: str    # "paired t", "Welch t", or why there was no test


def compare_greater(a: CellStats, b: CellStats) -> Comparison:
    """Is cell ``a`` above cell ``b``? The test that fits their sets (see the module docstring)."""
    if not (a.testable and b.testable):
        return Comparison(math.nan, ONE_SET)
    sa, sb = dict(a.set_means), dict(b.set_means)
    if sa and set(sa) == set(sb):
        p = paired_greater([sa[s] - sb[s] for s in sorted(sa)])
        return Comparison(p, "paired t" if not math.isnan(p) else NO_SPREAD)
    p = welch_greater(a.observations, b.observations)
    return Comparison(p, "Welch t" if not math.isnan(p) else NO_SPREAD)


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


def rank_groups(cells: Mapping[str, CellStats], alpha: float = ALPHA) -> dict[str, int | None]:
    """Rank of each method in a column, monotone in the means: ``None`` for a cell of one set (not
    tested); among the others, in the order of their means, the best and every method down to the
    first one significantly below it (Holm-corrected) share a rank, the next group starts at that
    method with the number of methods above it plus one, and so on. A comparison that cannot be
    made (no spread) separates nothing."""
    ranks: dict[str, int | None] = {m: None for m, c in cells.items() if not c.testable}
    remaining = sorted((m for m, c in cells.items() if c.testable), key=lambda m: (-cells[m].mean, m))
    placed = 0
    while remaining:
        best, others = remaining[0], remaining[1:]
        adjusted = holm([compare_greater(cells[best], cells[m]).p for m in others])
        group = [best]
        for m, q in zip(others, adjusted):
            if q <= alpha:  # NaN compares False: an untestable pair stays in the group
                break
            group.append(m)
        for m in group:
            ranks[m] = placed + 1
        placed += len(group)
        remaining = remaining[len(group):]
    return ranks


def detectable_difference(cells: Sequence[CellStats], alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest difference in points a one-sided test at ``alpha`` detects with ``power``
    between two methods of a column, from the column's pooled variance components and its design
    (the median number of sets and models per set); ``None`` without a cell of two or more sets."""
    testable = [c for c in cells if c.testable]
    if not testable:
        return None
    var_set = mean([c.var_seed or 0.0 for c in testable])
    var_model = mean([c.var_model or 0.0 for c in testable])
    sets = sorted(c.seeds for c in testable)[len(testable) // 2]
    models = sorted(c.models_per_set for c in testable)[len(testable) // 2]
    v = var_set + var_model / models
    dof = 2 * sets - 2
    return float((_scipy.t.ppf(1 - alpha, dof) + _scipy.t.ppf(power, dof)) * math.sqrt(2 * v / sets))


def sets_to_settle(set_sd: float, half_width: float, level: float = 0.95, most: int = 1000) -> int | None:
    """The fewest sets whose t-interval of the mean has a half-width of at most ``half_width``,
    for per-set means of standard deviation ``set_sd`` (``None`` past ``most``)."""
    if set_sd <= 0:
        return 2
    for n in range(2, most + 1):
        if _scipy.t.ppf((1 + level) / 2, n - 1) * set_sd / math.sqrt(n) <= half_width:
            return n
    return None
