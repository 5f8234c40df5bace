"""CRL training throughput: env steps/s of collection and sgd steps/s of updates, per shape.

A CRL iteration collects `num_envs x unroll_length` env steps with the stochastic actor, then runs
`num_envs x unroll_length / env_steps_per_sgd_step` updates. The two costs scale differently —
collection with the physics and the batch of envs, updates with depth, width and batch size — so
they are timed apart, and a recipe's iteration time is predicted from them before it is trained:
  seconds per iteration = env steps / collect rate + sgd steps / sgd rate.
Collection runs the trainer's own rollout (`distill.rollouts.rollout` with `crl.stochastic_actor`);
updates run `crl.sgd_step` in a jitted scan on a buffer filled with that rollout's states.

    python benchmarks/crl_throughput.py --env go2                       # writes results/crl_throughput_<env>_<device>.*
    python benchmarks/crl_throughput.py --env go2 --envs 64,128 --shapes 4x64,8x128 --batch 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import jax

from distill.atomic import write_text_atomic
from distill.bench.jax_timing import compile_timed, device_name, run_context
from distill.envs import make_env
from distill.rollouts import rollout
from distill.teachers import crl

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Rate:
    what: str
    """"collect" (env steps/s) or "sgd" (sgd steps/s)."""
    num_envs: int
    depth: int
    width: int
    batch_size: int
    compile_s: float
    median_s: float
    per_call: int
    per_s: float


def _timed(compiled, args, budget_s: float, min_calls: int) -> float:
    jax.block_until_ready(compiled(*args))
    times: list[float] = []
    while len(times) < min_calls or sum(times) < budget_s:
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def collect_rate(cfg: crl.CRLConfig, budget_s: float, min_calls: int) -> tuple[Rate, crl.TrainState]:
    env = make_env(cfg.env)
    ts = crl.init_state(cfg, env)

    def collect(actor, env_state, key):
        return rollout(env, crl.stochastic_actor, cfg.unroll_length, actor, env_state, key)

    args = (ts.actor, ts.env_state, jax.random.PRNGKey(0))
    compiled, compile_s, _ = compile_timed(collect, *args)
    median = _timed(compiled, args, budget_s, min_calls)
    _, steps = compiled(*args)
    buffer = crl.insert(ts.buffer, steps.obs[..., : env.spec.obs_dim], steps.action, steps.t, steps.episode)
    n = cfg.env_steps_per_iteration
    rate = Rate("collect", cfg.num_envs, cfg.actor_depth, cfg.width, 0, round(compile_s, 1), round(median, 4), n,
                round(n / median, 1))
    return rate, replace(ts, buffer=buffer)


def sgd_rate(cfg: crl.CRLConfig, ts: crl.TrainState, calls: int, budget_s: float, min_calls: int) -> Rate:
    env = make_env(cfg.env)
    opts = crl.make_optimizers(cfg)

    def updates(ts, key):
        def body(carry, k):
            return crl.sgd_step(cfg, opts, env.spec, carry, k)

        return jax.lax.scan(body, ts, jax.random.split(key, calls))[0]

    args = (ts, jax.random.PRNGKey(1))
    compiled, compile_s, _ = compile_timed(updates, *args)
    median = _timed(compiled, args, budget_s, min_calls)
    return Rate("sgd", 0, cfg.critic_depth, cfg.width, cfg.batch_size, round(compile_s, 1), round(median, 4),
                calls, round(calls / median, 1))


def _shape(text: str) -> tuple[int, int]:
    depth, width = text.lower().split("x")
    return int(depth), int(width)


def to_markdown(result: dict) -> str:
    ctx = result["context"]
    lines = [
        f"# CRL throughput — {result['env']} on {ctx['device']['name']}",
        "",
        (f"{ctx['host']['cpu']}, {ctx['host']['cpu_count']} CPUs, {result['created']}; load average "
         f"{ctx['host']['loadavg_1m_at_start']} -> {ctx['host']['loadavg_1m_at_end']}. Collection: "
         f"the trainer's rollout with the stochastic actor, unroll {result['unroll_length']}; updates: "
         "`crl.sgd_step` (actor, alpha, critic) in a jitted scan. Medians of repeated calls after a "
         "warm-up call."),
        "",
        "| what | envs | depth | width | batch | per s | compile s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rates"]:
        unit = "env steps" if r["what"] == "collect" else "sgd steps"
        lines.append(f"| {r['what']} | {r['num_envs'] or ''} | {r['depth']} | {r['width']} | "
                     f"{r['batch_size'] or ''} | {r['per_s']:,.0f} {unit} | {r['compile_s']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="go2")
    ap.add_argument("--envs", default="64,128,256", help="num_envs for collection")
    ap.add_argument("--collect-shape", default="4x64", help="actor depth x width while collecting")
    ap.add_argument("--unroll", type=int, default=50)
    ap.add_argument("--shapes", default="4x64,4x128,8x128,16x128,16x256", help="depth x width for updates")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sgd-calls", type=int, default=20, help="sgd steps per timed call")
    ap.add_argument("--budget", type=float, default=8.0, help="seconds of timed calls per cell")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)

    load_start = os.getloadavg()[0]
    depth, width = _shape(args.collect_shape)
    base = crl.CRLConfig(env=args.env, actor_depth=depth, critic_depth=depth, width=width,
                         unroll_length=args.unroll, batch_size=args.batch, max_replay_size=args.unroll,
                         min_replay_size=1)
    rates: list[Rate] = []
    ts = None
    for n in (int(x) for x in args.envs.split(",")):
        rate, ts = collect_rate(replace(base, num_envs=n), args.budget, 3)
        rates.append(rate)
        print(rate)
    for depth, width in (_shape(s) for s in args.shapes.split(",")):
        cfg = replace(base, actor_depth=depth, critic_depth=depth, width=width, num_envs=ts.buffer.t.shape[1])
        fresh = crl.init_state(cfg, make_env(args.env))
        rate = sgd_rate(cfg, replace(fresh, buffer=ts.buffer), args.sgd_calls, args.budget, 3)
        rates.append(rate)
        print(rate)
    result = {
        "env": args.env,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "unroll_length": args.unroll,
        "context": run_context(jax.devices()[0], load_start),
        "rates": [asdict(r) for r in rates],
    }
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = f"crl_throughput_{args.env}_{device_name(jax.devices()[0])}"
    write_text_atomic(out / f"{stem}.json", json.dumps(result, indent=1))
    write_text_atomic(out / f"{stem}.md", to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
