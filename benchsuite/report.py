"""Tables derived from the records: leaderboard, efficiency, cross-architecture transfer.

Results of different protocols (by hash) are never ranked together: each protocol gets its own
section. Within a protocol a method's score in a (dataset, IPC) column pools the per-model test
accuracies of all its distillation seeds on the protocol's distillation architecture.

The tables read :attr:`benchsuite.staleness.Selection.shown`: records the installed methods would
still produce, one per cell and display name (a cell run with ``--set`` overrides is a row of its
own, ``dm [iterations=50]``). Stale records and records of methods that are not installed are
counted and named, not ranked; records that fail the checks made when reading are left out with
their line numbers.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tabulate import tabulate

from benchsuite import atomic
from benchsuite.preflight import check_writable_folder
from benchsuite.records import SkippedLines, read_record_file
from benchsuite.staleness import STALE_MARK, InstalledMethods, Selection, default_plugins, select
from benchsuite.stats import ALPHA, POWER, RANK_TEST, cell_stats, compare_greater, detectable_difference, rank_groups

log = logging.getLogger("benchsuite")

LEADERBOARD_FILE = "leaderboard.md"
SUMMARY_FILE = "summary.csv"
BASELINE = "random"  # "beats random": every method's cell against this one's


def records_frame(selection: Selection) -> pd.DataFrame:
    """One row per record the tables use, with the fields they need. ``method`` is the name the
    tables show (with ``--set`` overrides: ``dm [iterations=50]``), ``base_method`` the registered
    one, ``stale`` why the record is stale when ``--include-stale`` kept it (else empty)."""
    rows = []
    for entry in selection.shown:
        r = entry.record
        rows.append({
            "protocol": r.protocol,
            "protocol_hash": r.protocol_hash,
            "method": r.display_name,
            "base_method": r.method,
            "stale": entry.stale or "",
            "dataset": r.dataset,
            "test_set": r.test_set,
            "ipc": r.ipc,
            "arch": r.arch,
            "seed": r.seed,
            "status": r.status,
            "values": r.accuracy.values if r.accuracy else [],
            "distill_seconds": r.distill_seconds,
            "distill_peak_memory_bytes": r.distill_peak_memory_bytes,
            "memory_kind": r.memory_kind,
            "eval_seconds": r.eval_seconds,
            "storage_bytes": r.storage_bytes,
            "division": r.division,
            "labels": "soft" if r.eval_soft_labels else "hard",
            "error": r.error.message if r.error else None,
            "machine": machine_label(r.machine),
        })
    return pd.DataFrame(rows)


def machine_label(machine: dict[str, Any] | None) -> str:
    """A short name for the machine a record ran on: accuracies move a little between devices and
    torch builds, and times move a lot, so the tables say where each cell came from."""
    if not machine:
        return "unknown machine"
    device = machine.get("device", "?")
    where = f"{device}, {machine['cpu_count']} cores" if device == "cpu" and machine.get("cpu_count") else device
    return f"{machine.get('device_name') or '?'} ({where}, torch {machine.get('torch', '?')})"


def _pool(values: pd.Series) -> tuple[float, float, int]:
    flat = [v for vs in values for v in vs]
    if not flat:
        return math.nan, math.nan, 0
    mean = sum(flat) / len(flat)
    std = math.sqrt(sum((v - mean) ** 2 for v in flat) / len(flat))
    return mean, std, len(flat)


#: A cell stores at most this much over its IPC's pixel budget and is still in the pixel band
#: (rounding, a learned learning rate stored beside the images).
PIXEL_BAND_SLACK = 1.01
PIXEL_BAND = "pixels"


def image_bytes_of(plugins: Any) -> Callable[[str], int | None]:
    """Bytes of one float32 image of a dataset (its shape from the installed dataset registry), or
    ``None`` for a dataset that is not installed."""
    def image_bytes(dataset: str) -> int | None:
        try:
            spec = plugins.datasets.get(plugins.datasets.canonical(dataset)).spec
        except Exception:  # noqa: BLE001 - not installed: no band can be named
            return None
        c, h, w = spec.shape
        return c * h * w * 4 * spec.num_classes  # one image per class
    return image_bytes


def storage_band(storage_bytes: float | None, ipc: int, per_ipc_bytes: int | None) -> tuple[float | None, str]:
    """(stored bytes over the IPC's pixel budget, the band's name): ``pixels`` when a cell stores no
    more than ``ipc`` float32 images per class, else ``N× pixels`` (powers of two, so methods of
    about the same size share a band)."""
    if not storage_bytes or not ipc or not per_ipc_bytes:
        return None, PIXEL_BAND
    ratio = float(storage_bytes) / (ipc * per_ipc_bytes)
    if ratio <= PIXEL_BAND_SLACK:
        return ratio, PIXEL_BAND
    return ratio, f"{2 ** round(math.log2(ratio)):g}× pixels"


def summarise(df: pd.DataFrame, image_bytes: Callable[[str], int | None] | None = None) -> pd.DataFrame:
    """One row per (protocol, dataset, ipc, arch, method): pooled accuracy and mean costs, the
    cell's storage band and label regime (``image_bytes`` names a dataset's pixel budget per IPC;
    without it every cell is in one band). Ranks and tests compare cells of one column, storage
    band and label regime only."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["protocol", "protocol_hash", "dataset", "ipc", "arch", "method", "base_method",
                                     "stale", "acc_mean",
                                     "acc_std", "n", "seeds", "ci_low", "ci_high", "ci_unit", "var_seed",
                                     "var_model", "set_sd", "rank", "p_vs_random", "test_vs_random", "detectable",
                                     "distill_seconds", "distill_peak_memory_bytes",
                                     "eval_seconds", "storage_bytes", "storage_ratio", "band", "labels", "division",
                                     "test_set", "machine"])
    keys = ["protocol", "protocol_hash", "dataset", "ipc", "arch", "method"]
    out, cells = [], {}
    for key, g in ok.groupby(keys, sort=True, dropna=False):
        _, std, n = _pool(g["values"])
        # the distilled set (one per seed) is the unit: its evaluation models average within it
        by_seed = {int(seed): [v for vs in sg["values"] for v in vs] for seed, sg in g.groupby("seed")}
        st = cell_stats(by_seed)
        cells[key] = st
        out.append(dict(zip(keys, key)) | {
            "base_method": g["base_method"].iloc[0],
            "stale": "; ".join(sorted({s for s in g["stale"] if s})),
            "acc_mean": round(st.mean, 2), "acc_std": round(std, 2), "n": n, "seeds": st.seeds,
            "ci_low": round(st.ci_low, 2), "ci_high": round(st.ci_high, 2), "ci_unit": st.unit,
            "var_seed": None if st.var_seed is None else round(st.var_seed, 3),
            "var_model": None if st.var_model is None else round(st.var_model, 3),
            "set_sd": None if st.set_sd is None else round(st.set_sd, 3),
            "distill_seconds": _mean(g["distill_seconds"]),
            "distill_peak_memory_bytes": _mean(g["distill_peak_memory_bytes"]),
            "eval_seconds": _mean(g["eval_seconds"]),
            "storage_bytes": _mean(g["storage_bytes"]),
            **dict(zip(("storage_ratio", "band"), storage_band(
                _mean(g["storage_bytes"]), int(key[3]), image_bytes(key[2]) if image_bytes else None))),
            "labels": "soft" if (g["labels"] == "soft").any() else "hard",
            "division": g["division"].iloc[0],
            "test_set": g["test_set"].iloc[0],
            "machine": "; ".join(sorted(set(g["machine"].dropna()))),
        })
    summary = pd.DataFrame(out)
    summary["rank"] = pd.Series([pd.NA] * len(summary), dtype="Int64")
    summary["p_vs_random"], summary["test_vs_random"], summary["detectable"] = math.nan, "", math.nan
    summary["storage_ratio"] = summary["storage_ratio"].map(lambda r: None if r is None else round(r, 3))
    # methods are ranked together only within one storage band and label regime
    for column, cs in summary.groupby(["protocol_hash", "dataset", "ipc", "arch", "band", "labels"]):
        stats_of = {m: cells[(p, ph, d, i, a, m)] for p, ph, d, i, a, m in
                    cs[keys].itertuples(index=False, name=None)}
        # the upper bound (IPC 0) is shown beside the columns, never ranked or tested
        ranks = rank_groups({m: c for m, c in stats_of.items()}) if column[2] != 0 else {}
        found = detectable_difference(list(stats_of.values())) if column[2] != 0 else None
        base = stats_of.get(BASELINE)
        for idx, method in zip(cs.index, cs["method"]):
            if ranks.get(method) is not None:
                summary.loc[idx, "rank"] = ranks[method]
            if found is not None:
                summary.loc[idx, "detectable"] = round(found, 2)
            if base is not None and method != BASELINE:
                versus = compare_greater(stats_of[method], base)
                summary.loc[idx, "test_vs_random"] = versus.test
                if not math.isnan(versus.p):
                    summary.loc[idx, "p_vs_random"] = float(f"{versus.p:.4g}")  # 4 significant digits
    return summary


def _mean(s: pd.Series) -> float | None:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return None if s.empty else round(float(s.mean()), 3)


def _fmt_bytes(b: float | None) -> str:
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return str(b)


def _fmt_secs(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    return f"{s:.1f}s" if s < 600 else f"{s / 60:.1f}min"


def leaderboard_tables(summary: pd.DataFrame, distill_archs: dict[str, str]) -> list[str]:
    """Markdown sections, one per protocol hash."""
    sections = []
    for (proto, phash), ps in summary.groupby(["protocol", "protocol_hash"], sort=True):
        main_arch = distill_archs.get(phash) or ps["arch"].iloc[0]
        main = ps[ps["arch"] == main_arch].copy()
        lines = [f"## Protocol `{proto}` (hash `{phash}`), evaluated on `{main_arch}`", ""]
        test_sets = sorted({t for t in ps["test_set"].dropna().unique() if t and t != "official"})
        if test_sets:
            lines += [f"Test sets: {'; '.join(test_sets)}.", ""]
        usual, mark = _machine_marks(ps)
        if len(ps["machine"].unique()) > 1:
            others = sorted(set(ps["machine"]) - {usual})
            lines += [f"Machines: most cells ran on {usual}; cells marked † ran on {'; '.join(others)}.", ""]
        divisions = sorted(ps["division"].dropna().unique())
        lines += [f"Division: {', '.join(divisions)}. Accuracy: final-epoch test accuracy (%), the mean of the "
                  "per-set means (each distilled set's evaluation models averaged), with n evaluation models in k "
                  "sets and a 95% confidence interval (Student's t over the k set means). A cell of one set shows "
                  "the interval of its evaluation models instead (it says nothing of another set of the same "
                  "method) and is not tested or ranked (*1 set*).", "",
                  f"Rank groups (#k): {RANK_TEST}. Methods that share a rank are not significantly apart. The last "
                  f"row gives the smallest difference each column's design detects (one-sided test at "
                  f"α = {ALPHA:g}, {POWER:.0%} power, from the column's own variance components).", "",
                  f"Matched views: methods are ranked together only within one storage band (bytes stored over the "
                  f"IPC's budget of float32 pixels: `pixels` up to it, else the nearest power of two) and one label "
                  f"regime. Cells outside the main view (pixel budget, hard labels) are marked {OTHER_BAND_MARK} "
                  "with their band, and their rank is within that band; the storage table below puts cells of equal "
                  "stored bytes side by side.", ""]
        # IPC 0 marks IPC-independent methods (the whole-set upper bound): shown in every column
        # of their dataset, never ranked.
        cols = sorted({(d, i) for d, i in zip(main["dataset"], main["ipc"]) if i != 0})
        if not cols:
            cols = sorted({(d, i) for d, i in zip(main["dataset"], main["ipc"])})
        ranked, bounds = [], []
        for method, ms in main.groupby("method"):
            row: dict[str, Any] = {"method": method}
            means = []
            bound = bool((ms["ipc"] == 0).all())
            for d, i in cols:
                hit = ms[(ms["dataset"] == d) & (ms["ipc"] == (0 if bound else i))]
                if hit.empty:
                    row[f"{d} IPC {i}"] = "-"
                    continue
                h = hit.iloc[0]
                row[f"{d} IPC {i}"] = cell_text(h, mark(h), ranked=not bound)
                means.append(h.acc_mean)
            if bound:
                row["method"] = f"{method} (upper bound, whole train set)"
                bounds.append(row)
            else:
                # rows in the order of their point estimates (averaged over the columns they have)
                ranked.append((-(sum(means) / len(means)) if means else math.inf, method, row))
        ranked.sort(key=lambda item: item[:2])
        rows = [row for *_, row in ranked] + bounds
        rows.append({"method": "detectable difference", **{f"{d} IPC {i}": detectable_text(main, d, i) for d, i in cols}})
        lines += [tabulate(rows, headers="keys", tablefmt="github"), ""]
        lines += _versus_random(main, cols)
        lines += _variance_components(main)

        eff = []
        for _, h in main.sort_values(["dataset", "ipc", "method"]).iterrows():
            eff.append({"method": h.method, "dataset": h.dataset, "IPC": h.ipc,
                        "distill time": _fmt_secs(h.distill_seconds),
                        "distill peak memory": _fmt_bytes(h.distill_peak_memory_bytes),
                        "storage": _fmt_bytes(h.storage_bytes), "band": h.get("band", PIXEL_BAND),
                        "labels": h.get("labels", "hard"), "eval time": _fmt_secs(h.eval_seconds) + mark(h)})
        lines += ["### Efficiency", "", tabulate(eff, headers="keys", tablefmt="github"), ""]
        lines += _storage_matched(main)

        other_archs = sorted(set(ps["arch"]) - {main_arch})
        if other_archs:
            cross = []
            for (method, d, i), g in ps.groupby(["method", "dataset", "ipc"]):
                row = {"method": method, "dataset": d, "IPC": i}
                for a in [main_arch, *other_archs]:
                    hit = g[g["arch"] == a]
                    h = hit.iloc[0] if not hit.empty else None
                    row[a] = f"{h.acc_mean:.2f} ± {h.acc_std:.2f}{mark(h)}" if h is not None else "-"
                cross.append(row)
            lines += ["### Cross-architecture transfer", "", tabulate(cross, headers="keys", tablefmt="github"), ""]
        sections.append("\n".join(lines))
    return sections


OTHER_BAND_MARK = "◇"


def in_main_view(h: Any) -> bool:
    """Whether a cell is compared in the main view: within its IPC's pixel budget, hard labels."""
    return h.get("band", PIXEL_BAND) == PIXEL_BAND and h.get("labels", "hard") == "hard"


def cell_text(h: Any, marks: str = "", ranked: bool = True) -> str:
    """``mean [low, high] (n=N, k sets) #rank``; a cell of one set says so instead of a rank; a cell
    outside the pixel budget or with soft labels is marked ◇ (its rank is within its own band)."""
    sets = f"{h.seeds} set{'s' if h.seeds != 1 else ''}"
    if ranked and not in_main_view(h):
        marks += f" {OTHER_BAND_MARK} {h['band']}, {h['labels']} labels"
    text = f"{h.acc_mean:.2f} [{h.ci_low:.2f}, {h.ci_high:.2f}] (n={h.n}, {sets}){marks}"
    if not ranked:
        return text
    return f"{text} #{int(h['rank'])}" if not pd.isna(h["rank"]) else text


def detectable_text(main: pd.DataFrame, dataset: str, ipc: int) -> str:
    """The column's detectable difference, or why it cannot be estimated."""
    col = main[(main["dataset"] == dataset) & (main["ipc"] == ipc)]
    main_view = col[[in_main_view(h) for _, h in col.iterrows()]]
    found = (main_view if not main_view.empty else col)["detectable"].dropna()
    if found.empty:
        return "not estimable: one set per cell"
    return f"{float(found.iloc[0]):.2f} points"


def _versus_random(main: pd.DataFrame, cols: list[tuple[str, int]]) -> list[str]:
    """Per method and column: the one-sided p-value of "above random", ✓ below 0.05; a cell of
    one set is not tested."""
    if BASELINE not in set(main["method"]):
        return []
    rows = []
    for method, ms in main[(main["method"] != BASELINE) & (main["ipc"] != 0)].groupby("method"):
        row: dict[str, Any] = {"method": method}
        for d, i in cols:
            hit = ms[(ms["dataset"] == d) & (ms["ipc"] == i)]
            if hit.empty:
                row[f"{d} IPC {i}"] = "-"
                continue
            p, test = hit.iloc[0]["p_vs_random"], hit.iloc[0]["test_vs_random"]
            row[f"{d} IPC {i}"] = test if pd.isna(p) else f"{'✓' if p < ALPHA else '✗'} " + (
                "p<0.0001" if p < 1e-4 else f"p={p:.2g}") + f" ({test})"
        rows.append(row)
    if not rows:
        return []
    return ["### Versus random", "", "Does the method beat `random` in the column? One-sided test on the per-set "
            "means (paired t when both have the same seeds, else Welch t); ✓ when p < 0.05 (not corrected for the "
            "number of cells); a cell of one set is not tested.", "",
            tabulate(rows, headers="keys", tablefmt="github"), ""]


def _storage_matched(main: pd.DataFrame) -> list[str]:
    """Cells of one dataset side by side at equal stored bytes (powers of two), whatever their IPC:
    a method that stores 32× the pixels of IPC 1 meets the pixel methods of about that size."""
    cells = main[(main["ipc"] != 0) & main["storage_bytes"].notna()]
    if cells.empty:
        return []
    rows = []
    for (dataset, size), g in cells.groupby([cells["dataset"], cells["storage_bytes"].map(
            lambda b: 2 ** round(math.log2(b)) if b and b > 0 else 0)]):
        ordered = g.sort_values("acc_mean", ascending=False)
        rows.append({"dataset": dataset, "stored (about)": _fmt_bytes(size),
                     "cells, best first": "; ".join(f"{h.method} IPC {h.ipc}: {h.acc_mean:.2f} ({h.labels} labels)"
                                                   for h in ordered.itertuples())})
    return ["### At equal storage", "", "Every cell by the bytes it stores (rounded to a power of two), best accuracy "
            "first: methods compared at the same storage rather than the same IPC.", "",
            tabulate(rows, headers="keys", tablefmt="github"), ""]


def _variance_components(main: pd.DataFrame) -> list[str]:
    """Between-seed and between-model variance where a cell has several distillation seeds."""
    several = main[main["seeds"] >= 2]
    if several.empty:
        return []
    rows = [{"method": h.method, "dataset": h.dataset, "IPC": h.ipc, "seeds": h.seeds, "n": h.n,
             "σ² seeds": f"{h.var_seed:.3f}", "σ² models": f"{h.var_model:.3f}",
             "seed share": f"{h.var_seed / (h.var_seed + h.var_model):.0%}" if (h.var_seed + h.var_model) > 0 else "-"}
            for h in several.sort_values(["dataset", "ipc", "method"]).itertuples()]
    return ["### Variance components", "", "Where a cell has several distilled sets: the variance of accuracy "
            "between distilled sets (seeds) and between evaluation models of one set (one-way random effects).", "",
            tabulate(rows, headers="keys", tablefmt="github"), ""]


def _machine_marks(ps: pd.DataFrame) -> tuple[str, Callable[[pd.Series], str]]:
    """The machine most of a protocol's cells ran on, and a function that marks a cell from another
    machine (†) and a stale one (‡, kept by ``--include-stale``)."""
    usual = ps["machine"].value_counts().idxmax() if not ps.empty else ""
    return usual, lambda h: ("" if h["machine"] == usual else " †") + (f" {STALE_MARK}" if h.get("stale") else "")


def write_report(results_dir: Path, out_dir: Path | None = None, *, plugins: Any = None,
                 include_stale: bool = False) -> tuple[Path, Path, pd.DataFrame]:
    """Write ``leaderboard.md`` and ``summary.csv`` from the records in ``results_dir``.

    ``plugins`` is the installed plugin set records are compared with (default: the one
    ``benchsuite`` loads); ``include_stale`` ranks stale records too, marked. A folder that cannot
    be written is a :class:`~benchsuite.errors.ConfigError` naming it, raised before anything is
    read or logged.
    """
    out_dir = Path(out_dir or results_dir)
    check_writable_folder(out_dir, "report folder")
    installed = InstalledMethods(plugins if plugins is not None else default_plugins())
    records, skipped = read_record_file(results_dir, installed.containers())
    skipped.warn()
    selection = select(records, include_stale=include_stale, installed=installed)
    _warn_left_out(results_dir, selection)
    df = records_frame(selection)
    image_bytes = image_bytes_of(installed.plugins)
    summary = summarise(df, image_bytes) if not df.empty else summarise(pd.DataFrame(columns=["status"]))
    distill_archs = {r.protocol_hash: r.distill_arch for r in records if r.distill_arch}
    summary_path = out_dir / SUMMARY_FILE
    # Both files are replaced whole (temporary file, then rename): a kill never leaves them empty.
    atomic.write_text(summary_path, summary.to_csv(index=False))

    parts = ["# Leaderboard", "", f"Generated by `benchsuite report` from {len(records)} records in "
             f"`{results_dir}`. Every table is derived from the records; protocols are never ranked together.", ""]
    parts += [line + "\n" for line in left_out_lines(selection, skipped)]
    if summary.empty:
        parts.append("No successful records to rank.")
    else:
        parts += leaderboard_tables(summary, distill_archs)
    parts += not_installed_lines(selection)
    errors = df[df["status"] == "error"] if not df.empty else df
    if not errors.empty:
        rows = [{"protocol": e.protocol, "method": e.method, "dataset": e.dataset, "IPC": e.ipc, "arch": e.arch,
                 "seed": e.seed, "error": str(e.error)[:160]} for e in errors.itertuples()]
        parts += ["## Failed cells", "", tabulate(rows, headers="keys", tablefmt="github"), ""]
    board_path = out_dir / LEADERBOARD_FILE
    atomic.write_text(board_path, "\n".join(parts) + "\n")
    return board_path, summary_path, summary


def left_out_lines(selection: Selection, skipped: SkippedLines | None = None) -> list[str]:
    """Paragraphs saying what the tables leave out or mark, and why."""
    lines = []
    if skipped is not None and skipped.impossible:
        found = skipped.impossible
        detail = "; ".join(f"line {n}: {why}" for n, why in found[:5]) + ("; ..." if len(found) > 5 else "")
        lines.append(f"Left out as impossible: {len(found)} record{'s' if len(found) != 1 else ''} of "
                     f"`{skipped.path.name}` ({detail}). No run produces such numbers; the next `benchsuite run` "
                     "runs their cells again.")
    for text in (selection.left_out_text(), selection.kept_stale_text()):
        if text:
            lines.append(text)
    return lines


def not_installed_lines(selection: Selection) -> list[str]:
    """The section listing records of methods the plugin set does not have (never ranked)."""
    found = selection.not_installed_summary()
    if not found:
        return []
    rows = [{"method": m, "records": n, "of which failed": e} for m, n, e in found]
    return ["## Not installed", "", "Records of methods that are not installed: nothing installed can reproduce them, "
            "so they are not ranked. Install the plugin (or pass `--plugins-dir`) to rank them.", "",
            tabulate(rows, headers="keys", tablefmt="github"), ""]


def _warn_left_out(results_dir: Path, selection: Selection) -> None:
    text = selection.left_out_text()
    if text:
        log.warning("%s: %s", Path(results_dir) / "records.jsonl", text)
    found = selection.not_installed_summary()
    if found:
        log.warning("%s: not ranked, as their methods are not installed: %s", Path(results_dir) / "records.jsonl",
                    ", ".join(f"{n} record{'s' if n != 1 else ''} of {m}" for m, n, _ in found))
