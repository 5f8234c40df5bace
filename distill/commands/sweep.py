"""`distill sweep`: several student presets from one teacher, latency against success (`make bench`)."""

from __future__ import annotations

import argparse


def _sweep(args: argparse.Namespace) -> int:
    from distill.pipeline import load_dagger_config
    from distill.sweep.records import render_sweep
    from distill.sweep.run import SweepRequest, run_sweep

    presets = tuple(p.strip() for p in args.presets.split(",") if p.strip())
    sweep = run_sweep(SweepRequest(teacher=args.teacher, presets=presets, config=load_dagger_config(args.config),
                                   name=args.name, env=args.env, target=args.target, random_init=args.random_init,
                                   latency_calls=args.latency_calls))
    print(render_sweep(sweep))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from distill.sweep import DEFAULT_PRESETS

    sweep = sub.add_parser("sweep", help="distil several student presets and set latency against success",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sweep.add_argument("--teacher", required=True, help="zoo name (teachers/NAME) or teacher folder")
    sweep.add_argument("--presets", default=",".join(DEFAULT_PRESETS), help="comma-separated student presets")
    sweep.add_argument("--config", help="TOML with a [distill] table, shared by every preset's run")
    sweep.add_argument("--name", help="sweep name (default sweep-<teacher>); runs are NAME-<preset>")
    sweep.add_argument("--env", help="env to distil in (default: the teacher's), e.g. point_u_maze_blind")
    sweep.add_argument("--target", default="go2", help="target profile (benchmarks/targets/NAME.toml)")
    sweep.add_argument("--latency-calls", type=int, default=2000, help="timed calls per file and backend")
    sweep.add_argument("--random-init", action="store_true",
                       help="random teacher weights: systems benchmarks only, success is meaningless")
    sweep.set_defaults(func=_sweep)
