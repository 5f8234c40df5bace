"""Env parity: every reference trajectory recorded with scaling-crl's own env code, replayed here.

For each `tests/fixtures/scaling_crl_envs/*.npz` (or the files given), `distill env compare`'s
replay: the largest goal-coordinate distance (m) and relative observation error over the first 10
steps (the judged window) and over every step up to the first `done`, and the verdict.

    python benchmarks/env_parity.py                 # writes results/env_parity.{md,json}
    python benchmarks/env_parity.py --references my_ant_spring_s0.npz
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jax
import mujoco

from distill.atomic import write_text_atomic
from distill.envs.brax_env import brax_version
from distill.envs.compare import (
    CHECKED_STEPS,
    OBS_RELATIVE_TOLERANCE,
    POSITION_TOLERANCE_M,
    compare,
    read_reference,
)
from distill.progress import progress_bar
from distill.runlog import console_logging

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "scaling_crl_envs"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    reference: str
    env: str
    backend: str
    first_done: int | None
    replayed: int
    position_10_m: float
    obs_rel_10: float
    position_all_m: float
    obs_rel_all: float
    passed: bool
    seconds: float


def run(paths: list[Path]) -> dict:
    rows = []
    bar = progress_bar(None, "env parity", total=len(paths), unit="file")
    for path in paths:
        t0 = time.perf_counter()
        result = compare(read_reference(path))
        last = result.steps[-1].step
        p10, r10 = result.within(CHECKED_STEPS)
        pall, rall = result.within(last)
        rows.append(Row(path.name, result.env, result.backend, result.first_done, last, p10, r10, pall, rall,
                        result.passed, round(time.perf_counter() - t0, 1)))
        bar.update()
    bar.close()
    return {
        "benchmark": "env_parity",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"brax": brax_version(), "mujoco": mujoco.__version__, "jax": jax.__version__},
        "tolerance": {"steps": CHECKED_STEPS, "position_m": POSITION_TOLERANCE_M, "obs_relative": OBS_RELATIVE_TOLERANCE},
        "rows": [r.__dict__ for r in rows],
    }


def markdown(result: dict) -> str:
    v, tol = result["versions"], result["tolerance"]
    lines = [
        "# Env parity with scaling-crl's own envs",
        "",
        (f"brax {v['brax']}, mujoco {v['mujoco']}, jax {v['jax']}, {result['created']}. References recorded "
        "by scaling-crl's env classes (brax 0.10.1, mujoco 3.2.6, jax 0.4.23); same initial state, goal and "
        "actions. Judged over the first "
        f"{tol['steps']} steps: goal coordinates within {tol['position_m']:g} m, relative observation error "
        f"within {tol['obs_relative']:g}; later steps (up to the first `done`) are reported."),
        "",
        "| reference | env | backend | pos, 10 steps (m) | obs rel, 10 steps | steps replayed | pos, all (m) | obs rel, all | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['reference']} | {r['env']} | {r['backend']} | {r['position_10_m']:.1e} | {r['obs_rel_10']:.1e} | "
            f"{r['replayed']} | {r['position_all_m']:.1e} | {r['obs_rel_all']:.1e} | {'PASS' if r['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--references", nargs="*", type=Path,
                        help="reference .npz files (default: every seed-0 fixture)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for env_parity.{md,json}")
    args = parser.parse_args(argv)
    paths = args.references or sorted(FIXTURES.glob("*_s0.npz"))
    result = run(paths)
    table = markdown(result)
    print(table)
    write_text_atomic(args.out / "env_parity.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(args.out / "env_parity.md", table)
    print(f"wrote {args.out / 'env_parity.json'} and {args.out / 'env_parity.md'}")
    return 0 if all(r["passed"] for r in result["rows"]) else 1


if __name__ == "__main__":
    with console_logging():
        raise SystemExit(main())
