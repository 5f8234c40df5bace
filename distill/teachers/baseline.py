"""`distill teacher baseline --name NAME`: a uniform random policy on a recipe's evaluation goals.

A curve says little without its floor: on the reacher a random arm "reaches" 30–50% of goals, and a
Go2 that falls over early may still end near a close goal. The random policy is evaluated on the
goals of the curve's rows and of the final evaluation (the same keys and episode counts the trainer
uses), and the figures are written beside the curve as `random_baseline.csv`.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from distill.atomic import write_text_atomic
from distill.envs import make_env
from distill.paths import teachers_dir
from distill.rollouts import EpisodeMetrics, evaluate_policy, uniform_random
from distill.teachers import crl
from distill.teachers.train_cli import config_for
from distill.teachers.trainer import curve_eval_key, final_eval_key

BASELINE_FILE = "random_baseline.csv"
FIELDS = ("goals", "episodes", "episode_length", "success", "time_at_goal", "final_success", "final_distance")


@dataclass(frozen=True)
class RandomBaseline:
    """The random policy's figures on the curve's goals and on the final evaluation's goals."""

    curve: EpisodeMetrics
    final: EpisodeMetrics

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        for goals, m in (("curve", self.curve), ("final", self.final)):
            writer.writerow({"goals": goals, **{k: round(v, 5) if isinstance(v, float) else v
                                                for k, v in m.as_dict().items()}})
        return buf.getvalue()


def random_baseline(cfg: crl.CRLConfig) -> RandomBaseline:
    env = make_env(cfg.env)
    policy = uniform_random(env.spec.action_dim)
    return RandomBaseline(
        curve=evaluate_policy(env, policy, None, curve_eval_key(cfg), cfg.eval_episodes),
        final=evaluate_policy(env, policy, None, final_eval_key(cfg), cfg.eval_episodes),
    )


def baseline_command(args: argparse.Namespace) -> int:
    cfg = config_for(args.name, args.config)
    out_dir = Path(args.out) if args.out else teachers_dir() / args.name
    baseline = random_baseline(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / BASELINE_FILE, baseline.csv_text())
    for goals, m in (("curve", baseline.curve), ("final", baseline.final)):
        print(f"random policy on {cfg.env}, {goals} goals: success {m.success:.3f}, time at goal "
              f"{m.time_at_goal:.1f}/{m.episode_length}, final-step success {m.final_success:.3f}, "
              f"final distance {m.final_distance:.3f} ({m.episodes} episodes)")
    print(f"written to {out_dir / BASELINE_FILE}")
    return 0
