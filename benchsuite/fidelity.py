"""The reproduction table: each published number next to the suite's records of the same cell.

For every row of the published table (:mod:`benchsuite.published`) and every protocol that has an
``ok`` record of that (method, dataset, IPC, architecture), one line: the suite's mean and
interval, the published figure, the difference, and a verdict:

- **not comparable** when the suite's cell differs in what the number measures: fewer
  distillation iterations than the published budget, hard labels where the paper learned soft
  ones. The reasons are listed.
- otherwise **within 2 points**, or a **gap** with its sign (suite minus published).

Differences that shift a figure without changing what it measures are listed as caveats beside
the verdict: an offline substitute test set (the CIFAR-10 copy with JPEG-degraded images), another
evaluation recipe (epochs, augmentation), a published best-checkpoint figure against the suite's
final-epoch one. Published cells without a suite record read "not run".

Records are chosen as for the leaderboard (:mod:`benchsuite.staleness`): stale ones and those of
methods that are not installed are left out unless ``include_stale``; a cell run with ``--set``
overrides is paired with its method's published row and named as it ran (``dm [iterations=100]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from tabulate import tabulate

from benchsuite import atomic
from benchsuite.errors import BenchsuiteError
from benchsuite.protocol import Protocol, available_protocols, load_protocol
from benchsuite.published import load_published
from benchsuite.preflight import check_writable_folder
from benchsuite.records import RunRecord, read_record_file
from benchsuite.report import records_frame, summarise
from benchsuite.stats import sets_to_settle
from benchsuite.staleness import STALE_MARK, InstalledMethods, default_plugins, select

WITHIN = 2.0  # points: the margin of "within", and the widest half-interval a verdict is given for
INCONCLUSIVE = "inconclusive (n too small)"
MIN_SETS = 3  # sets to run when a cell has one
FIDELITY_FILE = "fidelity.md"
SELECTION = {"random", "herding", "kcenter", "full"}  # no distillation budget to fall short of


@dataclass
class SuiteCell:
    """What the suite measured for one (protocol, method, dataset, IPC, arch)."""

    protocol: str
    protocol_hash: str
    results: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    iterations: int | None
    division: str | None
    eval_epochs: int | None
    eval_augment: str | None
    test_set: str | None
    name: str | None = None  # as the tables show it: with its `--set` overrides, when it had any
    stale: str | None = None  # why its records do not describe the installed code (kept by include_stale)
    sets: int = 1  # distilled sets behind the figure
    set_sd: float | None = None  # standard deviation of their per-set means (two or more sets)

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


@dataclass
class Line:
    published: dict[str, Any]
    suite: SuiteCell | None
    verdict: str
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    paper_iterations: int | None = None  # the method's published budget for the cell

    @property
    def difference(self) -> float | None:
        if self.suite is None:
            return None
        return self.suite.mean - float(self.published["accuracy"])


def verdict(published: dict[str, Any], suite: SuiteCell | None, paper_iterations: int | None
            ) -> tuple[str, list[str], list[str]]:
    """(verdict, reasons it is not comparable, caveats) for one published row and suite cell."""
    if suite is None:
        return "not run", [], []
    reasons, caveats = [], []
    method = published["method"]
    if method not in SELECTION and paper_iterations and suite.iterations is not None \
            and suite.iterations < paper_iterations:
        reasons.append(f"different budget: {suite.iterations:,} of the published {paper_iterations:,} iterations")
    if published.get("labels") == "soft" and suite.division != "open":
        reasons.append("different labels: the published figure trains on learned soft labels, the suite's closed "
                       "division on hard labels")
    if suite.test_set and suite.test_set != "official":
        caveats.append(f"offline test set ({suite.test_set}): expect a few points below the official one")
    pub_epochs = published.get("eval_epochs")
    if pub_epochs is not None and not (isinstance(pub_epochs, float) and math.isnan(pub_epochs)) \
            and suite.eval_epochs and int(pub_epochs) != suite.eval_epochs:
        caveats.append(f"evaluation epochs {suite.eval_epochs} (published {int(pub_epochs)})")
    pub_aug = published.get("eval_augment") or ""
    if pub_aug and suite.eval_augment and pub_aug != suite.eval_augment:
        caveats.append(f"evaluation augmentation {suite.eval_augment} (published {pub_aug})")
    if published.get("reported_value") == "best":
        caveats.append("the published figure is the best checkpoint, the suite's the final epoch")
    if reasons:
        return "not comparable", reasons, caveats
    # A verdict needs an interval that can hold it: over two or more distilled sets, no wider than
    # the verdict's own margin (WITHIN points each side).
    if suite.sets < 2:
        return INCONCLUSIVE, [f"one distilled set: its interval covers that set's evaluation models only, how "
                              f"another set would do is unknown; run {MIN_SETS} or more sets"], caveats
    if suite.half_width > WITHIN:
        need = sets_to_settle(suite.set_sd or 0.0, WITHIN)
        settle = f"about {need} sets would settle it" if need else "far more sets than are practical would settle it"
        return INCONCLUSIVE, [f"the interval [{suite.ci_low:.2f}, {suite.ci_high:.2f}] of {suite.sets} sets is wider "
                              f"than ±{WITHIN:g} points; {settle}"], caveats
    diff = suite.mean - float(published["accuracy"])
    if abs(diff) <= WITHIN:
        return "within 2 points", reasons, caveats
    return f"gap {diff:+.1f}", reasons, caveats


def suite_cells(results_dirs: Iterable[Path], protocols: dict[str, Protocol] | None = None, plugins: Any = None,
                include_stale: bool = False) -> dict[tuple, list[SuiteCell]]:
    """Summaries of every results folder, keyed by (registered method, dataset, ipc, arch)."""
    results_dirs = list(results_dirs)
    protocols = known_protocols(results_dirs) if protocols is None else protocols
    installed = InstalledMethods(plugins if plugins is not None else default_plugins())
    out: dict[tuple, list[SuiteCell]] = {}
    for folder in results_dirs:
        records, _ = read_record_file(Path(folder), installed.containers())
        selection = select(records, include_stale=include_stale, installed=installed)
        if not selection.shown:
            continue
        extra = _recipe_facts(selection.records, protocols)
        summary = summarise(records_frame(selection))
        for row in summary.itertuples():
            facts = extra.get((row.protocol_hash, row.method, row.dataset, row.ipc, row.arch), {})
            cell = SuiteCell(row.protocol, row.protocol_hash, str(folder), float(row.acc_mean), float(row.ci_low),
                             float(row.ci_high), int(row.n), facts.get("iterations"), row.division,
                             facts.get("eval_epochs"), facts.get("eval_augment"), row.test_set, row.method,
                             getattr(row, "stale", "") or None, int(row.seeds),
                             None if pd.isna(row.set_sd) else float(row.set_sd))
            out.setdefault((row.base_method, row.dataset, int(row.ipc), row.arch), []).append(cell)
    return out


def _recipe_facts(records: list[RunRecord], protocols: dict[str, Protocol]) -> dict[tuple, dict[str, Any]]:
    facts: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.status != "ok":
            continue
        iterations = (r.method_config or {}).get("iterations")
        facts[(r.protocol_hash, r.display_name, r.dataset, r.ipc, r.arch)] = {
            "iterations": iterations if isinstance(iterations, int) else None,
            "eval_epochs": r.eval_epochs,
            "eval_augment": protocols[r.protocol_hash].eval.augment if r.protocol_hash in protocols else None,
        }
    return facts


def known_protocols(roots: Iterable[Path]) -> dict[str, Protocol]:
    """Protocols by hash: the bundled ones and every protocol file under ``roots``. A record does
    not store its evaluation recipe's augmentation; its protocol, found by hash, does."""
    out: dict[str, Protocol] = {}
    paths = [Path(name) for name in available_protocols()]
    for root in roots:
        paths += sorted(Path(root).rglob("*.toml"))
    for path in paths:
        try:
            proto = load_protocol(path if path.suffix else path.name)
        except BenchsuiteError:
            continue  # a .toml that is not a protocol
        out.setdefault(proto.hash, proto)
    return out


def reproduction_lines(results_dirs: Iterable[Path], plugins: Any = None,
                       published: pd.DataFrame | None = None, include_stale: bool = False) -> list[Line]:
    published = load_published() if published is None else published
    plugins = plugins if plugins is not None else default_plugins()
    cells = suite_cells(results_dirs, plugins=plugins, include_stale=include_stale)
    lines = []
    for row in published.to_dict("records"):
        key = (row["method"], row["dataset"], int(row["ipc"]), row["arch"])
        paper_iterations = _paper_iterations(plugins, row["method"], row["dataset"], int(row["ipc"]))
        found = sorted(cells.get(key) or [], key=lambda c: (c.protocol, c.iterations or 0, c.results))
        for cell in found or [None]:
            v, reasons, caveats = verdict(row, cell, paper_iterations)
            lines.append(Line(row, cell, v, reasons, caveats, paper_iterations))
    return lines


def _paper_iterations(plugins: Any, method: str, dataset: str, ipc: int) -> int | None:
    """The iterations of the method's published (``paper``) config for the cell."""
    if plugins is None or method not in plugins.methods or ipc == 0:
        return None
    try:
        config = plugins.methods.get(method).config_for(dataset, ipc, load_protocol("paper"))
    except Exception:  # noqa: BLE001 - a method without a paper table: nothing to compare against
        return None
    value = getattr(config, "iterations", None)
    return value if isinstance(value, int) else None


def fidelity_markdown(lines: list[Line]) -> str:
    rows = []
    for ln in lines:
        p, s = ln.published, ln.suite
        pub = f"{p['accuracy']:.1f}" + (f" ± {p['std']:.1f}" if not pd.isna(p.get("std")) else "")
        rows.append({
            "method": p["method"], "dataset": p["dataset"], "IPC": p["ipc"] or "whole",
            "suite": "not run" if s is None else f"{s.mean:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}] (n={s.n})"
                     + (f" {STALE_MARK}" if s.stale else ""),
            "protocol": "" if s is None else f"{s.protocol} ({s.results})" + (
                f", as {s.name}" if s.name and s.name != p["method"] else ""),
            "iterations": "" if s is None or s.iterations is None else f"{s.iterations:,}",
            "published": pub, "source": f"{p['source']} ({p['reliability']})",
            "difference": "" if ln.difference is None else f"{ln.difference:+.1f}",
            "verdict": ln.verdict + ("" if not ln.reasons else ": " + "; ".join(ln.reasons)),
            "caveats": "; ".join(ln.caveats),
        })
    kinds = ["gap" if ln.verdict.startswith("gap") else ln.verdict for ln in lines]
    counts = pd.Series(kinds).value_counts().to_dict() if lines else {}
    head = ["# Reproduction: the suite next to the published numbers", "",
            "Generated by `benchsuite report --fidelity` from the records of every results folder it was given "
            "and the published table `benchsuite/published/accuracies.csv`. Verdicts: *within 2 points*, a *gap* "
            "(suite minus published), *inconclusive (n too small)* when the suite's 95% interval is over one "
            "distilled set or wider than ±2 points (with the number of sets that would settle it), *not comparable* "
            "(with the reason), or *not run*. Caveats shift a figure "
            "without changing what it measures.", "",
            "Counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), ""]
    stale = sorted({ln.suite.stale for ln in lines if ln.suite is not None and ln.suite.stale})
    if stale:
        head += [f"Suite figures marked {STALE_MARK} are stale (kept by `--include-stale`): their records do not "
                 f"describe the installed code ({'; '.join(stale)}). Rerun their cells to compare the current code.",
                 ""]
    return "\n".join(head) + tabulate(rows, headers="keys", tablefmt="github") + "\n"


@dataclass
class Curve:
    """One protocol's measurements of one published cell at several distillation budgets: does
    the suite approach the published figure as iterations grow?"""

    method: str
    dataset: str
    ipc: int
    arch: str
    protocol: str
    points: list[SuiteCell]            # increasing iterations
    published: list[dict[str, Any]]    # every published row of the cell
    paper_iterations: int | None = None

    @property
    def name(self) -> str:
        return f"{self.method}-{self.dataset}-ipc{self.ipc}-{self.arch}-{self.protocol}"


def convergence_curves(lines: list[Line]) -> list[Curve]:
    """Cells measured by one protocol at two or more iteration counts (one results folder each)."""
    groups: dict[tuple, dict[str, Any]] = {}
    for ln in lines:
        s, p = ln.suite, ln.published
        if s is None or s.iterations is None:
            continue
        key = (p["method"], p["dataset"], int(p["ipc"]), p["arch"], s.protocol)
        group = groups.setdefault(key, {"points": {}, "published": [], "paper": ln.paper_iterations})
        group["points"].setdefault((s.iterations, s.results), s)
        if p not in group["published"]:
            group["published"].append(p)
    curves = []
    for (method, dataset, ipc, arch, protocol), g in sorted(groups.items()):
        points = [g["points"][k] for k in sorted(g["points"])]
        if len({c.iterations for c in points}) >= 2:
            curves.append(Curve(method, dataset, ipc, arch, protocol, points, g["published"], g["paper"]))
    return curves


def curves_markdown(curves: list[Curve], figures: dict[str, str]) -> str:
    if not curves:
        return ""
    out = ["", "## Convergence toward the published figure", "",
           "Cells measured at several distillation budgets by one protocol (a results folder per budget): "
           "the suite's accuracy against iterations, with each published figure of the cell.", ""]
    for c in curves:
        pubs = "; ".join(f"{p['accuracy']:.1f} ({p['source']})" for p in c.published)
        if c.paper_iterations:
            pubs += f", after the published {c.paper_iterations:,} iterations"
        out += [f"### {c.method}, {c.dataset}, IPC {c.ipc}, {c.arch} ({c.protocol})", "", f"Published: {pubs}.", ""]
        rows = [{"iterations": f"{pt.iterations:,}", "suite": f"{pt.mean:.2f} [{pt.ci_low:.2f}, {pt.ci_high:.2f}]",
                 "n": pt.n, "results": pt.results} for pt in c.points]
        out.append(tabulate(rows, headers="keys", tablefmt="github"))
        if c.name in figures:
            out += ["", f"![{c.method} {c.dataset} IPC {c.ipc}: accuracy against iterations]({figures[c.name]})"]
        out.append("")
    return "\n".join(out)


def plot_curve(curve: Curve, out: Path) -> Path:
    """Accuracy (95% interval) against iterations on a log axis; published figures as dashed lines."""
    from benchsuite.site_plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    its = [pt.iterations for pt in curve.points]
    means = [pt.mean for pt in curve.points]
    err = [[pt.mean - pt.ci_low for pt in curve.points], [pt.ci_high - pt.mean for pt in curve.points]]
    ax.errorbar(its, means, yerr=err, marker="o", capsize=3, label=f"suite ({curve.protocol})")
    ticks = list(its)
    for p in curve.published:
        ax.axhline(float(p["accuracy"]), linestyle="--", linewidth=1, color="grey")
        if curve.paper_iterations:  # the published figure where it was measured
            ax.plot([curve.paper_iterations], [float(p["accuracy"])], marker="*", markersize=10, color="black")
        ax.annotate(f"published {p['accuracy']:.1f}", (its[0], float(p["accuracy"])), fontsize=7,
                    xytext=(2, 2), textcoords="offset points")
    if curve.paper_iterations and curve.paper_iterations not in ticks:
        ticks.append(curve.paper_iterations)
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{i:,}" for i in ticks])
    ax.set_xlabel("distillation iterations")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{curve.method}, {curve.dataset}, IPC {curve.ipc}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, out)


FIGURES_DIR = "fidelity-curves"


def write_fidelity(results_root: Path, out_dir: Path | None = None, plugins: Any = None,
                   published: pd.DataFrame | None = None, include_stale: bool = False) -> Path:
    """``fidelity.md`` from every results folder under ``results_root`` (itself included), and a
    figure per convergence curve in ``fidelity-curves/`` beside it."""
    out_dir = Path(out_dir or results_root)
    check_writable_folder(out_dir, "fidelity folder")
    folders = sorted({f.parent for f in Path(results_root).rglob("records.jsonl")})
    lines = reproduction_lines(folders, plugins, published, include_stale)
    curves = convergence_curves(lines)
    figures = {}
    for c in curves:
        path = plot_curve(c, out_dir / FIGURES_DIR / f"{c.name}.png")
        figures[c.name] = path.relative_to(out_dir).as_posix()
    # A curve that no longer exists (its records moved or renamed) must not leave its old figure
    # behind, where it would look current beside the regenerated page.
    for stale in (out_dir / FIGURES_DIR).glob("*.png"):
        if stale.relative_to(out_dir).as_posix() not in figures.values():
            stale.unlink()
    text = fidelity_markdown(lines) + curves_markdown(curves, figures)
    out = out_dir / FIDELITY_FILE
    atomic.write_text(out, text)
    return out
