"""`distill run`: the whole flow for one teacher (what `make distill` calls)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from distill.pipeline import run_command

    return run_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="rollouts -> DAgger -> student -> ONNX -> benchmark report")
    run.add_argument("--teacher", required=True, help="zoo name (teachers/NAME) or teacher folder")
    run.add_argument("--run", help="run name (default: <teacher>-<preset>)")
    run.add_argument("--config", help="TOML with [distill] overrides")
    run.add_argument("--preset", help="student preset from students/presets.toml (default: its `default`)")
    run.add_argument("--env", help="env to distil in (default: the teacher's); its teacher observation must be "
                     "the teacher's, its student observation may differ")
    run.add_argument("--random-init", action="store_true",
                     help="random teacher weights: systems benchmarks only, success is meaningless")
    run.set_defaults(func=_run)
