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
ENGINES = ("mjx", "mujoco")


def _engines(args: argparse.Namespace) -> int:
    from distill.pipeline import load_dagger_config
    from distill.policy_eval import evaluate_engines

    cfg = load_dagger_config(args.config) if args.config else None
    result = evaluate_engines(args.path, args.env, args.episodes, args.seed, cfg, envs=args.envs)
    rows = []
    for condition, r in result.rows:
        rows.append([f"MJX, {condition}", *_figures(r.mjx), "—"])
        rows.append([f"MuJoCo (C), {condition}", *_figures(r.mujoco),
                     (f"{r.time_at_goal_diff:+.1f} ± {r.time_at_goal_se:.1f} steps, final-step "
                     f"{r.final_success_diff:+.3f} ± {r.final_success_se:.3f}"
                     f" ({'within' if r.within_sampling_error else 'OUTSIDE'} 3 SE)")])
    print(format_table((*HEADER, "MuJoCo − MJX (± SE, paired)"), rows))
    print(f"{result.path.name}: same goals and starts in both engines; MuJoCo ran "
          f"{result.rows[0][1].mujoco_steps_per_s:.0f} control steps/s (one env, policy included)")
    return 0


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
    if args.episodes < 1 or (args.envs is not None and args.envs < 1):
        raise DistillError(f"--episodes and --envs must be >= 1, got {args.episodes} and {args.envs}")
    if args.engine == "mujoco":
        return _engines(args)
    if args.config:
        raise DistillError("--config (perturbations) goes with --engine mujoco; `distill run` reports MJX under them")
    result = evaluate_saved(args.path, args.env, args.episodes, args.seed, envs=args.envs or EVAL_ENVS,
                            backend=args.backend)
    print(format_table(HEADER, [[result.label, *_figures(result.metrics)]]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="success in MJX of a saved student or ONNX file, or re-check a run",
                        description="distill eval PATH --env ENV [--episodes N] [--seed S] [--engine mujoco "
                                    "[--config FILE]], or distill eval --run RUN (exit 1 if a figure differs from "
                                    "the report)")
    ev.add_argument("path", nargs="?", help="student folder (student.toml + weights) or .onnx file")
    ev.add_argument("--env", help="env to evaluate PATH in (default: none; required with PATH)")
    ev.add_argument("--backend", default=None,
                    help="physics backend for PATH (default: the env's own; spring for the paper's tasks)")
    ev.add_argument("--episodes", type=int, default=EVAL_EPISODES, help="episodes, one per env")
    ev.add_argument("--envs", type=int, default=None,
                    help=f"envs stepped at once in MJX (default: {EVAL_ENVS}); with --engine mujoco and --config, the "
                         "config's evaluation batch unless given; the run's [distill] envs reproduces its figures exactly")
    ev.add_argument("--seed", type=int, default=0,
                    help="goals: those a `distill run` with this [distill] seed evaluates on")
    ev.add_argument("--engine", choices=ENGINES, default="mjx",
                    help="mujoco: run the .onnx in plain MuJoCo (C engine, one env, a controller's loop) beside MJX "
                         "on the same goals (sim2sim)")
    ev.add_argument("--config", help="with --engine mujoco: a [distill] TOML whose noise / delay / stale-observation "
                                     "keys (and episode_length) apply in both engines (default: none)")
    ev.add_argument("--run", help="re-evaluate a finished run (name under students/, or its folder): its student "
                                  "and every ONNX variant on the report's goals, compared with the recorded "
                                  "figures (default: evaluate PATH instead)")
    ev.set_defaults(func=_eval)
