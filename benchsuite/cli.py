"""Command line: ``benchsuite run | ls | report | show | probe | prepare``."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

from benchsuite.errors import BenchsuiteError, ConfigError

RUN_EXAMPLES = """
examples:
  benchsuite run --methods all                      # every method on the default protocol (quick)
  benchsuite run --methods random,herding --ipc 1   # a subset of methods and IPCs
  benchsuite run --methods 'dc*' --protocol paper --device cuda
  benchsuite run --methods dm --set dm.iterations=50 --eval epochs=100
  BENCHSUITE_DATA=../shared/data benchsuite run --methods all --results results/

exit status:
  0 every cell ok (or done already), 1 some cell failed (its error record says why),
  2 a usage or configuration error found before any cell ran, 130 interrupted (finished records kept)
"""

LS_EXAMPLES = """
examples:
  benchsuite ls methods
  benchsuite ls archs
  benchsuite --plugins-dir ./my_plugins ls plugins
"""

REPORT_EXAMPLES = """
examples:
  benchsuite report                  # reads results/records.jsonl, writes leaderboard.md, summary.csv, site/index.html
  benchsuite report --results runs/ --out docs/
"""

PROBE_EXAMPLES = """
examples:
  benchsuite probe dm --ipc 1                                  # quick budget, evaluated on convnet
  benchsuite probe mtt --ipc 10 --set lr_img=100 --set iterations=60 --eval models=1
  benchsuite probe dc --dataset cifar10 --ipc 10 --protocol paper --set iterations=2 --no-eval
  benchsuite probe glad-dm --save /tmp/glad.pt                # then: benchsuite show /tmp/glad.pt
"""

PREPARE_EXAMPLES = """
examples:
  benchsuite prepare --methods mtt,pad                     # expert trajectories of the quick protocol
  benchsuite prepare --methods 'glad-*,hpd-*' --protocol paper --device cuda
"""

PLAN_EXAMPLES = """
examples:
  benchsuite plan --protocol paper --methods all --device cuda   # from the timing records under results/
  benchsuite plan --methods dm,mtt --datasets cifar10 --calibrate  # a short timed run here fills the gaps
  benchsuite plan --protocol paper --methods all --device cuda --workers 8
"""

SHOW_EXAMPLES = """
examples:
  benchsuite show results/artifacts/quick-<hash>/fashionmnist/dm/ipc10-seed0.pt --out dm.png
"""


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(p) for p in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _key_values(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{what} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchsuite", description="Benchmark dataset distillation methods under one protocol.",
    )
    parser.add_argument("--plugins-dir", action="append", default=[], metavar="DIR",
                        help="also load every *.py plugin in DIR (repeatable)")
    parser.add_argument("--no-entry-points", action="store_true",
                        help="do not load plugins from installed packages (entry point group 'benchsuite')")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fmt = argparse.RawDescriptionHelpFormatter
    run = sub.add_parser("run", help="distill and evaluate a grid of methods", epilog=RUN_EXAMPLES, formatter_class=fmt)
    run.add_argument("--methods", required=True, help="comma list, glob patterns ('glad-*') or 'all'")
    run.add_argument("--protocol", default="quick", help="protocol name (smoke, quick, paper) or a .toml path; default quick")
    run.add_argument("--datasets", type=_csv, help="override the protocol's datasets (comma list)")
    run.add_argument("--ipc", type=_ints, help="override the protocol's IPCs, e.g. 1,10")
    run.add_argument("--archs", type=_csv, help="override the evaluation architectures; the first one distills")
    run.add_argument("--seeds", type=_ints, help="override the distillation seeds, e.g. 0,1,2")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    run.add_argument("--results", type=Path, default=Path("results"), help="records and artifacts folder (default results/)")
    run.add_argument("--cache-dir", type=Path, help="cache for datasets, experts, priors (default $BENCHSUITE_CACHE or ~/.cache/benchsuite)")
    run.add_argument("--data-root", help="dataset folder (default $BENCHSUITE_DATA): torchvision layout or the npz layout of shared/data")
    run.add_argument("--no-download", action="store_true", help="never try torchvision downloads")
    run.add_argument("--force", action="store_true", help="rerun cells that already have records")
    run.add_argument("--cell-timeout", type=_seconds, metavar="SECONDS",
                     help="end a method that distils one cell for longer (an error record; a rerun tries again); "
                          "default: the protocol's cell_timeout, else no limit")
    run.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                     help="override a method hyperparameter, e.g. dm.iterations=100 (repeatable)")
    run.add_argument("--eval", action="append", default=[], metavar="KEY=VALUE",
                     help="override the protocol's evaluation recipe, e.g. epochs=300 or augment=none (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress bars or per-cell lines")
    run.add_argument("--no-report", action="store_true", help="do not rewrite the leaderboard after the run")
    scale = run.add_argument_group("scale-out (README: run on a cluster)")
    scale.add_argument("--executor", choices=["serial", "ray"], default="serial",
                       help="serial: one cell after another in this process (default); ray: cells as Ray tasks "
                            '(pip install "benchsuite[ray]")')
    scale.add_argument("--ray-address", metavar="ADDR",
                       help="join a running cluster (HOST:PORT from `ray start --head`, ray://HOST:PORT, or auto); "
                            "default: start a local Ray instance for this run")
    scale.add_argument("--gpus-per-cell", type=float, metavar="G",
                       help="GPUs a cell reserves on CUDA (default 1; 0.25 runs four small cells per GPU)")
    scale.add_argument("--cpus-per-cell", type=int, metavar="N",
                       help="CPUs a cell reserves, and its torch threads (default 1 on CUDA, 2 on the CPU)")

    ls = sub.add_parser("ls", help="list methods, datasets, archs, plugins or protocols", epilog=LS_EXAMPLES,
                        formatter_class=fmt)
    ls.add_argument("what", choices=["methods", "datasets", "archs", "plugins", "protocols"])

    rep = sub.add_parser("report", help="write the leaderboard and summary from records", epilog=REPORT_EXAMPLES,
                         formatter_class=fmt)
    rep.add_argument("--results", type=Path, default=Path("results"), help="folder with records.jsonl (default results/)")
    rep.add_argument("--out", type=Path, help="where to write leaderboard.md and summary.csv (default: --results)")
    rep.add_argument("--no-site", action="store_true", help="do not write the HTML site (site/index.html)")
    rep.add_argument("--include-stale", action="store_true",
                     help="rank stale records too (made by another version or source of the installed method, or "
                          "before source digests were recorded), marked; by default they are counted and left out")
    rep.add_argument("--fidelity", action="store_true",
                     help="also write fidelity.md: every published number next to the records of the same cell in "
                          "--results and all its subfolders, with a verdict")
    rep.add_argument("--data-root", help="dataset folder (default $BENCHSUITE_DATA); only needed to un-whiten "
                     "ZCA sets (MTT, PAD) for their pictures")

    probe = sub.add_parser("probe", help="distill one cell outside a sweep (calibration, timing); writes no record",
                           epilog=PROBE_EXAMPLES, formatter_class=fmt)
    probe.add_argument("method")
    probe.add_argument("--dataset", default="fashionmnist")
    probe.add_argument("--ipc", type=int, default=1)
    probe.add_argument("--seed", type=int, default=0)
    probe.add_argument("--protocol", default="quick", help="whose budget and recipe (default quick)")
    probe.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a hyperparameter of the method, e.g. iterations=10 (repeatable)")
    probe.add_argument("--eval", action="append", default=[], metavar="KEY=VALUE",
                       help="change the evaluation recipe, e.g. models=1 or epochs=100 (repeatable)")
    probe.add_argument("--arch", help="evaluation architecture (default: the protocol's distillation arch)")
    probe.add_argument("--no-eval", action="store_true", help="distill only (time it)")
    probe.add_argument("--save", type=Path, help="save the set here (.pt), for `benchsuite show`")
    _add_common_run_flags(probe)

    prep = sub.add_parser("prepare", help="build the caches (expert trajectories, priors) a protocol's cells read",
                          epilog=PREPARE_EXAMPLES, formatter_class=fmt)
    prep.add_argument("--methods", required=True, help="comma list, glob patterns or 'all'")
    prep.add_argument("--protocol", default="quick")
    prep.add_argument("--datasets", type=_csv, help="override the protocol's datasets (comma list)")
    prep.add_argument("--ipc", type=_ints, help="override the protocol's IPCs")
    prep.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE")
    _add_common_run_flags(prep)

    pl = sub.add_parser("plan", help="the grid of a protocol and an estimate of its wall time, before running it",
                        epilog=PLAN_EXAMPLES, formatter_class=fmt)
    pl.add_argument("--methods", required=True, help="comma list, glob patterns or 'all'")
    pl.add_argument("--protocol", default="quick")
    pl.add_argument("--datasets", type=_csv, help="override the protocol's datasets (comma list)")
    pl.add_argument("--ipc", type=_ints, help="override the protocol's IPCs")
    pl.add_argument("--archs", type=_csv, help="override the evaluation architectures")
    pl.add_argument("--seeds", type=_ints, help="override the distillation seeds")
    pl.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE")
    pl.add_argument("--results", type=Path, action="append",
                    help="folder whose records (and its subfolders') give timings (repeatable; default results/)")
    pl.add_argument("--calibrate", action="store_true",
                    help="time a short run here of every group without a timing record (builds its caches)")
    pl.add_argument("--workers", type=int, default=1, help="cells running at once, for the wall-time line (default 1)")
    pl.add_argument("--json", type=Path, metavar="FILE", help="also write the plan as JSON")
    _add_common_run_flags(pl)

    show = sub.add_parser("show", help="describe a distilled set and render its images as a grid",
                          epilog=SHOW_EXAMPLES, formatter_class=fmt)
    show.add_argument("artifact", type=Path, help="a .pt file under results/artifacts/")
    show.add_argument("--out", type=Path, help="PNG path for the image grid (default: next to the artifact)")
    show.add_argument("--data-root", help="dataset folder (default $BENCHSUITE_DATA); only needed to un-whiten "
                      "a ZCA set (MTT, PAD) for its picture")
    return parser


def _add_common_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--cache-dir", type=Path, help="default $BENCHSUITE_CACHE or ~/.cache/benchsuite")
    p.add_argument("--data-root", help="dataset folder (default $BENCHSUITE_DATA)")
    p.add_argument("--no-download", action="store_true", help="never try torchvision downloads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return _dispatch(args)
    except BenchsuiteError as exc:
        print(f"benchsuite: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbenchsuite: interrupted; finished records are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130


def _plugins(args: argparse.Namespace):
    from benchsuite.plugins import get_plugin_manager

    return get_plugin_manager(args.plugins_dir, entry_points=not args.no_entry_points)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "ls":
        return _cmd_ls(args)
    if args.command == "run":
        return _cmd_run(args)
    if args.command == "report":
        return _cmd_report(args)
    if args.command == "show":
        return _cmd_show(args)
    if args.command == "probe":
        return _cmd_probe(args)
    if args.command == "prepare":
        return _cmd_prepare(args)
    if args.command == "plan":
        return _cmd_plan(args)
    raise ConfigError(f"unknown command {args.command!r}")


def _cmd_ls(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    if args.what == "protocols":
        from benchsuite.protocol import available_protocols, load_protocol

        rows = []
        for name in available_protocols():
            p = load_protocol(name)
            rows.append({"protocol": name, "hash": p.hash, "datasets": ",".join(p.datasets),
                         "ipcs": ",".join(map(str, p.ipcs)), "archs": ",".join(p.archs),
                         "eval": f"{p.eval.epochs} ep, {p.eval.models} models, {p.eval.augment}",
                         "description": p.description})
        print(tabulate(rows, headers="keys"))
        return 0
    plugins = _plugins(args)
    if args.what == "methods":
        rows = [{"method": n, "kind": c.kind, "version": c.version, "plugin": plugins.methods.origin(n),
                 "description": textwrap.shorten(c.description, 70)} for n, c in plugins.methods.items()]
    elif args.what == "datasets":
        rows = [{"dataset": n, "shape": "x".join(map(str, e.spec.shape)), "classes": e.spec.num_classes,
                 "aliases": ",".join(e.spec.aliases), "plugin": plugins.datasets.origin(n)}
                for n, e in plugins.datasets.items()]
    elif args.what == "archs":
        rows = [{"arch": n, "plugin": plugins.archs.origin(n), "description": plugins.arch_descriptions.get(n, "")}
                for n, _ in plugins.archs.items()]
        rows.append({"arch": "timm:<name>", "plugin": "benchsuite.builtin",
                     "description": "any timm model, e.g. timm:resnet18 (built with pretrained=False)"})
    else:
        rows = [{"plugin": i.name, "source": i.source, "hooks": ",".join(i.hooks), "location": i.location}
                for i in plugins.infos.values()]
    print(tabulate(rows, headers="keys"))
    return 0


def _method_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in _key_values(items, "--set").items():
        if "." not in key:
            raise ConfigError(f"--set expects METHOD.KEY=VALUE, got {key!r}")
        method, field_name = key.split(".", 1)
        out.setdefault(method.lower(), {})[field_name] = value
    return out


def _coerce_overrides(plugins: Any, protocol: Any, overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Turn CLI strings into the types of each method's config fields."""
    from benchsuite.api import check_override_names, config_value
    from benchsuite.protocol import coerce_like

    typed: dict[str, dict[str, Any]] = {}
    for method, values in overrides.items():
        cls = plugins.methods.get(method)
        dataset = plugins.datasets.canonical(protocol.datasets[0])
        defaults = cls.config_for(dataset, protocol.ipcs[0], protocol)
        check_override_names(method, defaults, values)
        typed[plugins.methods.canonical(method)] = {
            k: coerce_like(config_value(defaults, k), v, f"{method}.{k}") for k, v in values.items()
        }
    return typed


def _unique(values: list[Any] | None, flag: str, quiet: bool) -> list[Any] | None:
    """``values`` without repeats (first occurrence kept), saying so: a repeat would run a cell twice."""
    if values is None:
        return None
    unique = list(dict.fromkeys(values))
    if len(unique) != len(values):
        from benchsuite.progress import say

        say(f"note: {flag} repeats values; running each once: {','.join(map(str, unique))}", quiet)
    return unique


def _cmd_run(args: argparse.Namespace) -> int:
    from benchsuite.progress import say
    from benchsuite.protocol import load_protocol
    from benchsuite.report import write_report
    from benchsuite.runner import RunOptions, Runner, default_cache_dir

    plugins = _plugins(args)
    protocol = load_protocol(args.protocol)
    eval_changes = _key_values(args.eval, "--eval")
    datasets = [plugins.datasets.canonical(d) for d in (args.datasets or protocol.datasets)]
    protocol = protocol.with_overrides(
        datasets=_unique(datasets, "--datasets", args.quiet),
        ipcs=_unique(args.ipc, "--ipc", args.quiet), archs=_unique(args.archs, "--archs", args.quiet),
        seeds=_unique(args.seeds, "--seeds", args.quiet), eval=eval_changes or None,
    )
    methods = plugins.methods.match(args.methods)
    options = RunOptions(
        results_dir=args.results,
        cache_dir=args.cache_dir or default_cache_dir(),
        data_root=args.data_root,
        allow_download=not args.no_download,
        device=args.device,
        force=args.force,
        quiet=args.quiet,
        method_overrides=_coerce_overrides(plugins, protocol, _method_overrides(args.set)),
        cell_timeout=args.cell_timeout,
    )
    executor = None
    if args.executor == "ray":
        from benchsuite.ray_executor import RayExecutor, RayOptions

        executor = RayExecutor(plugins, RayOptions(address=args.ray_address, gpus_per_cell=args.gpus_per_cell,
                                                   cpus_per_cell=args.cpus_per_cell))
    elif args.ray_address or args.gpus_per_cell is not None or args.cpus_per_cell is not None:
        raise ConfigError("--ray-address, --gpus-per-cell and --cpus-per-cell need --executor ray")
    try:
        runner = Runner(plugins, protocol, options, executor=executor)
    except BaseException:
        if executor is not None:
            executor.close()
        raise
    reporter = None
    if not args.quiet:
        from benchsuite.terminal import TerminalReporter

        reporter = TerminalReporter().attach()
        plugins.pm.register(reporter, name="benchsuite.terminal")
    try:
        summary = runner.run(methods)
    finally:
        runner.executor.close()
        if reporter is not None:
            plugins.pm.unregister(reporter)
            reporter.detach()
    say(f"records in {args.results / 'records.jsonl'}; device {runner.device}", args.quiet)
    if not args.no_report:
        board, _, _ = write_report(args.results, plugins=plugins)
        say(f"leaderboard: {board}", args.quiet)
    for line in summary.errors:
        print(f"benchsuite: failed: {line}", file=sys.stderr)
    return 1 if summary.error_records else 0


def _bars(quiet: bool):
    from benchsuite.cell import no_progress
    from benchsuite.progress import Progress

    return no_progress if quiet else (lambda description: Progress(description))


def _cmd_probe(args: argparse.Namespace) -> int:
    from benchsuite.probe import probe
    from benchsuite.protocol import load_protocol

    plugins = _plugins(args)
    name = plugins.methods.canonical(args.method)
    protocol = load_protocol(args.protocol)
    prefixed = [item if item.split("=", 1)[0].startswith(f"{name}.") else f"{name}.{item}" for item in args.set]
    overrides = _coerce_overrides(plugins, protocol, _method_overrides(prefixed)).get(name, {})
    result = probe(name, args.dataset, args.ipc, protocol=protocol, seed=args.seed, overrides=overrides,
                   eval_changes=_key_values(args.eval, "--eval") or None, evaluate=not args.no_eval, arch=args.arch,
                   save=args.save, device=args.device, data_root=args.data_root, cache_dir=args.cache_dir,
                   allow_download=not args.no_download, plugins=plugins, progress=_bars(args.quiet))
    print(f"{name} {args.dataset} ipc{args.ipc} seed{args.seed}: {result.config}")
    print(f"distilled in {result.distill_seconds:.1f}s, peak memory {result.distill_peak_memory_bytes / 2**30:.2f} GiB, "
          f"storage {result.synthetic.storage_bytes} bytes")
    if result.evaluation is not None:
        e = result.evaluation
        print(f"{e.arch}: {e.mean:.2f} ± {e.std:.2f} (n={len(e.accuracies)}: {e.accuracies}) after {e.epochs} epochs "
              f"(train {e.train_seconds:.1f}s, test {e.test_seconds:.1f}s)")
    if result.saved_to is not None:
        print(f"saved {result.saved_to}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    import json

    import torch
    from tabulate import tabulate

    from benchsuite.plan import as_dict, hours, make_plan, plan_rows, plan_sources
    from benchsuite.protocol import load_protocol

    plugins = _plugins(args)
    protocol = load_protocol(args.protocol)
    protocol = protocol.with_overrides(
        datasets=[plugins.datasets.canonical(d) for d in (args.datasets or protocol.datasets)],
        ipcs=_unique(args.ipc, "--ipc", True), archs=_unique(args.archs, "--archs", True),
        seeds=_unique(args.seeds, "--seeds", True))
    methods = plugins.methods.match(args.methods)
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    kind = args.device.split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {args.device!r}")
    roots = args.results or [Path("results")]
    folders = sorted({f.parent for root in roots for f in Path(root).rglob("records.jsonl")})
    result = make_plan(protocol, methods, plugins=plugins, device_kind=kind, results_dirs=folders,
                       calibrate=args.calibrate, device=args.device, data_root=args.data_root,
                       cache_dir=args.cache_dir, allow_download=not args.no_download,
                       overrides=_coerce_overrides(plugins, protocol, _method_overrides(args.set)))
    print(f"plan: protocol {protocol.name} ({protocol.hash}), {result.cells} cell(s) in {len(result.groups)} "
          f"group(s) on {kind}; {len(protocol.archs)} arch(s) x {protocol.eval.models} model(s) per cell")
    print(tabulate(plan_rows(result), headers="keys"))
    unit = "GPU" if kind == "cuda" else "CPU-machine"
    known = result.known_seconds
    print(f"total: {known / 3600:.1f} {unit}-hours ({hours(known)})"
          + (f" for the {len(result.groups) - len(result.unknown)} group(s) with an estimate" if result.unknown else ""))
    if args.workers > 1:
        print(f"with {args.workers} workers: about {hours(known / args.workers)} of wall time (cells spread evenly)")
    if result.unknown:
        print(f"no estimate for {len(result.unknown)} group(s): "
              + ", ".join(f"{g.method} {g.dataset} ipc{g.ipc}" for g in result.unknown[:8])
              + (" ..." if len(result.unknown) > 8 else "")
              + f"; run them once on {kind}, or add --calibrate on such a machine")
    print("how estimated:")
    for line in plan_sources(result):
        print(f"  {line}")
    if args.json:
        args.json.write_text(json.dumps(as_dict(result), indent=1) + "\n")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from benchsuite.probe import prepare
    from benchsuite.protocol import load_protocol

    plugins = _plugins(args)
    protocol = load_protocol(args.protocol)
    protocol = protocol.with_overrides(
        datasets=[plugins.datasets.canonical(d) for d in (args.datasets or protocol.datasets)],
        ipcs=_unique(args.ipc, "--ipc", args.quiet))
    methods = plugins.methods.match(args.methods)

    def said(done: Any) -> None:
        what = ", ".join(sorted(done.built)) if done.built else "nothing to build"
        print(f"{done.method} {done.dataset} ipc{done.ipc}: {what}")

    prepare(methods, protocol, overrides=_coerce_overrides(plugins, protocol, _method_overrides(args.set)),
            device=args.device, data_root=args.data_root, cache_dir=args.cache_dir,
            allow_download=not args.no_download, plugins=plugins, progress=_bars(args.quiet), on_done=said)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from benchsuite.report import write_report

    if not (args.results / "records.jsonl").exists():
        raise ConfigError(f"no records in {args.results}/records.jsonl; run `benchsuite run` first or pass --results")
    plugins = _plugins(args)  # records are compared with these methods (stale, not installed)
    board, summary_path, summary = write_report(args.results, args.out, plugins=plugins,
                                                include_stale=args.include_stale)
    print(f"wrote {board} and {summary_path} ({len(summary)} rows)")
    if args.fidelity:
        from benchsuite.fidelity import write_fidelity

        print(f"wrote {write_fidelity(args.results, args.out, plugins=plugins, include_stale=args.include_stale)}")
    if not args.no_site:
        from benchsuite.site import write_site

        index = write_site(args.results, args.out, plugins=plugins, data_root=args.data_root,
                           include_stale=args.include_stale)
        print(f"wrote {index} (open it in a browser; it needs no server)")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from benchsuite.api import SyntheticSet
    from benchsuite.pictures import Renderer

    if not args.artifact.exists():
        raise ConfigError(f"artifact {args.artifact} does not exist")
    syn, meta = SyntheticSet.load(args.artifact)
    out = args.out or args.artifact.with_suffix(".png")
    note = Renderer(_plugins(args), args.data_root).save_grid(syn, meta.get("dataset"), out)
    if note:
        print(note)
    counts = syn.per_class_counts(int(syn.hard_labels().max()) + 1) if len(syn.images) else []
    print(f"{args.artifact}: {len(syn.images)} images {tuple(syn.images.shape[1:])}, {len(counts)} classes, "
          f"storage {syn.storage_bytes} bytes, learned lr {syn.learned_lr}")
    for k in ("method", "method_version", "dataset", "ipc", "seed", "protocol", "distill_seconds"):
        if k in meta:
            print(f"  {k}: {meta[k]}")
    print(f"grid (one row per class): {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
