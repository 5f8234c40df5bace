"""`distill teacher train --name NAME`: (re)train a zoo teacher from the config in its teacher.toml."""

from __future__ import annotations

import argparse
import logging
import shutil
import tomllib
from pathlib import Path

from distill.config import TRAINING_CONFIG_TABLE, table_at
from distill.envs import make_env
from distill.errors import DistillError
from distill.paths import project_root, teachers_dir
from distill.teachers import checkpoint, crl
from distill.teachers.trainer import (
    CURVE_FILE,
    evaluate_actor,
    export_teacher,
    final_eval_key,
    train,
)

log = logging.getLogger(__name__)


def config_for(name: str, config_path: str | None) -> crl.CRLConfig:
    """The [training.config] table of teachers/NAME/teacher.toml, or of --config (which replaces it)."""
    path = Path(config_path) if config_path else teachers_dir() / name / checkpoint.TOML_NAME
    if not path.is_file():
        raise DistillError(f"no training config for {name!r}: {path} is missing; "
                           f"write a [{TRAINING_CONFIG_TABLE}] table (see teachers/reacher_8/teacher.toml)")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DistillError(f"{path}: invalid TOML ({exc})") from None
    table = table_at(doc, TRAINING_CONFIG_TABLE)
    if not isinstance(table, dict) or not table:
        raise DistillError(f"{path}: no [{TRAINING_CONFIG_TABLE}] table; add one with at least env and depths")
    return crl.CRLConfig.from_dict(table, f"{path} [{TRAINING_CONFIG_TABLE}]")


def training_run_dir(name: str) -> Path:
    """Where a teacher's training checkpoints, curve and run.log live (git-ignored)."""
    return project_root() / "runs" / "teachers" / name


def train_command(args: argparse.Namespace) -> int:
    cfg = config_for(args.name, args.config)
    out_dir = Path(args.out) if args.out else teachers_dir() / args.name
    run_dir = training_run_dir(args.name)
    log.info(f"training {args.name}: env {cfg.env}, actor depth {cfg.actor_depth}, critic depth "
             f"{cfg.critic_depth}, width {cfg.width}, {cfg.iterations} iterations x "
             f"{cfg.env_steps_per_iteration} env steps, {cfg.sgd_steps} sgd steps each; checkpoints in {run_dir}")
    ts, _, wall = train(cfg, run_dir, resume=args.resume)
    env = make_env(cfg.env)
    final = evaluate_actor(env, ts.actor, final_eval_key(cfg), cfg.eval_episodes)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / CURVE_FILE, out_dir / CURVE_FILE)
    export_teacher(cfg, ts, out_dir, args.name, wall, final, curve_file=CURVE_FILE)
    log.info(f"{args.name}: success {final.success:.3f}, time at goal {final.time_at_goal:.1f}/"
             f"{final.episode_length}, final-step success {final.final_success:.3f} "
             f"({final.episodes} episodes); {wall / 60:.1f} min; written to {out_dir}")
    return 0
