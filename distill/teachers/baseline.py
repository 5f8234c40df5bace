"""`distill teacher baseline --name NAME`: a uniform random policy on a recipe's evaluation goals.

A curve says little without its floor: on the reacher a random arm "reaches" 30–50% of goals. The
random policy is evaluated on the goals of the curve's rows and of the final evaluation (the same
keys and episode counts the trainer uses), and the figures are written beside the curve as
`random_baseline.csv`. Beside the four success figures goes the random policy's *reach*: how far
the achieved goal (e.g. the base's xy) gets from where its episode started. CRL learns only from
goals its own trajectories reach, so a reach far below the goal distances and the success radius
says that exploration, not the network, is what a teacher lacks.
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
from distill.rollouts import (
    EpisodeMetrics,
    first_episode_metrics,
    run_episodes,
    uniform_random,
)
from distill.teachers import crl
from distill.teachers.train_cli import config_for
from distill.teachers.trainer import Reach, curve_eval_key, final_eval_key, reach

BASELINE_FILE = "random_baseline.csv"
FIELDS = ("goals", "episodes", "episode_length", "success", "time_at_goal", "final_success", "final_distance",
          "reach_mean", "reach_p95")


@dataclass(frozen=True)
class RandomBaseline:
    """The random policy's figures on the curve's goals and on the final evaluation's goals."""

    curve: EpisodeMetrics
    final: EpisodeMetrics
    curve_reach: Reach
    final_reach: Reach

    def rows(self) -> list[tuple[str, EpisodeMetrics, Reach]]:
        return [("curve", self.curve, self.curve_reach), ("final", self.final, self.final_reach)]

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        for goals, m, r in self.rows():
            figures = {**m.as_dict(), "reach_mean": r.mean, "reach_p95": r.p95}
            writer.writerow({"goals": goals, **{k: round(v, 5) if isinstance(v, float) else v
                                                for k, v in figures.items()}})
        return buf.getvalue()


def random_baseline(cfg: crl.CRLConfig) -> RandomBaseline:
    env = make_env(cfg.env)
    policy = uniform_random(env.spec.action_dim)
    length = env.spec.episode_length
    results = []
    for key in (curve_eval_key(cfg), final_eval_key(cfg)):
        steps = run_episodes(env, policy, None, key, cfg.eval_episodes, length)
        results.append((first_episode_metrics(steps, length), reach(steps, env.spec.goal_indices)))
    (curve, curve_reach), (final, final_reach) = results
    return RandomBaseline(curve, final, curve_reach, final_reach)


def baseline_command(args: argparse.Namespace) -> int:
    cfg = config_for(args.name, args.config)
    out_dir = Path(args.out) if args.out else teachers_dir() / args.name
    baseline = random_baseline(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / BASELINE_FILE, baseline.csv_text())
    for goals, m, r in baseline.rows():
        print(f"random policy on {cfg.env}, {goals} goals: success {m.success:.3f}, time at goal "
              f"{m.time_at_goal:.1f}/{m.episode_length}, final-step success {m.final_success:.3f}, "
              f"final distance {m.final_distance:.3f}, reach {r.mean:.3f} (p95 {r.p95:.3f}) "
              f"({m.episodes} episodes)")
    print(f"written to {out_dir / BASELINE_FILE}")
    return 0
