"""Fitting throughput against DDP ranks on CPU: `distill fit` under torchrun (gloo), timed by the
fit itself over its training epochs only (no process start, normaliser or evaluation passes).

For the benchmark: `[fit_throughput(path, ranks=r) for r in (1, 2)]`. Each rank runs one torch
thread, so on an N-core host up to N ranks do not compete for cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tomli_w

import distill
from distill.errors import DistillError
from distill.students.fit_cli import LOG_DIR, RESULT_NAME


@dataclass(frozen=True)
class FitThroughput:
    ranks: int
    preset: str
    batch_size: int
    """Rows per step over all ranks."""
    epochs: int
    steps: int
    samples: int
    train_seconds: float
    samples_per_second: float


def fit_throughput(
    dataset: str | os.PathLike,
    ranks: int,
    *,
    preset: str = "mlp_2x256",
    batch_size: int = 256,
    epochs: int = 2,
    max_memory_mb: float = 256.0,
    timeout_s: float = 1800.0,
) -> FitThroughput:
    """Samples/s of fitting `preset` on `dataset` with `ranks` CPU processes (no validation split,
    no early stopping, a fixed number of epochs)."""
    if ranks < 1:
        raise DistillError(f"ranks = {ranks}; need at least 1")
    train = {"epochs": epochs, "batch_size": batch_size, "min_steps": 0, "val_fraction": 0.0, "patience": 0,
             "max_memory_mb": max_memory_mb}
    root = Path(distill.__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    with tempfile.TemporaryDirectory(prefix="fit-throughput-") as tmp:
        config = Path(tmp) / "train.toml"
        config.write_text(tomli_w.dumps({"train": train}))
        out = Path(tmp) / "student"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
               "-m", "distill.cli", "fit", "--dataset", str(dataset), "--preset", preset, "--out", str(out),
               "--train-config", str(config), "--quiet"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if "distill: error" in line]
            tail = errors[0] if errors else (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DistillError(f"fitting with {ranks} rank(s) failed (exit {proc.returncode}): {tail}")
        result = json.loads((out / LOG_DIR / RESULT_NAME).read_text())
    return FitThroughput(
        ranks=ranks, preset=preset, batch_size=batch_size, epochs=result["epochs"], steps=result["steps"],
        samples=result["samples"], train_seconds=result["train_seconds"],
        samples_per_second=result["samples"] / result["train_seconds"],
    )
