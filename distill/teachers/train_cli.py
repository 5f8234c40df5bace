"""`distill teacher train --name NAME`: (re)train a zoo teacher from the config in its teacher.toml."""

from __future__ import annotations

import argparse
import shutil
import tomllib
from pathlib import Path

import jax

from distill.envs import make_env
from distill.errors import DistillError
from distill.paths import project_root, teachers_dir
from distill.teachers import checkpoint, crl
from distill.teachers.trainer import CURVE_FILE, evaluate_actor, export_teacher, train


def config_for(name: str, config_path: str | None) -> crl.CRLConfig:
    """The [training.config] table of teachers/NAME/teacher.toml, or of --config."""
    path = Path(config_path) if config_path else teachers_dir() / name / checkpoint.TOML_NAME
    if not path.is_file():
        raise DistillError(f"no training config for {name!r}: {path} is missing; "
                           "write a [training.config] table (see teachers/reacher_8/teacher.toml)")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DistillError(f"{path}: invalid TOML ({exc})") from None
    table = (doc.get("training") or {}).get("config")
    if not table:
        raise DistillError(f"{path}: no [training.config] table; add one with at least env and depths")
    return crl.CRLConfig.from_dict(table, f"{path} [training.config]")


def train_command(args: argparse.Namespace) -> int:
    cfg = config_for(args.name, args.config)
    out_dir = Path(args.out) if args.out else teachers_dir() / args.name
    run_dir = project_root() / "runs" / "teachers" / args.name
    print(f"training {args.name}: env {cfg.env}, actor depth {cfg.actor_depth}, critic depth "
          f"{cfg.critic_depth}, width {cfg.width}, {cfg.iterations} iterations x "
          f"{cfg.env_steps_per_iteration} env steps, {cfg.sgd_steps} sgd steps each; checkpoints in {run_dir}")
    ts, _, wall = train(cfg, run_dir, resume=args.resume)
    env = make_env(cfg.env)
    final = evaluate_actor(env, ts.actor, jax.random.PRNGKey(cfg.seed + 2), cfg.eval_episodes)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / CURVE_FILE, out_dir / CURVE_FILE)
    export_teacher(cfg, ts, out_dir, args.name, wall, final, curve_file=CURVE_FILE)
    print(f"{args.name}: success {final.success:.3f}, time at goal {final.time_at_goal:.1f}/"
          f"{final.episode_length}, final-step success {final.final_success:.3f} "
          f"({final.episodes} episodes); {wall / 60:.1f} min; written to {out_dir}")
    return 0
