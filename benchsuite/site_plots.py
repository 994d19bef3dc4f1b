"""The leaderboard site's plots (matplotlib, written as PNG files next to the page).

Each function takes rows of the report's summary (one per method and column) and writes one
figure; it returns ``None`` when the data cannot make that figure (a single IPC, no timings).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 96


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower cost x, higher accuracy y),
    in increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def save_figure(fig: plt.Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def accuracy_vs_ipc(rows: pd.DataFrame, title: str, out: Path) -> Path | None:
    """One line per method: accuracy (with its 95% interval) against IPC."""
    rows = rows[rows["ipc"] > 0]
    if rows["ipc"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, ms in rows.sort_values("ipc").groupby("method"):
        err = [ms["acc_mean"] - ms["ci_low"], ms["ci_high"] - ms["acc_mean"]]
        ax.errorbar(ms["ipc"], ms["acc_mean"], yerr=err, marker="o", capsize=3, label=method, linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xticks(sorted(rows["ipc"].unique()), [str(i) for i in sorted(rows["ipc"].unique())])
    ax.set_xlabel("images per class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return save_figure(fig, out)


def accuracy_vs_cost(rows: pd.DataFrame, cost: str, label: str, title: str, out: Path) -> Path | None:
    """Accuracy against a cost column (log scale), one marker per (method, IPC), with the Pareto
    front of each IPC drawn as a line."""
    rows = rows[(rows["ipc"] > 0) & rows[cost].notna() & (pd.to_numeric(rows[cost], errors="coerce") > 0)]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for ipc, rs in rows.groupby("ipc"):
        xs, ys = rs[cost].astype(float).tolist(), rs["acc_mean"].astype(float).tolist()
        points = ax.scatter(xs, ys, s=22, label=f"IPC {ipc}")
        for x, y, m in zip(xs, ys, rs["method"]):
            ax.annotate(m, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
        front = pareto_front(list(zip(xs, ys)))
        ax.plot([xs[i] for i in front], [ys[i] for i in front], linestyle="--", linewidth=1,
                color=points.get_facecolor()[0])
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title + " (dashed: Pareto front)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out)


def cross_arch_heatmap(rows: pd.DataFrame, distill_arch: str, title: str, out: Path) -> Path | None:
    """Method x architecture: accuracy on the architecture minus on the distillation one."""
    archs = [a for a in sorted(rows["arch"].unique()) if a != distill_arch]
    if not archs:
        return None
    table = rows.pivot_table(index="method", columns="arch", values="acc_mean")
    if distill_arch not in table.columns:
        return None
    diff = table[archs].sub(table[distill_arch], axis=0).dropna(how="all")
    if diff.empty:
        return None
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(archs), 0.9 + 0.32 * len(diff)))
    bound = max(1.0, float(diff.abs().max().max()))
    image = ax.imshow(diff.values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(archs)), archs)
    ax.set_yticks(range(len(diff)), diff.index)
    for (r, c), v in pd.DataFrame(diff.values).stack().items():
        ax.text(c, r, f"{v:+.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label=f"points vs {distill_arch}")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, out)
