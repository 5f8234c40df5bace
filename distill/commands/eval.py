"""`distill eval`: success in MJX of a saved student or ONNX file, or the re-check of a run's report."""

from __future__ import annotations

import argparse
import logging

from distill.commands import format_table
from distill.errors import DistillError

EVAL_EPISODES = 256
"""As `distill run` evaluates (DaggerConfig.eval_episodes; a test holds the two equal)."""
EVAL_ENVS = 128
"""Envs stepped at once, as `distill run` does by default (DaggerConfig.envs; a test holds the two equal)."""

log = logging.getLogger(__name__)


def _figures(m) -> list[str]:
    return [f"{m.success:.3f}", f"{m.time_at_goal:.1f} / {m.episode_length}", f"{m.final_success:.3f}",
            f"{m.final_distance:.4f}", str(m.episodes)]


HEADER = ("policy", "success", "time at goal", "final-step", "final distance", "episodes")


def _eval(args: argparse.Namespace) -> int:
    from distill.policy_eval import evaluate_run, evaluate_saved

    if args.run:
        if args.path or args.env:
            raise DistillError("--run re-checks a run on its own env and goals: give it without PATH or --env")
        results = evaluate_run(args.run)
        rows = [[r.label, *_figures(r.metrics), "same" if r.reproduced else f"differs: report has {_figures(r.recorded)}"]
                for r in results]
        print(format_table((*HEADER, "vs report"), rows))
        if all(r.reproduced for r in results):
            return 0
        log.warning("some figures differ from the run's report (see the last column)")
        return 1
    if not args.path or not args.env:
        raise DistillError("give PATH (a student folder or .onnx file) with --env ENV, or --run RUN")
    if args.episodes < 1 or args.envs < 1:
        raise DistillError(f"--episodes and --envs must be >= 1, got {args.episodes} and {args.envs}")
    result = evaluate_saved(args.path, args.env, args.episodes, args.seed, envs=args.envs, backend=args.backend)
    print(format_table(HEADER, [[result.label, *_figures(result.metrics)]]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="success in MJX of a saved student or ONNX file, or re-check a run",
                        description="distill eval PATH --env ENV [--episodes N] [--seed S], or "
                                    "distill eval --run RUN (exit 1 if a figure differs from the report)")
    ev.add_argument("path", nargs="?", help="student folder (student.toml + weights) or .onnx file")
    ev.add_argument("--env", help="env to evaluate PATH in (default: none; required with PATH)")
    ev.add_argument("--backend", default=None,
                    help="physics backend for PATH (default: the env's own; spring for the paper's tasks)")
    ev.add_argument("--episodes", type=int, default=EVAL_EPISODES, help="episodes, one per env")
    ev.add_argument("--envs", type=int, default=EVAL_ENVS,
                    help="envs stepped at once; the run's [distill] envs reproduces its figures exactly")
    ev.add_argument("--seed", type=int, default=0,
                    help="goals: those a `distill run` with this [distill] seed evaluates on")
    ev.add_argument("--run", help="re-evaluate a finished run (name under students/, or its folder): its student "
                                  "and every ONNX variant on the report's goals, compared with the recorded "
                                  "figures (default: evaluate PATH instead)")
    ev.set_defaults(func=_eval)
