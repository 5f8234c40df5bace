"""`distill ship RUN`: build the bundle and say what went where and what to do on the robot."""

from __future__ import annotations

import argparse
from pathlib import Path

from distill.paths import students_dir
from distill.ship.bundle import ShipResult, build_bundle
from distill.ship.deploy import DeployDescription


def resolve_run(run: str) -> Path:
    """A run folder given as a path, else students/<run>."""
    path = Path(run)
    return path if path.is_dir() else students_dir() / run


def summary(result: ShipResult) -> str:
    d = result.deploy
    size_kb = result.archive.stat().st_size / 1024
    lines = [
        f"shipped {result.bundle}: {result.archive} ({size_kb:.0f} KiB, sha256 {result.sha256[:16]}…)",
        (f"  model     {d.model.file} ({d.model.precision}, opset {d.model.opset}, obs [1, {d.observation.dim}] -> "
        f"action [1, {len(d.action.names)}])"),
        (f"  latency   p99 {d.latency.p99_ms:.4g} ms on the run host vs {d.target.name} budget "
        f"{d.target.budget_p99_ms:g} ms: {'meets' if d.latency.meets_budget else 'MISSES'} it (host figure only)"),
        f"  readiness {_readiness(d)}",
        (f"  replay    {d.replay.rows} rows, tolerance {d.replay.tolerance_onnx:g} (ONNX Runtime) / "
        f"{d.replay.tolerance_engine:g} (engine)"),
        f"  files     {', '.join(result.files)}",
    ]
    if result.forced:
        lines.append(f"  FORCED    {'; '.join(result.reasons)}")
    lines += [
        "on the robot:",
        f"  tar xzf {result.archive.name} && cd {result.bundle} && sha256sum -c SHA256SUMS",
        "  ./build_engine.sh                  # builds the engine, times it: PASS/FAIL, device_timings.json",
        "  python3 run_policy.py --replay     # the engine's actions against the student's",
        "then here: distill bench --device-timings device_timings.json",
    ]
    return "\n".join(lines)


def _readiness(d: DeployDescription) -> str:
    if not d.readiness.checked:
        return f"not checked: {d.readiness.checker}"
    return "ok" if d.readiness.ok else f"NOT ready: {'; '.join(d.readiness.problems)}"


def ship_command(args: argparse.Namespace) -> int:
    result = build_bundle(resolve_run(args.run), target=args.target, precision=args.precision,
                          force=args.force, out=args.out)
    print(summary(result))
    return 0
