"""`distill ship`: one archive to run a student on a robot."""

from __future__ import annotations

import argparse


def _ship(args: argparse.Namespace) -> int:
    from distill.ship.command import ship_command

    return ship_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    ship = sub.add_parser("ship", help="bundle a run's student for a robot (ONNX, deploy.yaml, scripts, replay rows)")
    ship.add_argument("run", help="run name (students/RUN) or a run folder")
    ship.add_argument("--target", default="go2", help="target profile (benchmarks/targets/NAME.toml)")
    ship.add_argument("--precision", default="fp16", choices=("fp16", "int8", "fp32"),
                      help="which exported ONNX to ship (default: fp16)")
    ship.add_argument("--force", action="store_true",
                      help="ship a student that misses the budget or the readiness check; deploy.yaml records why")
    ship.add_argument("--out", help="archive path (default students/RUN/ship/RUN-TARGET-PRECISION.tar.gz)")
    ship.set_defaults(func=_ship)
