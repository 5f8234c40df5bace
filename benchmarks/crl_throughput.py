"""CRL training throughput: env steps/s of collection and sgd steps/s of updates, per shape.

A CRL iteration collects `num_envs x unroll_length` env steps with the stochastic actor, then runs
`num_envs x unroll_length / env_steps_per_sgd_step` updates. The two costs scale differently —
collection with the physics and the batch of envs, updates with depth, width and batch size — so
they are timed apart, and a recipe's iteration time is predicted from them before it is trained:
  seconds per iteration = env steps / collect rate + sgd steps / sgd rate.
Collection runs the trainer's own rollout (`distill.rollouts.rollout` with `crl.stochastic_actor`),
and beside it the same rollout with zero actions (bare physics: what collection costs without an
actor); updates run `crl.sgd_step` in a jitted scan on a buffer filled with that rollout's states.

Every rate is set against a bound measured in the same run (`distill.bench.matmul_bound`): the
matmul-only time of the same work at the same shapes (the actor's forward products at batch =
envs for collection; an update's forward and backward products at the batch for sgd), each
shape timed alone, and reported as a share of it; the 2048³ peak is measured too, for context.

    python benchmarks/crl_throughput.py --env go2                       # writes results/crl_throughput_<env>_<device>.*
    python benchmarks/crl_throughput.py --env go2 --envs 64,128 --shapes 4x64,8x128 --batch 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import jax

from distill.atomic import write_text_atomic
from distill.bench import matmul_bound as mb
from distill.bench.jax_timing import compile_timed, device_name, run_context
from distill.envs import make_env
from distill.rollouts import rollout
from distill.teachers import crl, networks

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Rate:
    what: str
    """"collect" (env steps/s), "physics" (env steps/s, zero actions) or "sgd" (sgd steps/s)."""
    num_envs: int
    depth: int
    width: int
    batch_size: int
    compile_s: float
    median_s: float
    per_call: int
    per_s: float
    matmul_gflop: float = 0.0
    """Matmul GFLOP of one timed call (the products the bound counts)."""
    bound_s: float = 0.0
    """Those products' matmul-only seconds at their shapes, timed alone in this run."""
    share: float = 0.0
    """bound_s / median_s: the fraction of the matmul-only speed reached."""
    achieved_gflops: float = 0.0
    bound_gflops: float = 0.0
    trunk: str = ""
    """sgd: how the residual blocks were applied, "loop" or "scan" (`networks.UNROLL_MAX_BLOCKS`)."""


def with_bound(rate: Rate, bound: mb.Bound) -> Rate:
    """The rate with its bound: matmul GFLOP per call, bound seconds, share, GFLOP/s."""
    return replace(rate, matmul_gflop=round(bound.flops / 1e9, 4), bound_s=round(bound.seconds, 5),
                   share=round(bound.share(rate.median_s), 3),
                   achieved_gflops=round(bound.flops / rate.median_s / 1e9, 1),
                   bound_gflops=round(bound.gflops, 1))


def collect_gemms(cfg: crl.CRLConfig, env) -> tuple[mb.Gemm, ...]:
    """The stochastic actor's forward pass at batch = envs, once per unroll step."""
    arch = crl.arch_for(cfg, env)
    return mb.forward_gemms(cfg.num_envs, mb.actor_layers(arch), cfg.unroll_length)


def sgd_gemms(cfg: crl.CRLConfig, env, calls: int) -> tuple[mb.Gemm, ...]:
    arch = crl.arch_for(cfg, env)
    return tuple(mb.Gemm(g.m, g.k, g.n, g.count * calls) for g in mb.sgd_step_gemms(arch, cfg.batch_size))


@contextmanager
def trunk_mode(mode: str) -> Iterator[None]:
    """Applies every residual stack in a loop ("loop") or by `lax.scan` ("scan") while inside, whatever
    its depth; traces from the other mode are dropped so each mode compiles its own program."""
    saved = networks.UNROLL_MAX_BLOCKS
    networks.UNROLL_MAX_BLOCKS = {"loop": 1 << 30, "scan": -1}[mode]
    jax.clear_caches()
    try:
        yield
    finally:
        networks.UNROLL_MAX_BLOCKS = saved
        jax.clear_caches()


def zero_policy(params, obs, key):
    """Zero actions of `params`'s length (an array, so the shape is static)."""
    del key
    return jax.numpy.zeros(obs.teacher.shape[:-1] + params.shape, jax.numpy.float32), {}


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


def physics_rate(cfg: crl.CRLConfig, ts: crl.TrainState, budget_s: float, min_calls: int) -> Rate:
    """The same rollout with zero actions: the physics alone (no actor, nothing sampled)."""
    env = make_env(cfg.env)
    zeros = jax.numpy.zeros((env.spec.action_dim,), jax.numpy.float32)

    def collect(env_state, key):
        return rollout(env, zero_policy, cfg.unroll_length, zeros, env_state, key)

    args = (ts.env_state, jax.random.PRNGKey(0))
    compiled, compile_s, _ = compile_timed(collect, *args)
    median = _timed(compiled, args, budget_s, min_calls)
    n = cfg.env_steps_per_iteration
    return Rate("physics", cfg.num_envs, 0, 0, 0, round(compile_s, 1), round(median, 4), n, round(n / median, 1))


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


PROFILE_CATEGORIES = (
    ("matmul (dot, dot fusions)", lambda n: n.startswith(("dot", "ynn_fusion")) or "_dot" in n),
    ("copies", lambda n: n.startswith("copy")),
    ("scan stacking (dynamic slices and updates)", lambda n: "dynamic-update-slice" in n or "dynamic-slice" in n
     or n.startswith("slice")),
    ("elementwise fusions (LayerNorm, Swish, Adam, losses)", lambda n: n.endswith("fusion") or n.startswith("wrapped")),
)
PROFILE_SKIP = ("ThunkExecutor", "while", "call", "conditional", "end: ", "SlinkyThreadPool")


def categorise(events: list[tuple[str, int]]) -> dict[str, float]:
    """Nanoseconds per category from (XLA op name, duration) of leaf events; wrappers skipped."""
    out = {name: 0.0 for name, _ in PROFILE_CATEGORIES} | {"other": 0.0}
    for name, ns in events:
        if name.startswith(PROFILE_SKIP):
            continue
        base = name.rsplit(".", 1)[0] if name.rsplit(".", 1)[-1].isdigit() else name
        out[next((c for c, match in PROFILE_CATEGORIES if match(base)), "other")] += ns
    return out


def profile_sgd(cfg: crl.CRLConfig, ts: crl.TrainState, calls: int, trace_dir: Path) -> dict:
    """Where an update's time goes: one jax.profiler trace of `calls` sgd steps, XLA's CPU op
    events summed by category (over the worker threads, so shares of thread time)."""
    import jax.profiler

    env = make_env(cfg.env)
    opts = crl.make_optimizers(cfg)

    def updates(ts, key):
        def body(carry, k):
            return crl.sgd_step(cfg, opts, env.spec, carry, k)

        return jax.lax.scan(body, ts, jax.random.split(key, calls))[0]

    compiled, _, _ = compile_timed(updates, ts, jax.random.PRNGKey(1))
    jax.block_until_ready(compiled(ts, jax.random.PRNGKey(1)))
    jax.profiler.start_trace(str(trace_dir))
    start = time.perf_counter()
    jax.block_until_ready(compiled(ts, jax.random.PRNGKey(1)))
    wall = time.perf_counter() - start
    jax.profiler.stop_trace()
    path = max(trace_dir.rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    data = jax.profiler.ProfileData.from_file(str(path))
    events = [(ev.name, ev.duration_ns) for plane in data.planes for line in plane.lines
              if line.name.startswith("tf_XLAEigen") for ev in line.events]
    ns = categorise(events)
    total = sum(ns.values())
    return {"depth": cfg.critic_depth, "width": cfg.width, "batch_size": cfg.batch_size, "sgd_steps": calls,
            "wall_ms_per_step": round(1e3 * wall / calls, 2),
            "categories": {k: {"ms_per_step": round(v / 1e6 / calls, 2), "share": round(v / total, 3)}
                           for k, v in ns.items()}}


def _shape(text: str) -> tuple[int, int]:
    depth, width = text.lower().split("x")
    return int(depth), int(width)


def _physics_share(rates: list[dict], r: dict) -> str:
    """For a collect row: the share of its time that bare physics at the same envs takes."""
    phys = [p for p in rates if p["what"] == "physics" and p["num_envs"] == r["num_envs"]]
    return f"physics {100 * phys[0]['median_s'] / r['median_s']:.0f}% of the call" if phys else ""


def to_markdown(result: dict) -> str:
    ctx = result["context"]
    lines = [
        f"# CRL throughput — {result['env']} on {ctx['device']['name']}",
        "",
        (f"{ctx['host']['cpu']}, {ctx['host']['cpu_count']} CPUs, {result['created']}; load average "
         f"{ctx['host']['loadavg_1m_at_start']} -> {ctx['host']['loadavg_1m_at_end']}. Collection: "
         f"the trainer's rollout with the stochastic actor, unroll {result['unroll_length']} (physics: the "
         "same rollout with zero actions); updates: `crl.sgd_step` (actor, alpha, critic) in a jitted scan. "
         "Medians of repeated calls after a warm-up call."),
        "",
        (f"Peak matmul in this run: **{result['peak_gflops']:.0f} GFLOP/s** (2048³ float32, best of 7). "
         "Bound: the matmul-only time of the same work at the same shapes, each product shape timed alone "
         "in this run (collection: the actor's forward products at batch = envs; sgd: an update's forward "
         "and backward products, `distill.bench.matmul_bound.sgd_step_gemms`); share = bound seconds ÷ "
         "measured seconds."),
        "",
        ("| what | envs | depth | width | batch | trunk | per s | matmul GFLOP/s | bound GFLOP/s | share of bound | "
         "where the rest goes | compile s |"),
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in result["rates"]:
        unit = "sgd steps" if r["what"] == "sgd" else "env steps"
        bound = r["what"] != "physics"
        rest = _physics_share(result["rates"], r) if r["what"] == "collect" else ""
        share = f"{100 * r['share']:.0f}%" if bound else ""
        lines.append(
            f"| {r['what']} | {r['num_envs'] or ''} | {r['depth'] or ''} | {r['width'] or ''} | "
            f"{r['batch_size'] or ''} | {r.get('trunk', '')} | {r['per_s']:,.1f} {unit} | "
            f"{r['achieved_gflops'] if bound else ''} | {r['bound_gflops'] if bound else ''} | "
            f"{share} | {rest} | "
            f"{r['compile_s']} |")
    for prof in result.get("profiles", []):
        trunk = f", trunk {prof['trunk']}" if prof.get("trunk", "default") != "default" else ""
        lines += ["", (f"## Where an update's time goes: depth {prof['depth']}, width {prof['width']}, batch "
                       f"{prof['batch_size']}{trunk}"), "",
                  (f"jax.profiler trace of {prof['sgd_steps']} sgd steps ({prof['wall_ms_per_step']} ms of wall time "
                   "per step); XLA's CPU op events summed over its worker threads, by category:"), "",
                  "| category | ms per step (thread time) | share |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['ms_per_step']} | {100 * v['share']:.0f}% |" for k, v in prof["categories"].items()]
    notes = result.get("notes")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="go2")
    ap.add_argument("--envs", default="64,128,256", help="num_envs for collection")
    ap.add_argument("--collect-shape", default="4x64", help="actor depth x width while collecting")
    ap.add_argument("--unroll", type=int, default=50)
    ap.add_argument("--shapes", default="4x64,4x128,8x128,16x128,16x256", help="depth x width for updates")
    ap.add_argument("--batch", default="256", help="sgd batch sizes (comma-separated)")
    ap.add_argument("--sgd-calls", type=int, default=20, help="sgd steps per timed call")
    ap.add_argument("--budget", type=float, default=8.0, help="seconds of timed calls per cell")
    ap.add_argument("--gemm-budget", type=float, default=0.3, help="seconds of timed calls per product shape")
    ap.add_argument("--profile", default="", help="depth x width (at the first batch) whose update to profile, "
                    "comma-separated; default none")
    ap.add_argument("--trunks", default="default", help="how updates apply the residual stacks, compared in this "
                    "run: comma-separated of loop, scan; default: the networks' own rule (loop up to "
                    "UNROLL_MAX_BLOCKS blocks)")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)

    load_start = os.getloadavg()[0]
    peak = mb.peak_matmul_gflops()
    print(f"peak matmul {peak:.0f} GFLOP/s", flush=True)
    depth, width = _shape(args.collect_shape)
    batches = [int(b) for b in args.batch.split(",")]
    base = crl.CRLConfig(env=args.env, actor_depth=depth, critic_depth=depth, width=width,
                         unroll_length=args.unroll, batch_size=batches[0], max_replay_size=args.unroll,
                         min_replay_size=1)
    env = make_env(args.env)
    rates: list[Rate] = []
    timings: tuple[mb.GemmTiming, ...] = ()

    def note(rate: Rate, gemms: tuple[mb.Gemm, ...] | None) -> None:
        nonlocal timings
        if gemms is not None:
            bound = mb.measure_bound(gemms, args.gemm_budget, timings)
            timings = tuple({(t.m, t.k, t.n): t for t in (*timings, *bound.timings)}.values())
            rate = with_bound(rate, bound)
        rates.append(rate)
        print(rate, flush=True)

    ts = None
    for n in (int(x) for x in args.envs.split(",")):
        cfg = replace(base, num_envs=n)
        rate, ts = collect_rate(cfg, args.budget, 3)
        note(rate, collect_gemms(cfg, env))
        note(physics_rate(cfg, ts, args.budget, 3), None)
    for batch in batches:
        for depth, width in (_shape(s) for s in args.shapes.split(",")):
            cfg = replace(base, actor_depth=depth, critic_depth=depth, width=width, batch_size=batch,
                          num_envs=ts.buffer.t.shape[1])
            for trunk in args.trunks.split(","):
                with nullcontext() if trunk == "default" else trunk_mode(trunk):
                    fresh = crl.init_state(cfg, env)
                    rate = sgd_rate(cfg, replace(fresh, buffer=ts.buffer), args.sgd_calls, args.budget, 3)
                used = trunk if trunk != "default" else ("loop" if networks.looped(depth // 4) else "scan")
                note(replace(rate, trunk=used), sgd_gemms(cfg, env, args.sgd_calls))
    profiles = []
    for depth, width in (_shape(x) for x in args.profile.split(",") if x):
        cfg = replace(base, actor_depth=depth, critic_depth=depth, width=width, num_envs=ts.buffer.t.shape[1])
        for trunk in args.trunks.split(","):
            with nullcontext() if trunk == "default" else trunk_mode(trunk), \
                    tempfile.TemporaryDirectory(prefix="crl-profile-") as tmp:
                prof = profile_sgd(cfg, replace(crl.init_state(cfg, env), buffer=ts.buffer), args.sgd_calls,
                                   Path(tmp))
            profiles.append({**prof, "trunk": trunk})
            print(profiles[-1], flush=True)
    result = {
        "env": args.env,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "unroll_length": args.unroll,
        "peak_gflops": round(peak, 1),
        "context": run_context(jax.devices()[0], load_start),
        "rates": [asdict(r) for r in rates],
        "profiles": profiles,
        "gemm_timings": [{**asdict(t), "gflops": round(t.gflops, 1)} for t in timings],
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
