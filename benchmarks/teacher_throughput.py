"""Teacher labelling throughput and compile times on whatever device jax has.

How many labels per second a deep teacher gives decides how long DAgger rounds take, and compile
time decides whether a 1,024-layer teacher is usable at all. Random weights (only speed is
measured). Cells: actor forward (actions/s) at depths 4, 64, 256, 512 and critic forward (energies/s)
at depth 1,024, each at batch 1, 256 and 4,096, width 256; plus the compile time of the 1,024-layer
critic forward+backward. Every cell compiles ahead of time, runs one untimed call, then times calls
until its time budget is spent (at least `--min-calls`), so slow cells on a small CPU stay bounded.

    python benchmarks/teacher_throughput.py            # full run, writes results/teacher_throughput_<device>.*
    python benchmarks/teacher_throughput.py --quick    # batches 1 and 256, small budget: ..._quick.*
    python benchmarks/teacher_throughput.py --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from distill.atomic import write_text_atomic
from distill.bench.jax_timing import compile_timed, run_context
from distill.progress import progress_bar
from distill.runlog import console_logging
from distill.teachers import networks
from distill.teachers.networks import CRLArch

RESULTS = Path(__file__).resolve().parent / "results"
OBS, GOAL, ACT, WIDTH = 268, 3, 17, 256  # humanoid dims, as humanoid_1024
ACTOR_DEPTHS = (4, 64, 256, 512)
CRITIC_DEPTH = 1024
BATCHES = (1, 256, 4096)
QUICK_BATCHES = (1, 256)
FWD_BWD_BATCH = 256
COMPILE_LIMIT_S = 30.0
DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16}


@dataclass(frozen=True)
class Cell:
    net: str
    depth: int
    batch: int
    params: int
    compile_s: float
    compile_cpu_s: float
    calls: int
    median_ms: float
    min_ms: float
    labels_per_s: float


def _time_calls(compiled, args, budget_s: float, min_calls: int, max_calls: int) -> list[float]:
    jax.block_until_ready(compiled(*args))  # untimed: first-call allocations
    times: list[float] = []
    spent = 0.0
    while len(times) < max_calls and (len(times) < min_calls or spent < budget_s):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return times


def _inputs(batch: int, dims: tuple[int, ...], dtype, seed: int) -> list[jax.Array]:
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.standard_normal((batch, d)), dtype) for d in dims]


def bench_cell(net, depth, batch, params, n_params, dtype, budget_s, min_calls, max_calls) -> Cell:
    if net == "actor":
        fn, args = networks.actor_act, [params, *_inputs(batch, (OBS + GOAL,), dtype, batch)]
    else:
        fn, args = networks.critic_value, [params, *_inputs(batch, (OBS, ACT, GOAL), dtype, batch)]
    compiled, compile_s, compile_cpu_s = compile_timed(fn, *args)
    times = _time_calls(compiled, args, budget_s, min_calls, max_calls)
    median = statistics.median(times)
    return Cell(
        net=net,
        depth=depth,
        batch=batch,
        params=n_params,
        compile_s=round(compile_s, 3),
        compile_cpu_s=round(compile_cpu_s, 3),
        calls=len(times),
        median_ms=round(median * 1e3, 4),
        min_ms=round(min(times) * 1e3, 4),
        labels_per_s=round(batch / median, 1),
    )


def fwd_bwd_compile_s(arch: CRLArch, dtype) -> tuple[float, float]:
    """Compile time of value_and_grad of a critic loss, lowered on abstract shapes (nothing allocated)."""
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    params = jax.eval_shape(partial(networks.init_critic, arch=arch), key)
    params = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, dtype), params)
    args = [jax.ShapeDtypeStruct((FWD_BWD_BATCH, d), dtype) for d in (OBS, ACT, GOAL)]

    def loss(p, s, a, g):
        return jnp.mean(jnp.square(networks.critic_value(p, s, a, g)))

    return compile_timed(jax.value_and_grad(loss), params, *args)[1:]


def run(quick: bool, dtype_name: str, budget_s: float, min_calls: int, max_calls: int) -> dict:
    batches = QUICK_BATCHES if quick else BATCHES
    load_start = os.getloadavg()[0]
    dtype = DTYPES[dtype_name]
    device = jax.devices()[0]
    plan = [("actor", d) for d in ACTOR_DEPTHS] + [("critic", CRITIC_DEPTH)]
    cells: list[Cell] = []
    bar = progress_bar(None, "teacher throughput", total=len(plan) * len(batches) + 1, unit="cell")
    fwd_bwd, fwd_bwd_cpu = fwd_bwd_compile_s(CRLArch(OBS, GOAL, ACT, 4, CRITIC_DEPTH, WIDTH), dtype)
    bar.update()
    for net, depth in plan:
        arch = CRLArch(
            OBS,
            GOAL,
            ACT,
            actor_depth=depth if net == "actor" else 4,
            critic_depth=depth if net == "critic" else 4,
            width=WIDTH,
        )
        init = networks.init_actor if net == "actor" else networks.init_critic
        params = jax.jit(init, static_argnums=1)(jax.random.PRNGKey(depth), arch)
        n_params = networks.count_params(params)
        params = networks.cast_params(params, dtype)
        for batch in batches:
            bar.set_postfix_str(f"{net} depth {depth} batch {batch}")
            cells.append(
                bench_cell(
                    net, depth, batch, params, n_params, dtype, budget_s, min_calls, max_calls
                )
            )
            bar.update()
        del params
    bar.close()
    return {
        "benchmark": "teacher_throughput",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **run_context(device, load_start),
        "jax_version": jax.__version__,
        "dtype": dtype_name,
        "width": WIDTH,
        "dims": {"obs": OBS, "goal": GOAL, "action": ACT},
        "quick": quick,
        "timing": {
            "budget_s_per_cell": budget_s,
            "min_calls": min_calls,
            "max_calls": max_calls,
            "statistic": "median of timed calls after one untimed call; labels/s = batch / median",
        },
        "critic_1024_fwd_bwd_compile": {
            "batch": FWD_BWD_BATCH,
            "seconds": round(fwd_bwd, 3),
            "cpu_seconds": round(fwd_bwd_cpu, 3),
            "limit_s": COMPILE_LIMIT_S,
            "within_limit": fwd_bwd < COMPILE_LIMIT_S,
        },
        "cells": [asdict(c) for c in cells],
    }


def markdown(result: dict) -> str:
    d = result["device"]
    fb = result["critic_1024_fwd_bwd_compile"]
    lines = [
        f"# Teacher throughput — {d['kind']} ({d['platform']}), {result['dtype']}, width {result['width']}",
        "",
        (
            f"jax {result['jax_version']}, {result['created']}, host CPUs {result['host']['cpu_count']}, "
            f"load average {result['host']['loadavg_1m_at_start']} -> {result['host']['loadavg_1m_at_end']}{' (quick run)' if result['quick'] else ''}. "
            "Random weights; actor = actions/s (tanh of the mean), critic = energies/s (both encoders)."
        ),
        "",
        (
            f"Compile of the {CRITIC_DEPTH}-layer critic forward+backward (batch {fb['batch']}): "
            f"**{fb['seconds']:.1f} s** wall, {fb['cpu_seconds']:.1f} s CPU "
            f"(limit {fb['limit_s']:.0f} s: {'OK' if fb['within_limit'] else 'EXCEEDED'})."
        ),
        "",
        *(
            [
                (
                    "The host was shared (load average above its CPU count): throughput is pessimistic; "
                    "CPU seconds of compiles are the steadier figure."
                ),
                "",
            ]
            if result["host"]["loadavg_1m_at_start"] > result["host"]["cpu_count"]
            else []
        ),
        "| net | depth | params | batch | compile s (CPU s) | calls | median ms | labels/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in result["cells"]:
        lines.append(
            f"| {c['net']} | {c['depth']} | {c['params'] / 1e6:.1f} M | {c['batch']} | {c['compile_s']:.2f} ({c['compile_cpu_s']:.2f}) | "
            f"{c['calls']} | {c['median_ms']:.3f} | {c['labels_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small time budget per cell")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="f32",
        help="compute dtype (bf16 via cast_params)",
    )
    parser.add_argument(
        "--budget", type=float, help="seconds of timed calls per cell (default 2, quick 0.2)"
    )
    parser.add_argument(
        "--min-calls", type=int, help="timed calls per cell at least (default 3, quick 1)"
    )
    parser.add_argument("--max-calls", type=int, default=200, help="timed calls per cell at most")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the .json and .md")
    args = parser.parse_args(argv)
    budget = args.budget if args.budget is not None else (0.2 if args.quick else 2.0)
    min_calls = args.min_calls if args.min_calls is not None else (1 if args.quick else 3)

    result = run(args.quick, args.dtype, budget, min_calls, args.max_calls)
    table = markdown(result)
    print(table)
    suffix = ("" if args.dtype == "f32" else f"_{args.dtype}") + ("_quick" if args.quick else "")
    stem = args.out / f"teacher_throughput_{result['device']['name']}{suffix}"
    write_text_atomic(stem.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    write_text_atomic(stem.with_suffix(".md"), table)
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    with console_logging():  # progress bars on a terminal, none in logs
        raise SystemExit(main())
