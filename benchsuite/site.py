"""The leaderboard as a static HTML site that opens from disk: ``<results>/site/index.html``.

One page, everything relative to it, nothing from the network: a leaderboard per protocol and
dataset (sortable, with intervals and rank groups, and a thumbnail of each distilled set), the
plots of :mod:`benchsuite.site_plots`, and a table of every cell with its configuration,
provenance, timings, the command that reproduces it, and its error when it failed.

Pictures of saved sets go to ``site/img/``. Saved sets are not kept in git but the pictures are:
when a set is no longer on the machine, an earlier picture of it is kept and the cell says so.
"""

from __future__ import annotations

import html
import json
import logging
import math
import shlex
from pathlib import Path
from typing import Any

import pandas as pd

from benchsuite import atomic, site_plots
from benchsuite.api import SyntheticSet
from benchsuite.errors import ArtifactError
from benchsuite.pictures import Renderer
from benchsuite.identity import digest_of
from benchsuite.records import RunRecord, read_record_file
from benchsuite.report import image_bytes_of, left_out_lines, machine_label, records_frame, summarise
from benchsuite.preflight import check_writable_folder
from benchsuite.staleness import STALE_MARK, InstalledMethods, Selection, default_plugins, select
from benchsuite.stats import RANK_TEST

log = logging.getLogger("benchsuite")

SITE_DIR = "site"
THUMB_PER_CLASS = 5
THUMB_WIDTH = 200  # pixels
FULL_MIN_SIDE = 64  # pixels per image in the full-size grid
BUILTIN_PROTOCOLS = ("smoke", "quick", "paper")

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var column = th.cellIndex;
    var table = th.closest('table'), body = table.tBodies[0];
    var up = th.getAttribute('data-dir') !== 'up';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', up ? 'up' : 'down');
    var key = function (row) {
      var cell = row.cells[column], v = cell ? cell.getAttribute('data-sort') : '';
      var n = parseFloat(v);
      return isNaN(n) ? (v || '') : n;
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = (typeof x === 'number' && typeof y === 'number') ? x - y
        : (String(x) < String(y) ? -1 : (String(x) > String(y) ? 1 : 0));
      return up ? c : -c;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1300px; color: #222; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; vertical-align: middle; }
th { background: #f3f3f3; cursor: pointer; user-select: none; white-space: nowrap; }
th[data-dir=up]::after { content: ' \\25B2'; } th[data-dir=down]::after { content: ' \\25BC'; }
td.num { text-align: right; white-space: nowrap; } td.err { color: #a00; }
.rank { font-weight: 600; } .ci { color: #666; font-size: 11px; } img.thumb { display: block; margin-top: 2px; }
.note { color: #555; font-size: 13px; } .plots img { max-width: 48%; margin: 4px; border: 1px solid #eee; }
details pre { max-width: 640px; white-space: pre-wrap; font-size: 11px; background: #fafafa; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def reproduce_command(r: RunRecord) -> str:
    """The command that reruns the cell (a protocol file's path is not recorded: its name is)."""
    protocol = r.protocol if r.protocol in BUILTIN_PROTOCOLS else f"<{r.protocol}.toml>"
    parts = ["benchsuite", "run", "--methods", r.method, "--protocol", protocol, "--datasets", r.dataset,
             "--seeds", str(r.seed), "--archs", ",".join(dict.fromkeys([r.distill_arch or r.arch, r.arch]))]
    if r.ipc:
        parts += ["--ipc", str(r.ipc)]
    return " ".join(shlex.quote(p) if not p.startswith("<") else p for p in parts)


def set_provenance(meta: dict[str, Any], r: RunRecord) -> list[str]:
    """What a reader must know when the saved set drawn for cell ``r`` is not simply the one
    its run wrote: re-distilled later (``benchsuite probe --save``), or made by another
    configuration or method version than the record's."""
    notes = []
    if meta.get("probe"):
        at = f" at commit {str(meta['commit'])[:8]}" if meta.get("commit") else ""
        notes.append(f"re-distilled with this cell's configuration and seed by `benchsuite probe`{at}, after the "
                     "run; the set that was scored was not kept, so the picture may differ from it in detail")
    for key, want in (("dataset", r.dataset), ("ipc", r.ipc), ("seed", r.seed)):
        if key in meta and meta[key] != want:
            notes.append(f"the saved set is for {key} {meta[key]}, this cell for {want}")
    ours = {k: v for k, v in (r.method_config or {}).items() if k != "source"}
    theirs = {k: v for k, v in (meta.get("method_config") or {}).items() if k != "source"}
    differ = sorted(k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])
    if differ:
        notes.append("the saved set's configuration differs from this cell's in " + ", ".join(differ))
    if meta.get("method_version") is not None and str(meta["method_version"]) != str(r.method_version):
        added = ", ".join(f"{k}={theirs[k]}" for k in sorted(theirs.keys() - ours.keys()))
        notes.append(f"the saved set was made by method version {meta['method_version']} (this cell: "
                     f"{r.method_version})" + (f" with the settings this cell's version predates: {added}" if added else ""))
    return notes


def _sidecar_note(path: Path) -> str:
    try:
        return str(json.loads(path.read_text()).get("note", ""))
    except (OSError, ValueError, AttributeError):
        return ""


class SiteBuilder:
    def __init__(self, results_dir: Path, out_dir: Path, plugins: Any, data_root: str | None = None,
                 cache_dir: Path | None = None, include_stale: bool = False) -> None:
        self.results_dir = Path(results_dir)
        self.out = Path(out_dir)
        self.plugins = plugins
        self.include_stale = include_stale
        self.renderer = Renderer(plugins, data_root, cache_dir)
        self.pictures: dict[tuple, dict[str, str]] = {}

    # -- pictures of the saved sets ---------------------------------------------------------
    def picture(self, r: RunRecord) -> dict[str, str]:
        """Paths (relative to the page) of the cell's full grid and thumbnail, and a note."""
        key = (r.protocol_hash, r.dataset, r.display_name, r.ipc, r.seed)
        if key in self.pictures:
            return self.pictures[key]
        # a cell run with overrides saved another set than the plain method's: its own picture
        name = r.method if not r.method_overrides else f"{r.method}-set-{digest_of(r.method_overrides)[:8]}"
        stem = Path("img") / r.protocol_hash / r.dataset / f"{name}-ipc{r.ipc}-seed{r.seed}"
        full, thumb = self.out / f"{stem}.png", self.out / f"{stem}-thumb.png"
        found: dict[str, str] = {}
        artifact = self._artifact_path(r)
        sidecar = self.out / f"{stem}.json"
        if artifact is not None and artifact.exists():
            try:
                syn, meta = SyntheticSet.load(artifact)
                # small images are enlarged by a whole factor, so every pixel stays a sharp square
                enlarge = max(1, math.ceil(FULL_MIN_SIDE / max(1, syn.images.shape[-1])))
                note = self.renderer.save_grid(syn, r.dataset, full, scale=enlarge)
                # a strip one class per column, shrunk to fit a table cell
                classes = int(syn.hard_labels().unique().numel())
                width = classes * (syn.images.shape[-1] + 1) + 1
                self.renderer.save_grid(syn, r.dataset, thumb, max_per_class=THUMB_PER_CLASS,
                                        scale=min(1.0, THUMB_WIDTH / width), classes_as_columns=True)
                note = "; ".join(n for n in (note, *set_provenance(meta, r)) if n)
                found = {"full": str(stem) + ".png", "thumb": str(stem) + "-thumb.png", "note": note}
                # the note travels with the picture: later renders without the set still say it
                atomic.write_text(sidecar, json.dumps({"note": note}))
            except (ArtifactError, OSError, KeyError, RuntimeError) as exc:
                found = {"note": f"the saved set could not be drawn: {exc}"}
        elif full.exists() and thumb.exists():
            earlier = _sidecar_note(sidecar)
            found = {"full": str(stem) + ".png", "thumb": str(stem) + "-thumb.png",
                     "note": "; ".join(n for n in (earlier, "the saved set is not on this machine; the picture is "
                                                   "from an earlier render") if n)}
        elif r.artifact:
            found = {"note": "the saved set is not on this machine"}
        else:
            found = {"note": "no saved set (the whole train set)" if r.ipc == 0 else "no saved set"}
        self.pictures[key] = found
        return found

    def _artifact_path(self, r: RunRecord) -> Path | None:
        if not r.artifact:
            return None
        path = Path(r.artifact)
        if not path.is_absolute() and not path.exists():
            # records name the set as the run's command line saw it; try it under this results folder
            parts = path.parts
            if "artifacts" in parts:
                path = self.results_dir / Path(*parts[parts.index("artifacts"):])
        return path

    # -- the page ----------------------------------------------------------------------------
    def build(self) -> Path:
        installed = InstalledMethods(self.plugins)
        # `benchsuite report` has warned about the lines it leaves out already: not again here
        records, skipped = read_record_file(self.results_dir, installed.containers())
        selection = select(records, include_stale=self.include_stale, installed=installed)
        df = records_frame(selection)
        summary = (summarise(df, image_bytes_of(installed.plugins)) if not df.empty
                   else summarise(pd.DataFrame(columns=["status"])))
        body = [f"<h1>Leaderboard</h1><p class=note>Built by <code>benchsuite report</code> from {len(records)} "
                f"records in <code>{_e(self.results_dir)}</code>. Accuracy: final-epoch test accuracy (%), the "
                "mean of the per-set means (each distilled set's evaluation models averaged), with its 95% "
                "confidence interval over the sets; a cell of one set shows its evaluation models' interval and is "
                f"not tested or ranked. <b>#k</b> is the rank group: {_e(RANK_TEST)}. Methods sharing a rank are not "
                "significantly apart; the last row is the smallest difference the column can detect. Click a "
                "column to sort, a picture to enlarge it.</p>"]
        body += [f"<p class=note>{_e(line)}</p>" for line in left_out_lines(selection, skipped)]
        if not records:
            body.append("<p>No records yet.</p>")
        by_protocol: dict[str, list[RunRecord]] = {}
        for r in [*selection.records, *(e.record for e in selection.stale_left_out)]:
            by_protocol.setdefault(r.protocol_hash, []).append(r)
        for phash, rs in sorted(by_protocol.items(), key=lambda kv: (kv[1][0].protocol or "", kv[0])):
            body += self.protocol_section(phash, rs, summary[summary["protocol_hash"] == phash]
                                          if not summary.empty else summary, selection)
        body += self.not_installed_section(selection)
        page = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>benchsuite leaderboard</title>"
                "<link rel=icon href='data:,'>"
                f"<style>{CSS}</style></head><body>" + "\n".join(body) + f"<script>{SORT_JS}</script></body></html>\n")
        index = self.out / "index.html"
        atomic.write_text(index, page)
        return index

    def protocol_section(self, phash: str, rs: list[RunRecord], summary: pd.DataFrame,
                         selection: Selection) -> list[str]:
        """The protocol's leaderboards (ranked records only) and its table of every cell (stale
        ones too, marked: the table is where a reader finds what the ranking left out)."""
        first = rs[0]
        ranked = [e.record for e in selection.shown if e.record.protocol_hash == phash]
        distill_arch = next((r.distill_arch for r in rs if r.distill_arch), first.arch)
        out = [f"<h2>Protocol <code>{_e(first.protocol)}</code> (hash <code>{_e(phash)}</code>)</h2>",
               f"<p class=note>Distilled and ranked on <code>{_e(distill_arch)}</code>; machines: "
               f"{_e('; '.join(sorted({machine_label(r.machine) for r in rs})))}.</p>"]
        for dataset in sorted({r.dataset for r in ranked}):
            drs = [r for r in ranked if r.dataset == dataset]
            ds = summary[summary["dataset"] == dataset] if not summary.empty else summary
            out.append(f"<h3>{_e(dataset)}</h3>")
            test_sets = {r.test_set for r in drs if r.test_set and r.test_set != "official"}
            if test_sets:
                out.append(f"<p class=note>Test set: {_e('; '.join(sorted(test_sets)))}.</p>")
            out.append(self.leaderboard(drs, ds, distill_arch))
            out.append(self.plots(phash, dataset, ds, distill_arch))
        out.append("<h3>Every cell</h3>")
        notes = {id(e.record): f"stale {STALE_MARK}: {e.stale}" for e in selection.shown if e.stale}
        notes |= {id(e.record): f"stale {STALE_MARK}: {e.stale}; not ranked" for e in selection.stale_left_out}
        out.append(self.cells_table([(r, notes.get(id(r))) for r in rs]))
        return out

    def not_installed_section(self, selection: Selection) -> list[str]:
        if not selection.not_installed:
            return []
        return ["<h2>Not installed</h2><p class=note>Records of methods that are not installed: nothing installed "
                "can reproduce them, so they are not ranked. Install the plugin (or pass <code>--plugins-dir</code>) "
                "to rank them.</p>",
                self.cells_table([(r, "not installed") for r in selection.not_installed])]

    def leaderboard(self, rs: list[RunRecord], summary: pd.DataFrame, distill_arch: str) -> str:
        main = summary[summary["arch"] == distill_arch] if not summary.empty else summary
        ipcs = sorted({r.ipc for r in rs if r.ipc})
        methods = sorted({r.display_name for r in rs})
        head = "<tr><th>method</th>" + "".join(f"<th>IPC {i}</th>" for i in ipcs) + "</tr>"
        rows = []
        for m in methods:
            cells, means = [], []
            for i in ipcs:
                ipc = 0 if all(r.ipc == 0 for r in rs if r.display_name == m) else i
                hit = main[(main["method"] == m) & (main["ipc"] == ipc)] if not main.empty else main
                recs = [r for r in rs if r.display_name == m and r.ipc == ipc and r.arch == distill_arch]
                cells.append(self._leader_cell(hit.iloc[0] if not hit.empty else None, recs, bound=ipc == 0))
                if not hit.empty and ipc:
                    means.append(float(hit.iloc[0]["acc_mean"]))
            # rows come in the order of their point estimates (a click on a column sorts by it)
            rows.append((-(sum(means) / len(means)) if means else math.inf, m,
                         f"<tr><td data-sort='{_e(m)}'>{_e(m)}</td>{''.join(cells)}</tr>"))
        rows.sort(key=lambda item: item[:2])
        found = {i: main[(main["ipc"] == i)]["detectable"].dropna() for i in ipcs} if not main.empty else {}
        detectable = "".join(
            f"<td class=ci>{'not estimable: one set per cell' if found.get(i) is None or found[i].empty else f'{float(found[i].iloc[0]):.2f} points'}</td>"
            for i in ipcs)
        foot = f"<tfoot><tr><td class=ci>detectable difference</td>{detectable}</tr></tfoot>"
        return (f"<table class=sortable><thead>{head}</thead><tbody>{''.join(r for *_, r in rows)}</tbody>"
                f"{foot}</table>")

    def _leader_cell(self, h: pd.Series | None, recs: list[RunRecord], bound: bool) -> str:
        pic = self.picture(recs[0]) if recs else {}
        thumb = (f"<a href='{_e(pic['full'])}' title='{_e(pic.get('note', ''))}'><img class=thumb loading=lazy "
                 f"src='{_e(pic['thumb'])}' alt='{_e(recs[0].method)} IPC {recs[0].ipc}'></a>"
                 if pic.get("thumb") else (f"<div class=ci>{_e(pic['note'])}</div>" if pic.get("note") else ""))
        if h is None:
            errors = [r for r in recs if r.status == "error"]
            if errors:
                e = errors[0].error
                return f"<td class=err data-sort='-1'>error: {_e(e.type)}<div class=ci>{_e(e.message[:160])}</div></td>"
            return "<td data-sort='-1'>-</td>"
        sets = f"{int(h.seeds)} set{'s' if int(h.seeds) != 1 else ''}"
        rank = "" if bound or pd.isna(h["rank"]) else f" <span class=rank>#{int(h['rank'])}</span>"
        stale = f" <span title='{_e('stale: ' + h['stale'])}'>{STALE_MARK}</span>" if h.get("stale") else ""
        return (f"<td class=num data-sort='{h.acc_mean}'>{h.acc_mean:.2f}{rank}{stale}<div class=ci>[{h.ci_low:.2f}, "
                f"{h.ci_high:.2f}] n={int(h.n)}, {sets}</div>{thumb}</td>")

    def plots(self, phash: str, dataset: str, summary: pd.DataFrame, distill_arch: str) -> str:
        if summary.empty:
            return ""
        folder = self.out / "plots" / phash / dataset
        main = summary[summary["arch"] == distill_arch]
        made = [
            site_plots.accuracy_vs_ipc(main, f"{dataset}: accuracy vs IPC", folder / "accuracy-vs-ipc.png"),
            site_plots.accuracy_vs_cost(main, "distill_seconds", "distillation time (s, log)",
                                        f"{dataset}: accuracy vs distillation time", folder / "accuracy-vs-time.png"),
            site_plots.accuracy_vs_cost(main, "storage_bytes", "storage (bytes, log)",
                                        f"{dataset}: accuracy vs storage", folder / "accuracy-vs-storage.png"),
        ]
        for ipc in sorted(summary["ipc"].unique()):
            made.append(site_plots.cross_arch_heatmap(
                summary[summary["ipc"] == ipc], distill_arch, f"{dataset} IPC {ipc}: accuracy minus {distill_arch}'s",
                folder / f"cross-arch-ipc{ipc}.png"))
        images = [f"<a href='{_e(p.relative_to(self.out))}'><img src='{_e(p.relative_to(self.out))}' "
                  f"alt='{_e(p.stem)}'></a>" for p in made if p is not None]
        return f"<div class=plots>{''.join(images)}</div>" if images else ""

    def cells_table(self, rows_in: list[tuple[RunRecord, str | None]]) -> str:
        """One row per record; the note (stale, not installed) goes under its status."""
        head = ("<tr><th>method</th><th>dataset</th><th>IPC</th><th>arch</th><th>seed</th><th>status</th>"
                "<th>accuracy</th><th>distill s</th><th>eval s</th><th>storage B</th><th>commit</th>"
                "<th>details</th></tr>")
        rows = []
        for r, note in sorted(rows_in, key=lambda rn: (rn[0].dataset, rn[0].ipc, rn[0].display_name, rn[0].arch,
                                                       rn[0].seed)):
            acc = r.accuracy.mean if r.accuracy and r.accuracy.mean is not None else None
            said = f"<div class=ci>{_e(note)}</div>" if note else ""
            status = (f"<td class=err data-sort='error'>{_e(r.error.type)}: {_e(r.error.message[:200])}{said}</td>"
                      if r.status == "error" else f"<td data-sort='ok'>ok{said}</td>")
            details = {
                "protocol": r.protocol, "protocol_hash": r.protocol_hash, "commit": r.commit,
                "code_digest": r.code_digest, "machine": r.machine, "method_version": r.method_version,
                "source_digest": r.source_digest, "method_overrides": r.method_overrides,
                # the config's `source` string is where its values come from; old records name
                # documents that are not shipped, and each method's docs page holds the sources
                "method_config": {k: v for k, v in (r.method_config or {}).items() if k != "source"}, "division": r.division, "eval_epochs": r.eval_epochs,
                "accuracies": r.accuracy.values if r.accuracy else None, "distill_seconds": r.distill_seconds,
                "eval_seconds": r.eval_seconds, "eval_train_seconds": r.eval_train_seconds,
                "eval_test_seconds": r.eval_test_seconds, "peak_memory_bytes": r.distill_peak_memory_bytes,
                "test_set": r.test_set, "artifact": r.artifact, "started_at": r.started_at,
                "finished_at": r.finished_at,
            }
            pic = self.picture(r)
            extra = (f"<p><a href='{_e(pic['full'])}'>the distilled set</a> {_e(pic.get('note', ''))}</p>"
                     if pic.get("full") else f"<p>{_e(pic.get('note', ''))}</p>")
            if r.status == "error" and r.error and r.error.traceback:
                extra += f"<pre>{_e(r.error.traceback[-1500:])}</pre>"
            rows.append(
                f"<tr><td data-sort='{_e(r.display_name)}'>{_e(r.display_name)}</td><td>{_e(r.dataset)}</td>"
                f"<td class=num data-sort='{r.ipc}'>{r.ipc}</td><td>{_e(r.arch)}</td>"
                f"<td class=num data-sort='{r.seed}'>{r.seed}</td>{status}"
                f"<td class=num data-sort='{_num(acc)}'>{'' if acc is None else f'{acc:.2f}'}</td>"
                f"<td class=num data-sort='{_num(r.distill_seconds)}'>{_num(r.distill_seconds)}</td>"
                f"<td class=num data-sort='{_num(r.eval_seconds)}'>{_num(r.eval_seconds)}</td>"
                f"<td class=num data-sort='{_num(r.storage_bytes)}'>{_num(r.storage_bytes)}</td>"
                f"<td><code>{_e((r.commit or '')[:12])}</code></td>"
                f"<td><details><summary>config, provenance, command</summary>"
                f"<p>Reproduce: <code>{_e(reproduce_command(r))}</code></p>{extra}"
                f"<pre>{_e(json.dumps(details, indent=1, sort_keys=True, default=str))}</pre></details></td></tr>")
        return f"<table class=sortable><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def write_site(results_dir: Path, out_dir: Path | None = None, *, plugins: Any = None, data_root: str | None = None,
               cache_dir: Path | None = None, include_stale: bool = False) -> Path:
    """Write ``<out_dir or results_dir>/site/index.html`` and its pictures and plots; records are
    compared with ``plugins`` (default: the plugin set ``benchsuite`` loads) as in
    :func:`benchsuite.report.write_report`."""
    if plugins is None:
        plugins = default_plugins()
    base = Path(out_dir or results_dir)
    check_writable_folder(base / SITE_DIR, "site folder")
    return SiteBuilder(Path(results_dir), base / SITE_DIR, plugins, data_root, cache_dir, include_stale).build()
