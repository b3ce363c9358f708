"""The `farm` command."""

from __future__ import annotations

import argparse
import json
import sys

from .params import PARAMS, ParamError


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_param_options(parser: argparse.ArgumentParser) -> None:
    groups = {"model": parser.add_argument_group("model"),
              "workload": parser.add_argument_group("workload")}
    for spec in PARAMS.values():
        g = groups[spec.group]
        default = spec.default if spec.default not in (None, []) else "-"
        help_text = f"{spec.help} [default: {default}]"
        if isinstance(spec.default, bool):
            g.add_argument(_option(spec.name), dest=spec.name, default=None,
                           action=argparse.BooleanOptionalAction, help=help_text)
        else:
            g.add_argument(_option(spec.name), dest=spec.name, default=None, metavar="VALUE",
                           help=help_text)


def cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import format_buddyinfo, run
    raw = {name: getattr(args, name) for name in PARAMS if getattr(args, name) is not None}
    try:
        result = run(raw)
    except ParamError as e:
        print(f"farm simulate: error: {_option(e.key)}: {str(e).split(': ', 1)[1]}", file=sys.stderr)
        return 2
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
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main
    return bench_main(args.out, args.quick)


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
    sim.set_defaults(func=cmd_simulate)

    bench = sub.add_parser("bench", help="measure model throughput (recorded, never asserted)")
    bench.add_argument("-o", "--out", metavar="FILE.json",
                       help="also write the results as JSON and a Markdown table beside it")
    bench.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
