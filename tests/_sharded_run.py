"""Run by tests/test_sharding.py in a fresh process, whose jax sees several devices (forced host
devices, or processes joined by jax.distributed): collects or labels and saves what it got.

    python tests/_sharded_run.py labels OUT.npz
    python tests/_sharded_run.py collect OUT.npz
    python tests/_sharded_run.py dagger RUN_DIR        (one process of a multi-process run)
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

from distill import labels, sharding

ROUNDS = ((1.0, 0), (0.5, 1), (0.0, 2))
ENVS = 8


def label_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(300, 13)).astype(np.float32)
    obs[:, 10:] = rng.normal(size=(5, 3)).astype(np.float32)[rng.integers(0, 5, 300)]
    return obs, np.tanh(rng.normal(size=(300, 2))).astype(np.float32)


def small_config():
    from distill.dagger import DaggerConfig

    return DaggerConfig(envs=ENVS, eval_episodes=8, label_chunk=128)


def run_labels(out: Path) -> None:
    from distill.teachers import load_teacher

    teacher = load_teacher("reacher_8")
    obs, action = label_inputs()
    mesh = sharding.env_mesh(ENVS)
    actor = labels.label_actor(teacher, obs, chunk=128, mesh=mesh)
    q = labels.critic_values(teacher, obs, action, chunk=128, mesh=mesh)
    np.savez(out, mean=actor.mean, log_std=actor.log_std, action=actor.action, q=q, devices=mesh.devices.size)


def run_collect(out: Path) -> None:
    from distill.dagger import collect_round
    from distill.envs import make_env
    from distill.students.memory import build_student
    from distill.students.presets import get_preset
    from distill.teachers import load_teacher

    env, teacher = make_env("reacher"), load_teacher("reacher_8")
    student = build_student(get_preset("mlp_2x64"), 13, 2, seed=3)
    got = {}
    for beta, k in ROUNDS:
        for name, value in collect_round(env, teacher, student, beta, small_config(), k).columns.items():
            got[f"{k}/{name}"] = value
    np.savez(out, **got)


def run_dagger_process(run_dir: Path) -> None:
    """One process of a multi-process DAgger run, teacher-driven every round (so the rows do not
    depend on the student fitted in between)."""
    from dataclasses import replace

    from distill.dagger import behaviour_cloning, run_dagger
    from distill.envs import make_env
    from distill.students.presets import get_preset, load_train_config
    from distill.teachers import load_teacher

    sharding.initialize_distributed()
    cfg = replace(behaviour_cloning(small_config()), rounds=2, heldout_envs=4, heldout_rows=64)
    preset = get_preset("mlp_2x64")
    train = replace(load_train_config(preset.name), epochs=1, min_steps=10)
    result = run_dagger(make_env("reacher"), load_teacher("reacher_8"), preset, train, cfg,
                        run_dir / "rollouts.h5", run_dir / "student", lineage={"test": "sharding"})
    print(f"process {jax.process_index()}: result {'none' if result is None else len(result.rounds)}")


if __name__ == "__main__":
    what, where = sys.argv[1], Path(sys.argv[2])
    {"labels": run_labels, "collect": run_collect, "dagger": run_dagger_process}[what](where)
