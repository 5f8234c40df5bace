"""`distill bench`: latency figures against a target's budget (for now, the robot's own)."""

from __future__ import annotations

import argparse


def _bench(args: argparse.Namespace) -> int:
    from distill.bench.device_timings import bench_command

    return bench_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="latency against a target's budget, including timings measured on the robot")
    bench.add_argument("--device-timings", nargs="+", metavar="FILE",
                       help="device_timings.json from a bundle's build_engine.sh (or a trtexec timing log) "
                            "(default: none; needed)")
    bench.add_argument("--target", default="go2", help="target profile whose budget to check against")
    bench.add_argument("--sweep", help="a sweep (students/NAME or its folder) whose table and plot get the robot's "
                       "figures beside this host's, matched by the timed ONNX's sha256 (default: none)")
    bench.set_defaults(func=_bench)
