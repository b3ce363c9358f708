"""The `farm` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cell.params import PARAMS, ParamError


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_param_options(parser: argparse.ArgumentParser) -> None:
    groups = {"model": parser.add_argument_group("model"),
              "workload": parser.add_argument_group("workload"),
              "probe": parser.add_argument_group("probes")}
    for spec in PARAMS.values():
        g = groups[spec.group]
        default = spec.default if spec.default not in (None, []) else "-"
        help_text = f"{spec.help} [default: {default}]"
        if spec.repeatable:
            g.add_argument(_option(spec.name), dest=spec.name, default=None, metavar="SPEC",
                           action="append", help=help_text)
        elif isinstance(spec.default, bool):
            g.add_argument(_option(spec.name), dest=spec.name, default=None,
                           action=argparse.BooleanOptionalAction, help=help_text)
        else:
            g.add_argument(_option(spec.name), dest=spec.name, default=None, metavar="VALUE",
                           help=help_text)


def cmd_simulate(args: argparse.Namespace) -> int:
    from .cell.simulate import format_buddyinfo, run
    raw = {name: getattr(args, name) for name in PARAMS if getattr(args, name) is not None}
    nodes: list = []
    try:
        result = run(raw, node_out=nodes)
    except ParamError as e:
        print(f"farm simulate: error: {_option(e.key)}: {str(e).split(': ', 1)[1]}", file=sys.stderr)
        return 2
    if args.zone_map:
        _write_zone_map(nodes[0], result["params"], args.zone_map)
    if args.json:
        print(json.dumps(result, indent=None if args.compact else 2))
    if args.buddyinfo:
        print(format_buddyinfo(result["buddyinfo"]))
    if not args.json and not args.buddyinfo:
        c = result["counters"]
        allocs = max(c["alloc_ops"], 1)
        frees = max(c["free_ops"], 1)
        p = result["params"]
        print(f"{p['workload']} on {p['memory']}, max_order {p['max_order']}, pageblock_order "
              f"{p['pageblock_order']}, policy {p['policy']}, seed {p['seed']}")
        print(f"  allocations {c['alloc_ops']} (failed {c['alloc_fail']}), frees {c['free_ops']}")
        print(f"  split steps per allocation {c['split_steps'] / allocs:.3f}, merge steps per free "
              f"{c['merge_steps'] / frees:.3f}, orders scanned per allocation {c['orders_scanned'] / allocs:.3f}")
        print(f"  fallbacks: claim {c['fallback_claim']}, steal {c['fallback_steal']}")
        print(f"  {result['timing']['ns_per_op']:.1f} ns per operation")
        print("  " + format_buddyinfo(result["buddyinfo"]))
        for probe in result.get("probes", []):
            print(_probe_line(probe))
    return 0


def _probe_line(p: dict) -> str:
    """One probe's result for the text output: what it obtained of what it asked (sizes for a
    virtio-mem probe), and why the rest failed."""
    from .cell.params import format_size
    got, asked = p["obtained"], p["asked"]
    if p["kind"] == "virtio-mem":
        got, asked = format_size(got), format_size(asked)
    why = ", ".join(f"{k} {v}" for k, v in p["failure_reasons"].items())
    return f"  probe {p['kind']} {p['params']}: {got} of {asked}" + (f" ({why})" if why else "")


def _write_zone_map(node, params: dict, path: str) -> None:
    """The zone map (farm validate --report's figure) of a simulation's final state, as a PNG."""
    import pandas as pd

    from reports.figures import FigureSpec, draw_zone_maps, png_bytes

    from .real.zonemap import model_zone_map
    frame = pd.DataFrame(model_zone_map(node))
    frame.insert(0, "side", f"{params['workload']}, max_order {params['max_order']}, policy {params['policy']}, "
                            f"seed {params['seed']}")
    spec = FigureSpec("zone-map", "", "", frame, draw_zone_maps)
    Path(path).write_bytes(png_bytes(spec.draw()))


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import DEFAULT_SWEEP, SECTIONS
    from .real.trace import TraceError
    from .sweep.plan import SweepError
    if args.only is None and args.trace:
        from .bench import trace_main
        try:
            return trace_main(args.trace, args.out, args.quick)
        except TraceError as e:
            return _fail("bench", str(e))
    if args.only is None and args.sweep:
        from .bench import sweep_main
        try:
            return sweep_main(args.sweep, args.out, args.quick, args.cells)
        except SweepError as e:
            return _fail("bench", str(e))
    sections = SECTIONS if args.only is None else tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = [x for x in sections if x not in SECTIONS]
    if unknown:
        return _fail("bench", f"--only: unknown section {unknown[0]!r}; sections: {', '.join(SECTIONS)}")
    from .bench import main as bench_main
    try:
        return bench_main(args.out, args.quick, sections, args.sweep or DEFAULT_SWEEP, args.trace)
    except (SweepError, TraceError) as e:
        return _fail("bench", str(e))


def _fail(command: str, message: str) -> int:
    print(f"farm {command}: error: {message}", file=sys.stderr)
    return 2


def _default_out(plan) -> Path:
    return Path("runs") / plan.name


def _stored_counts(out: Path, ids: list[str]) -> tuple[int, int]:
    """(ok, error) cells of `ids` stored in `out` (nothing is created)."""
    from .sweep.store import Store
    store = Store(out)
    if not store.exists():
        return 0, 0
    status = store.status()
    ok = sum(1 for i in ids if status.get(i) == "ok")
    return ok, sum(1 for i in ids if status.get(i) == "error")


def _values(values: list) -> str:
    return ", ".join(str(v) if v != "" else '""' for v in values)


def cmd_plan(args: argparse.Namespace) -> int:
    from .sweep.plan import SweepError, load_plan
    from .sweep.store import StoreError
    try:
        plan = load_plan(args.sweep)
        out = Path(args.out) if args.out else _default_out(plan)
        done, errors = _stored_counts(out, [c.id for c in plan.cells])
    except SweepError as e:
        return _fail("plan", str(e))
    except StoreError as e:
        return _fail("plan", str(e))
    info = plan.summary()
    info.update(out=str(out), done=done, errors=errors, missing=len(plan.cells) - done - errors)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"sweep {plan.name} ({plan.file})" + (f": {plan.description}" if plan.description else ""))
    print(f"cells: {len(plan.cells)} ({plan.candidates} combinations x seeds, minus {plan.excluded} "
          f"excluded, {plan.dropped} dropped, {plan.duplicates} duplicates)")
    for key, why in plan.dropped_reasons.items():
        print(f"  dropped {why['cells']} on {key}, e.g. {why['example']}")
    print(f"seeds: {_values(plan.seeds)}")
    width = max((len(k) for k in info["axes"]), default=0)
    print("axes:" + ("" if info["axes"] else " none"))
    for name, values in info["axes"].items():
        tag = "  (zip)" if name in plan.zip else ""
        print(f"  {name:<{width}}  {_values(values)}{tag}")
    if info["base"]:
        print("base: " + ", ".join(f"{k} = {v}" for k, v in info["base"].items()))
    print(f"stored in {out}: {done} done, {errors} errors, {info['missing']} missing")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .sweep.plan import SweepError, load_plan
    from .sweep.store import StoreError
    try:
        plan = load_plan(args.sweep)
    except SweepError as e:
        return _fail("run", str(e))
    if args.workers is not None and args.workers < 1:
        return _fail("run", f"--workers: expected at least 1, got {args.workers}")
    if args.batch_size is not None and args.batch_size < 1:
        return _fail("run", f"--batch-size: expected at least 1, got {args.batch_size}")
    out = Path(args.out) if args.out else _default_out(plan)
    if out.exists() and not out.is_dir():
        return _fail("run", f"{out}: exists and is not a folder")

    def log(message: str) -> None:
        if not args.quiet:
            print(f"farm run: {message}", file=sys.stderr)

    def warn(message: str) -> None:  # an event of the run (a worker process died): even with -q
        print(f"farm run: {message}", file=sys.stderr)

    log(f"sweep {plan.name}: {len(plan.cells)} cells planned, results in {out}")
    try:
        from .sweep.runner import RunnerError, run_sweep
        try:
            s = run_sweep(plan, out, address=args.address, workers=args.workers,
                          rerun_failed=args.rerun_failed, batch_size=args.batch_size,
                          progress=not args.quiet, log=log, warn=warn, verbose=args.verbose)
        except (RunnerError, StoreError) as e:
            return _fail("run", str(e))
    except KeyboardInterrupt:  # outside the runner's own handling (importing Ray, shutting it down)
        print(f"{plan.name}: interrupted; run the same command again to compute the missing cells")
        return 130
    rate = s.computed / s.compute_s if s.compute_s > 0 else 0.0
    if s.status == "nothing to do":
        print(f"{plan.name}: nothing to compute: all {s.planned} cells are stored in {out}"
              + (f" ({s.errors_total} errors; --rerun-failed computes them again)" if s.errors_total else ""))
    elif s.batches == 0:
        print(f"{plan.name}: {s.planned} cells; {s.stored_before} already stored; none computed")
    else:
        print(f"{plan.name}: {s.planned} cells; {s.stored_before} already stored; computed {s.computed} "
              f"({s.errors} errors) in {s.compute_s:.1f} s, {rate:.2f} cells/s on {s.workers} workers, "
              f"{s.nodes} node(s); numba warm-up {s.warm_s:.1f} s; wall {s.wall_s:.1f} s")
        for ex in s.error_examples:
            print(f"  error in cell {ex['cell_id']}: {ex['error']}")
    if s.status == "interrupted":
        missing = s.todo - s.computed
        print(f"interrupted: {missing} cells missing; run the same command again to compute them")
        return 130
    print(f"results: {out} (farm ls {out})")
    if not args.no_report:
        from reports import ReportError, make_report
        try:
            html, md = make_report(str(out))
        except ReportError as e:
            return _fail("run", f"report: {e}")
        print(f"report: {html} (Markdown: {md})")
    return 1 if s.errors_total else 0


def cmd_report(args: argparse.Namespace) -> int:
    from reports import ReportError, make_report
    try:
        html, md = make_report(args.dir, args.out)
    except ReportError as e:
        return _fail("report", str(e))
    print(f"report: {html}")
    print(f"markdown: {md}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from reports import ReportError, make_comparison
    if (args.b is None) == (args.axis is None):
        return _fail("compare", "give either a second results folder B or --axis NAME=V1,V2")
    try:
        table, html, md = make_comparison(args.a, args.b, args.axis, args.out)
    except ReportError as e:
        return _fail("compare", str(e))
    print(table)
    print(f"report: {html}")
    print(f"markdown: {md}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from .sweep.store import StoreError, summarise
    try:
        info = summarise(Path(args.dir))
    except StoreError as e:
        return _fail("ls", str(e))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{args.dir}: {info['rows']} cells stored ({info['ok']} ok, {info['error']} errors), "
          f"{info['columns']} columns ({len(info['params'])} parameters, {info['metrics']} metrics)")
    for name, sw in info["sweeps"].items():
        print(f"  sweep {name} ({sw.get('file', '?')}), model {sw.get('model_version', '?')}: "
              f"{sw['stored']} of {sw['cells']} planned cells stored, {sw['missing']} missing")
    print(f"  model versions: {', '.join(info['model_versions'])}")
    width = max((len(k) for k in info["axes"]), default=0)
    for name, values in info["axes"].items():
        print(f"  {name:<{width}}  {_values(values)}")
    if info["cell_s_total"] is not None:
        print(f"  cell time: {info['cell_s_total']:.1f} s in all, median {info['cell_s_median']:.3f} s")
    for run in info["runs"][-3:]:
        print(f"  run {run['run_id']}: {run['status']}, computed {run['computed']} ({run['errors']} errors) "
              f"in {run['compute_s']:.1f} s on {run['workers']} workers")
    for err in info["errors"][:10]:
        print(f"  error {err['cell_id']}: {err['error']}")
        print(f"    rerun: {err['command']}")
    return 0


# -- real-kernel traces ---------------------------------------------------------------------

def cmd_trace_parse(args: argparse.Namespace) -> int:
    import time

    from .real.trace import TraceError, parse_trace, trace_info, write_table
    t0 = time.perf_counter()
    try:
        table = parse_trace(args.trace, lenient=args.lenient)
        elapsed = time.perf_counter() - t0
        write_table(table, args.out)
    except TraceError as e:
        return _fail("trace", str(e))
    info = trace_info(table)
    extra = [f"{len(info['unknown_events'])} unknown event types" if info["unknown_events"] else "",
             f"{info['malformed']} malformed lines skipped" if info["malformed"] else "",
             f"{info['lost_events']} events lost by the kernel" if info["lost_events"] else ""]
    extra = "".join(f", {x}" for x in extra if x)
    print(f"{args.trace}: {table.num_rows} events on {info['lines']} lines{extra}; parsed in {elapsed:.2f} s "
          f"({table.num_rows / max(elapsed, 1e-9):,.0f} events/s) -> {args.out}")
    return 0


def cmd_trace_summary(args: argparse.Namespace) -> int:
    from .real.trace import TraceError, format_summary, read_table, summarize
    try:
        summary = summarize(read_table(args.trace, lenient=args.lenient))
    except TraceError as e:
        return _fail("trace", str(e))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _replay_errors():
    from .real.captures import CaptureError
    from .real.replay import ReplayError
    from .real.trace import TraceError
    return (ReplayError, TraceError, CaptureError, ParamError)


def cmd_kernel_build(args: argparse.Namespace) -> int:
    from .real.kernel import main as kernel_main
    return kernel_main(args)


def cmd_replay(args: argparse.Namespace) -> int:
    from .real.replay import replay
    try:
        result = replay(args.source, args.mode, until=args.until, until_ts=args.until_ts,
                        probes=args.probe or [], max_order=args.max_order,
                        pageblock_order=args.pageblock_order, policy=args.policy,
                        check_every=args.check_every)
    except _replay_errors() as e:
        return _fail("replay", str(e))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from .cell.simulate import format_buddyinfo
    ev, rs = result["events"], result["replay"]
    print(f"{result['capture']}: {result['mode']} replay of {ev['replayed']} of {ev['total']} events "
          f"(until {result['until'] or result['until_ts'] or 'the end'}), policy {result['policy']}, "
          f"max_order {result['max_order']}, pageblock_order {result['pageblock_order']}")
    print(f"  initial state from {result['initial_state']['source']}; "
          f"{result['timing']['events_per_s'] or 0:,.0f} events/s")
    if "placement_agreement" in rs:
        print(f"  placement agreement {100 * rs['placement_agreement']:.2f}% "
              f"({rs['same_pfn']} of {rs['allocs']} allocations at the kernel's pfn)")
    print("  " + format_buddyinfo(result["state"]["buddyinfo"], result["zone"]["name"]))
    for key, value in result.items():
        if key.startswith("versus_"):
            print(f"  versus {value['phase']}: buddyinfo L1 error {100 * value['buddyinfo_l1']:.2f}%, "
                  f"nr_free_pages error {100 * value['nr_free_err']:.3f}%")
    for p in result.get("probes", []):
        print(_probe_line(p))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .real.validate import format_validation, validate
    out = []
    folders = [d for d in args.dirs if Path(d).is_dir()]
    for d in args.dirs:
        if not Path(d).is_dir():
            print(f"farm validate: skipping {d}: not a capture folder", file=sys.stderr)
    if not folders:
        return _fail("validate", "no capture folder among " + " ".join(args.dirs))
    for folder in folders:
        try:
            v = validate(folder, with_policy=not args.no_policy, zone_maps=bool(args.report))
        except _replay_errors() as e:
            return _fail("validate", str(e))
        out.append(v)
        if not args.json:
            print(format_validation(v), flush=True)
    if args.json:
        print(json.dumps(out, indent=2))
    if args.report:
        from reports.validation import write_validation_report
        index = write_validation_report(out, args.report)
        print(f"report: {index}", file=sys.stderr if args.json else sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farm", description="buddyfarm: parameter sweeps over a model of the Linux buddy allocator")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="run one simulation and print its metrics",
                         description="Run one simulation of the buddy allocator model.")
    _add_param_options(sim)
    out = sim.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the result as one JSON object")
    out.add_argument("--compact", action="store_true", help="with --json: on one line")
    out.add_argument("--buddyinfo", action="store_true",
                     help="print the final state in /proc/buddyinfo format")
    out.add_argument("--zone-map", metavar="PNG",
                     help="draw the first zone's final state (after the probes) as a grid of pageblocks")
    sim.set_defaults(func=cmd_simulate)

    bench = sub.add_parser("bench", help="benchmarks: throughput, reference speed-up, memory, cold start, "
                                         "sweep scaling, trace parse and replay (recorded, never asserted)",
                           description="Run the benchmark suite (every section unless --only) and print "
                                       "one Markdown table per section with the machine's description. "
                                       "Each figure is a median of several runs after a warm-up; ratios "
                                       "are measured in the same run.")
    bench.add_argument("-o", "--out", metavar="FILE.json",
                       help="also write the results as JSON and a Markdown table beside it")
    bench.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    bench.add_argument("--only", metavar="SECTIONS",
                       help="comma-separated: throughput, reference, memory, cold_start, sweep, trace")
    bench.add_argument("--sweep", metavar="SWEEP.toml",
                       help="the sweep of the sweep and cold_start sections [default: sweeps/laptop.toml]; "
                            "alone (without --only): only that sweep, with 1 and then 2 workers")
    bench.add_argument("--cells", type=int, metavar="N", help="with --sweep alone: only the first N cells")
    bench.add_argument("--trace", metavar="TRACE|DIR",
                       help="the trace (or capture folder, also replayed) of the trace section [default: "
                            "../shared/data/kernel-6.1-fragmenter-2560m when present]; alone: only "
                            "parse that trace")
    bench.set_defaults(func=cmd_bench)

    plan = sub.add_parser("plan", help="validate and expand a sweep file; count its cells",
                          description="Validate a sweep file, expand it into cells and count them, "
                                      "and how many are already stored in the output folder.")
    plan.add_argument("sweep", metavar="SWEEP.toml")
    plan.add_argument("--out", metavar="DIR", help="results folder [default: runs/<sweep name>]")
    plan.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    plan.set_defaults(func=cmd_plan)

    run = sub.add_parser("run", help="run a sweep on Ray (embedded, or a cluster with --address)",
                         description="Run the cells of a sweep that are not stored yet, on an embedded "
                                     "local Ray or on a cluster; results are stored as they arrive.")
    run.add_argument("sweep", metavar="SWEEP.toml")
    run.add_argument("--out", metavar="DIR", help="results folder [default: runs/<sweep name>]")
    run.add_argument("--address", metavar="ADDR",
                     help="join the Ray cluster at ADDR (HEAD:6379) [default: $RAY_ADDRESS, else an "
                          "embedded local Ray]")
    run.add_argument("--workers", type=int, metavar="N",
                     help="worker processes (embedded) or at most N cells at once (cluster) "
                          "[default: every core]")
    run.add_argument("--rerun-failed", action="store_true",
                     help="compute the cells stored with status error again")
    run.add_argument("--batch-size", type=int, metavar="N",
                     help="cells per Ray task [default: about 2 s of work per task]")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    run.add_argument("--verbose", action="store_true",
                     help="also print Ray's own messages as Ray words them (such as a dead worker's "
                          "lease, worker and node ids, and each retry of its task)")
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="write the HTML and Markdown report of a results folder",
                         description="Turn a results folder into a self-contained HTML report and a "
                                     "Markdown report with PNG figures.")
    rep.add_argument("dir", metavar="DIR")
    rep.add_argument("-o", "--out", metavar="OUT", help="output folder [default: DIR/report]")
    rep.set_defaults(func=cmd_report)

    cmp_ = sub.add_parser("compare", help="compare two result sets the way compare-kernels does",
                          description="Compare two results folders (cells matched by parameters), or "
                                      "two values of one axis inside a folder: per metric both means, "
                                      "% change (better is positive) and * where the 95% confidence "
                                      "intervals do not overlap.")
    cmp_.add_argument("a", metavar="A")
    cmp_.add_argument("b", metavar="B", nargs="?")
    cmp_.add_argument("--axis", metavar="NAME=V1,V2", help="compare two values of one axis of A")
    cmp_.add_argument("-o", "--out", metavar="OUT", help="output folder")
    cmp_.set_defaults(func=cmd_compare)

    ls = sub.add_parser("ls", help="summarise a results folder",
                        description="Summarise the results stored in a folder.")
    ls.add_argument("dir", metavar="DIR")
    ls.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ls.set_defaults(func=cmd_ls)

    trace = sub.add_parser("trace", help="real-kernel ftrace captures: parse and summarise",
                           description="Read the text of /sys/kernel/tracing/trace or of `trace-cmd "
                                       "report` (plain or gzip): kmem page events, compaction events "
                                       "and trace_marker phases.")
    tsub = trace.add_subparsers(dest="trace_command", required=True)
    tparse = tsub.add_parser("parse", help="parse a trace into a Parquet event table",
                             description="Parse a trace into a Parquet event table, one row per event.")
    tparse.add_argument("trace", metavar="TRACE")
    tparse.add_argument("-o", "--out", required=True, metavar="EVENTS.parquet", help="the table to write")
    tparse.add_argument("--lenient", action="store_true",
                        help="skip and count malformed lines instead of stopping at the first")
    tparse.set_defaults(func=cmd_trace_parse)
    tsum = tsub.add_parser("summary", help="events per type, orders, migratetypes and phases of a trace",
                           description="Summarise a trace (or a table written by `farm trace parse`): "
                                       "events per type, orders and migratetypes of the page events, "
                                       "phases with their events and time span, unknown and malformed "
                                       "counts.")
    tsum.add_argument("trace", metavar="TRACE")
    tsum.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    tsum.add_argument("--lenient", action="store_true",
                      help="skip and count malformed lines instead of stopping at the first")
    tsum.set_defaults(func=cmd_trace_summary)

    rp = sub.add_parser("replay", help="replay a real kernel trace into the model",
                        description="Replay a capture folder (trace + /proc snapshots + kpageflags) or a "
                                    "lone trace into the model: pinned (every event at the kernel's pfn) "
                                    "or by the model's policy (same allocations and frees, placed by the "
                                    "model), then run probes on the state reached.")
    rp.add_argument("source", metavar="DIR|TRACE")
    rp.add_argument("--mode", choices=("pinned", "policy"), default="pinned")
    rp.add_argument("--until", metavar="phase=NAME", help="stop at this trace marker")
    rp.add_argument("--until-ts", type=float, metavar="SECONDS", help="stop after this trace timestamp")
    rp.add_argument("--probe", action="append", metavar="SPEC",
                    help="probe on the replayed state, e.g. compact or hugepages:order=9,count=3000 "
                         "(repeatable, run in order)")
    rp.add_argument("--max-order", type=int, metavar="N",
                    help="largest order of the model [default: the capture's, from the columns of "
                         "buddyinfo; 10 for a lone trace]")
    rp.add_argument("--pageblock-order", type=int, metavar="N",
                    help="[default: the capture's, from pagetypeinfo; 9 for a lone trace]")
    rp.add_argument("--policy", metavar="NAME",
                    help="model policy [default: the one matching the capture's uname]")
    rp.add_argument("--check-every", type=int, default=0, metavar="N",
                    help="check the model's invariants every N events")
    rp.add_argument("--json", action="store_true", help="print the result as one JSON object")
    rp.set_defaults(func=cmd_replay)

    kern = sub.add_parser("kernel", help="build a Linux kernel with another MAX_PAGE_ORDER / pageblock_order")
    ksub = kern.add_subparsers(dest="kernel_command", required=True)
    kb = ksub.add_parser("build", help="build a bzImage from the distribution's source package",
                         description="Fetch linux-source-RELEASE and the cloud kernel's config with apt-get, "
                                     "turn modules off and the virtio drivers on, debug info off, set "
                                     "MAX_PAGE_ORDER (include/linux/mmzone.h) and pageblock_order "
                                     "(include/linux/pageblock-flags.h), and build bzImage into OUT. "
                                     "Long on few cores (about an hour on two).")
    kb.add_argument("--max-page-order", type=int, required=True, metavar="N",
                    help="largest order of the buddy allocator (x86-64: at most 15; stock 10)")
    kb.add_argument("--pageblock-order", type=int, metavar="N",
                    help="[default: the kernel's own, min(HUGETLB_PAGE_ORDER, MAX_PAGE_ORDER) = 9]")
    kb.add_argument("--release", default="6.12", help="Debian source package release [default: 6.12]")
    kb.add_argument("-j", "--jobs", type=int, metavar="N", help="make jobs [default: one per core]")
    kb.add_argument("--prepare-only", action="store_true",
                    help="fetch, patch and configure the tree, without building")
    kb.add_argument("-o", "--out", required=True, metavar="DIR")
    kb.set_defaults(func=cmd_kernel_build)

    val = sub.add_parser("validate", help="judge the model against real kernel captures",
                         description="For each capture folder: pinned replay to phase=mid against the "
                                     "mid snapshots, then compaction, 2 MiB and 1 GiB huge pages as the "
                                     "kernel was asked, against what it obtained.")
    val.add_argument("dirs", nargs="+", metavar="DIR")
    val.add_argument("--json", action="store_true", help="print a JSON list, one object per capture")
    val.add_argument("--no-policy", action="store_true", help="skip the policy replay (placement agreement)")
    val.add_argument("--report", metavar="OUT",
                     help="also write an HTML and Markdown page per capture into OUT (zone maps of the kernel "
                          "and the model at phase=mid, buddyinfo, pageblock types, huge pages) and an index")
    val.set_defaults(func=cmd_validate)

    cap = sub.add_parser("capture", help="record a capture of a real Linux kernel under qemu",
                         description="Boot a kernel under qemu with a busybox initramfs, run a workload "
                                     "with the page allocator traced, and write a capture folder laid out "
                                     "like ../shared/data/* (readable by farm validate).")
    cap.add_argument("--kernel", required=True, metavar="BZIMAGE|DEBIAN-PACKAGE",
                     help="a bzImage, or a Debian package such as linux-image-6.12.*-cloud-amd64-unsigned")
    cap.add_argument("--memory", default="512M", metavar="SIZE", help="guest memory [default: 512M]")
    cap.add_argument("--workload", default="fragmenter", metavar="NAME[:k=v,...]",
                     help="e.g. fragmenter:mb=200,pipes=100 [default: fragmenter]")
    cap.add_argument("--hugepages", metavar="2M=N,1G=N",
                     help="hugetlb pages asked after compaction [default: all memory in 2 MiB pages, "
                          "1 GiB pages per whole GiB]")
    cap.add_argument("--smp", type=int, default=1, metavar="N", help="guest cpus [default: 1]")
    cap.add_argument("--timeout", type=float, default=1800, metavar="SECONDS", help="[default: 1800]")
    cap.add_argument("--trace-buffer-mb", type=int, metavar="MB",
                     help="ftrace buffer per cpu [default: an eighth of the memory]")
    cap.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                     help="auto: kvm when /dev/kvm works, else tcg [default: auto]")
    cap.add_argument("--append", metavar="ARGS", help="extra kernel command line arguments")
    cap.add_argument("--virtio-mem", metavar="SIZE[,block=SIZE][,online=movable|normal][,request=SIZE]",
                     help="add a virtio-mem device of SIZE (plugged before the before snapshot; --memory stays "
                          "the boot memory) and after mid ask it over QMP for request [default: 0] bytes, "
                          "then snapshot phase unplugged instead of compacted/after. block: the device's "
                          "block size [default: qemu's, 2M]; online: the zone hotplugged memory goes to "
                          "[default: movable]")
    cap.add_argument("-o", "--out", required=True, metavar="DIR", help="the capture folder to write")
    cap.set_defaults(func=lambda args: __import__("farm.real.capture", fromlist=["main_args"]).main_args(args))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
