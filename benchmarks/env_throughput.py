"""Env throughput: batched env steps per second and compile times on whatever device jax has.

How many env steps per second a device gives decides how long teacher training, DAgger rollouts
and success evaluations take. The paper's tasks run on Brax's pipelines: name them `env:backend`
(`humanoid_u_maze:spring`, `humanoid_u_maze:mjx`) to time both physics of one task in the same
run; the table then gives spring's rate as a share of mjx's at each batch. Each cell is one env at one batch size: a jitted `lax.scan` of
`--steps` vmapped `env.step` calls with uniform random actions (auto-resets included), compiled
ahead of time (that compile time is recorded), run once untimed, then timed until its time budget
is spent. steps/s = batch x steps / median call time. For the Go2 the script also checks, in
MuJoCo's C engine, how far the one-iteration Newton solve drifts from a converged one.

    python benchmarks/env_throughput.py                  # writes results/env_throughput_<device>.*
    python benchmarks/env_throughput.py --quick          # reacher and go2, batches 128 and 1,024
    python benchmarks/env_throughput.py --envs humanoid_u_maze:spring,humanoid_u_maze:mjx --batches 128
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from distill.atomic import write_text_atomic
from distill.bench.jax_timing import compile_timed, run_context
from distill.envs import make_env
from distill.envs.base import GoalEnv, MjxGoalEnv
from distill.errors import DistillError
from distill.progress import progress_bar
from distill.runlog import console_logging

RESULTS = Path(__file__).resolve().parent / "results"
ENVS = ("reacher", "ant:spring", "ant:mjx", "humanoid_u_maze:spring", "humanoid_u_maze:mjx", "go2",
        "go2_obstacles")
"""Mazes add wall contacts; time others with `--envs ant_big_maze:spring,...`."""
QUICK_ENVS = ("reacher", "go2")
BATCHES = (128, 1024, 4096)
QUICK_BATCHES = (128, 1024)

GO2_SOLVER_NOTE = (
    "go2: Newton, 1 iteration, 5 line-search iterations, pyramidal cone, 0.004 s x 5 (Menagerie's "
    "MJX Go2 and mujoco_playground's Go1 use the same solve). Only the four foot spheres touch the "
    "floor (4 contacts, 28 constraint rows with the 12 joint limits); the legs and trunk draw but "
    "never collide, which is enough on flat ground, and the fall check ends an episode before a "
    "knee would need the floor. Joint friction loss is left out (12 more rows). go2_obstacles "
    "adds 3 trunk spheres and 4 boxes; MJX's `max_geom_pairs` keeps the 8 nearest of the 28 "
    "sphere-box pairs (60 rows instead of 140), enough as the robot touches one box at a time."
)


@dataclass(frozen=True)
class Cell:
    env: str
    batch: int
    steps_per_call: int
    compile_s: float
    compile_cpu_s: float
    calls: int
    median_s: float
    steps_per_s: float


def physics_summary(env: GoalEnv) -> dict:
    """Solver settings and problem size (contact slots, constraint rows) of an env's physics."""
    if isinstance(env, MjxGoalEnv):
        model, opt = env.mjx_model, env.mj_model.opt
    else:  # a Brax System is an MJX model; spring reads its contacts with MJX's collision code
        model, opt = env.sys, env.sys.opt
    data = mjx.make_data(model)
    impl = getattr(data, "_impl", data)
    spring = env.backend == "spring"
    return {
        "engine": "Brax spring" if spring else ("MJX" if isinstance(env, MjxGoalEnv) else "Brax mjx"),
        "solver": "spring impulses" if spring else mujoco.mjtSolver(int(opt.solver)).name.removeprefix("mjSOL_"),
        "iterations": int(opt.iterations),
        "ls_iterations": int(opt.ls_iterations),
        "cone": mujoco.mjtCone(int(opt.cone)).name.removeprefix("mjCONE_").lower(),
        "timestep": float(opt.timestep),
        "n_frames": env.n_frames,
        "nv": int(env.mj_model.nv),
        "contacts": int(impl.contact.dist.shape[0]),
        "constraint_rows": 0 if spring else int(impl.efc_J.shape[0]),
    }


def parse_env(entry: str) -> tuple[str, str | None]:
    name, _, backend = entry.partition(":")
    return name, backend or None


def rollout_fn(env: GoalEnv, batch: int, steps: int):
    """(states, key) -> states after `steps` random-action steps of every env in the batch."""
    step = jax.vmap(env.step)

    def body(states, key):
        actions = jax.random.uniform(key, (batch, env.spec.action_dim), minval=-1.0, maxval=1.0)
        return step(states, actions), None

    def rollout(states, key):
        return jax.lax.scan(body, states, jax.random.split(key, steps))[0]

    return rollout


def batched_start(env: GoalEnv, reset, batch: int):
    """`batch` copies of one reset, each with its own key so that later resets differ: one reset
    compile per env instead of one per batch size."""
    state = reset(jax.random.PRNGKey(batch))
    states = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (batch, *x.shape)), state)
    return states.replace(key=jax.random.split(jax.random.PRNGKey(batch + 1), batch))


def bench_cell(
    env: GoalEnv, reset, batch: int, steps: int, budget_s: float, min_calls: int, label: str
) -> Cell:
    states = batched_start(env, reset, batch)
    key = jax.random.PRNGKey(0)
    compiled, compile_s, compile_cpu_s = compile_timed(rollout_fn(env, batch, steps), states, key)
    states = jax.block_until_ready(compiled(states, key))
    times: list[float] = []
    while len(times) < min_calls or sum(times) < budget_s:
        key = jax.random.fold_in(key, len(times))
        start = time.perf_counter()
        states = jax.block_until_ready(compiled(states, key))
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return Cell(
        label,
        batch,
        steps,
        round(compile_s, 2),
        round(compile_cpu_s, 2),
        len(times),
        round(median, 4),
        round(batch * steps / median, 1),
    )


def go2_solver_check(seconds: float = 5.0) -> list[dict]:
    """Base-position drift of the Go2 under random actions for a few solver settings, against a
    converged solve (100 iterations, 50 line-search), in MuJoCo's C engine with the same model."""
    from distill.envs.go2 import HOME_POSE, N_FRAMES, build_model

    def trajectory(iterations: int, ls_iterations: int) -> np.ndarray:
        m = build_model()
        m.opt.iterations, m.opt.ls_iterations = iterations, ls_iterations
        d = mujoco.MjData(m)
        d.qpos[7:] = HOME_POSE
        rng = np.random.default_rng(0)
        out = []
        for _ in range(int(seconds / (m.opt.timestep * N_FRAMES))):
            d.ctrl[:] = rng.uniform(-1, 1, 12)
            for _ in range(N_FRAMES):
                mujoco.mj_step(m, d)
            out.append(d.qpos[:3].copy())
        return np.array(out)

    reference = trajectory(100, 50)
    rows = []
    for iterations, ls in ((1, 1), (1, 5), (2, 5), (4, 10)):
        traj = trajectory(iterations, ls)
        rows.append(
            {
                "iterations": iterations,
                "ls_iterations": ls,
                "max_base_pos_error_m": round(float(np.abs(traj - reference).max()), 4),
                "mean_height_m": round(float(traj[:, 2].mean()), 4),
                "reference_mean_height_m": round(float(reference[:, 2].mean()), 4),
            }
        )
    return rows


def run(
    envs: list[str], batches: list[int], steps: int, budget_s: float, min_calls: int, quick: bool
) -> dict:
    device = jax.devices()[0]
    load_start = os.getloadavg()[0]
    cells: list[Cell] = []
    physics: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    bar = progress_bar(None, "env throughput", total=len(envs) * len(batches), unit="cell")
    for entry in envs:
        name, backend = parse_env(entry)
        try:
            env = make_env(name, backend)
        except DistillError as exc:
            skipped[entry] = str(exc)
            bar.update(len(batches))
            continue
        label = f"{name}:{env.backend}" if backend else name
        physics[label] = physics_summary(env)
        reset = jax.jit(env.reset)
        for batch in batches:
            bar.set_postfix_str(f"{label} x {batch}")
            cells.append(bench_cell(env, reset, batch, steps, budget_s, min_calls, label))
            bar.update()
    bar.close()
    solver_check = go2_solver_check() if "go2" in physics else []
    return {
        "benchmark": "env_throughput",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **run_context(device, load_start),
        "versions": {"jax": jax.__version__, "mujoco": mujoco.__version__},
        "quick": quick,
        "timing": {
            "steps_per_call": steps,
            "budget_s_per_cell": budget_s,
            "min_calls": min_calls,
            "statistic": "median timed call after one untimed call; steps/s = batch x steps / median",
        },
        "physics": physics,
        "skipped": skipped,
        "go2_solver_check": solver_check,
        "cells": [asdict(c) for c in cells],
        "spring_vs_mjx": backend_ratios(cells),
    }


def backend_ratios(cells: list[Cell]) -> list[dict]:
    """Spring's env steps/s as a share of Brax mjx's, per task and batch timed in this run."""
    rate = {(c.env, c.batch): c.steps_per_s for c in cells}
    rows = []
    for (label, batch), spring in sorted(rate.items()):
        task, _, backend = label.partition(":")
        mjx_rate = rate.get((f"{task}:mjx", batch))
        if backend == "spring" and mjx_rate:
            rows.append({"env": task, "batch": batch, "spring_steps_per_s": spring,
                         "mjx_steps_per_s": mjx_rate, "spring_over_mjx": round(spring / mjx_rate, 3)})
    return rows


def markdown(result: dict) -> str:
    d, host = result["device"], result["host"]
    lines = [
        f"# Env throughput — {d['kind']} ({d['platform']})",
        "",
        (
            f"{host['cpu']}, {host['cpu_count']} CPUs, jax {result['versions']['jax']}, mujoco "
            f"{result['versions']['mujoco']}, {result['created']}; load average "
            f"{host['loadavg_1m_at_start']} -> {host['loadavg_1m_at_end']}"
            f"{' (quick run)' if result['quick'] else ''}. Each call is a jitted scan of "
            f"{result['timing']['steps_per_call']} batched steps with random actions, auto-resets "
            "included; steps/s counts env steps (one policy step = n_frames physics steps)."
        ),
        "",
    ]
    if host["loadavg_1m_at_start"] > host["cpu_count"]:
        lines += [
            (
                "The host was shared (load average above its CPU count): throughput is "
                "pessimistic; compile CPU seconds are the steadier figure."
            ),
            "",
        ]
    batches = sorted({c["batch"] for c in result["cells"]})
    lines += [
        "| env | " + " | ".join(f"steps/s @ {b:,}" for b in batches) + " | compile s (CPU s) |",
        "|---|" + "---:|" * len(batches) + "---:|",
    ]
    for env in result["physics"]:
        cells = {c["batch"]: c for c in result["cells"] if c["env"] == env}
        rates = " | ".join(
            f"{cells[b]['steps_per_s']:,.0f}" if b in cells else "—" for b in batches
        )
        compiles = ", ".join(
            f"{c['compile_s']:.0f} ({c['compile_cpu_s']:.0f})" for c in cells.values()
        )
        lines.append(f"| {env} | {rates} | {compiles} |")
    lines += [
        "",
        "## Physics settings",
        "",
        "| env | engine | solver | iterations | line search | cone | dt x frames | nv | contacts | constraint rows |",
        "|---|---|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for env, p in result["physics"].items():
        lines.append(
            f"| {env} | {p['engine']} | {p['solver']} | {p['iterations']} | {p['ls_iterations']} | {p['cone']} | "
            f"{p['timestep']:g} x {p['n_frames']} | {p['nv']} | {p['contacts']} | {p['constraint_rows']} |"
        )
    if result.get("spring_vs_mjx"):
        lines += ["", "## Brax spring against Brax mjx, same task, same batch", "",
                  "| env | batch | spring steps/s | mjx steps/s | spring / mjx |", "|---|---:|---:|---:|---:|"]
        for r in result["spring_vs_mjx"]:
            lines.append(f"| {r['env']} | {r['batch']:,} | {r['spring_steps_per_s']:,.0f} | "
                         f"{r['mjx_steps_per_s']:,.0f} | {r['spring_over_mjx']:.2f} |")
    lines += ["", GO2_SOLVER_NOTE, ""]
    if result["go2_solver_check"]:
        lines += [
            (
                "Why one iteration is enough for the Go2: base-position error over 5 s of random "
                "actions against a converged solve (100 iterations, 50 line-search), MuJoCo C:"
            ),
            "",
            "| iterations | line search | max base error (m) | mean height (m) | converged mean height (m) |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in result["go2_solver_check"]:
            lines.append(
                f"| {r['iterations']} | {r['ls_iterations']} | {r['max_base_pos_error_m']:.4f} | "
                f"{r['mean_height_m']:.4f} | {r['reference_mean_height_m']:.4f} |"
            )
        lines.append("")
    for env, why in result["skipped"].items():
        lines.append(f"Skipped {env}: {why}")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"envs {','.join(QUICK_ENVS)}, batches "
        f"{','.join(map(str, QUICK_BATCHES))}, short budget",
    )
    parser.add_argument("--envs", help=f"comma-separated env names (default {','.join(ENVS)})")
    parser.add_argument("--batches", help="comma-separated batch sizes (default 128,1024,4096)")
    parser.add_argument("--steps", type=int, default=10, help="env steps per timed call")
    parser.add_argument(
        "--budget", type=float, help="seconds of timed calls per cell (default 3, quick 0.5)"
    )
    parser.add_argument("--min-calls", type=int, default=2, help="timed calls per cell at least")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the .json and .md")
    parser.add_argument("--tag", default="", help="suffix of the result files' names (default: none)")
    args = parser.parse_args(argv)
    envs = args.envs.split(",") if args.envs else list(QUICK_ENVS if args.quick else ENVS)
    batches = (
        [int(b) for b in args.batches.split(",")]
        if args.batches
        else list(QUICK_BATCHES if args.quick else BATCHES)
    )
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 3.0)

    result = run(envs, batches, args.steps, budget, args.min_calls, args.quick)
    table = markdown(result)
    print(table)
    stem = args.out / (f"env_throughput_{result['device']['name']}{'_quick' if args.quick else ''}"
                       f"{'_' + args.tag if args.tag else ''}")
    write_text_atomic(stem.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    write_text_atomic(stem.with_suffix(".md"), table)
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    with console_logging():  # progress bars on a terminal, none in logs
        raise SystemExit(main())
