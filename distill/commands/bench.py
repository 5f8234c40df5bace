"""`distill bench`: latency figures against a target's budget (for now, the robot's own), and
joining them to a sweep's table."""

from __future__ import annotations

import argparse
from pathlib import Path

from distill.errors import DistillError


def bench_command(args: argparse.Namespace) -> int:
    from distill.bench.device_timings import device_verdict, load_device_timings
    from distill.bench.targets import load_target

    if not args.device_timings:
        raise DistillError("nothing to do; pass --device-timings FILE (the device_timings.json build_engine.sh wrote)")
    target = load_target(args.target)
    timings = [load_device_timings(name) for name in args.device_timings]
    for name, timing in zip(args.device_timings, timings):
        print(device_verdict(timing, target, Path(name)).line())
    if args.sweep:
        from distill.paths import project_root, students_dir
        from distill.sweep.files import write_sweep
        from distill.sweep.records import SweepReport, attach_device_timings, render_sweep

        folder = Path(args.sweep) if Path(args.sweep).is_dir() else students_dir() / args.sweep
        sweep, unmatched = attach_device_timings(SweepReport.load(folder), timings)
        for t in unmatched:
            print(f"no file of sweep {sweep.name} has sha256 {t.model_sha256[:12] or '(none recorded)'}… "
                  f"(bundle {t.bundle or '?'}): not added to its table")
        write_sweep(sweep, folder, project_root() / "benchmarks" / "results")
        print(render_sweep(sweep))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="latency against a target's budget, including timings measured on the robot")
    bench.add_argument("--device-timings", nargs="+", metavar="FILE",
                       help="device_timings.json from a bundle's build_engine.sh (or a trtexec timing log) "
                            "(default: none; needed)")
    bench.add_argument("--target", default="go2", help="target profile whose budget to check against")
    bench.add_argument("--sweep", help="a sweep (students/NAME or its folder) whose table and plot get the robot's "
                       "figures beside this host's, matched by the timed ONNX's sha256 (default: none)")
    bench.set_defaults(func=bench_command)
