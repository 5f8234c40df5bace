"""Supervised fitting of a student to teacher actions: MSE on the tanh action, Adam, minibatches.

Deterministic under a seed: the only randomness is the shuffle, drawn from its own
torch.Generator, so two fits from the same initial weights give the same weights.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from distill.errors import DistillError
from distill.progress import progress_bar
from distill.students.mlp import STD_FLOOR, MLPStudent
from distill.students.presets import StudentTrainConfig
from distill.students.threads import torch_threads

EVAL_CHUNK = 65_536


def _rows(name: str, value: Any, cols: int | None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or (cols is not None and arr.shape[1] != cols):
        want = f"[N, {cols}]" if cols is not None else "[N, D]"
        raise DistillError(f"{name} has shape {arr.shape}; expected a non-empty {want} array")
    if not np.all(np.isfinite(arr)):
        raise DistillError(f"{name} contains NaN or inf; drop those rows before fitting")
    return arr


def fit_normalizer(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the rows (std floored like the student floors it)."""
    arr = _rows("obs", obs, None).astype(np.float64)
    mean = arr.mean(axis=0)
    std = np.maximum(arr.std(axis=0), STD_FLOOR)
    return mean.astype(np.float32), std.astype(np.float32)


def _row_weights(weights: np.ndarray | None, n: int) -> torch.Tensor:
    """Per-row weights scaled to mean 1, so a weighted minibatch loss stays on the MSE's scale."""
    if weights is None:
        return torch.ones(n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise DistillError(f"weights must be {n} finite non-negative numbers with a positive sum (got shape {w.shape})")
    return torch.from_numpy((w * n / w.sum()).astype(np.float32))


def _batch_loss(student: MLPStudent, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    per_row = ((student(x) - y) ** 2).mean(dim=-1)
    return (per_row * w).sum() / x.shape[0]


@torch.no_grad()
def evaluate_loss(student: MLPStudent, obs: np.ndarray, target_action: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The (weighted) MSE over all rows, in chunks."""
    x = torch.from_numpy(_rows("obs", obs, student.input_dim))
    y = torch.from_numpy(_rows("target_action", target_action, student.action_dim))
    w = _row_weights(weights, x.shape[0])
    total = sum(
        float(_batch_loss(student, x[i : i + EVAL_CHUNK], y[i : i + EVAL_CHUNK], w[i : i + EVAL_CHUNK]))
        * min(EVAL_CHUNK, x.shape[0] - i)
        for i in range(0, x.shape[0], EVAL_CHUNK)
    )
    return total / x.shape[0]


def fit_student(
    student: MLPStudent,
    obs: np.ndarray,
    target_action: np.ndarray,
    cfg: StudentTrainConfig,
    seed: int,
    weights: np.ndarray | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Trains `student` in place for cfg.epochs (more if needed to reach cfg.min_steps) over the
    rows; returns losses and counts.

    The normaliser is not touched: fit it first (`fit_normalizer`) and pass it to the student.
    `threads` sets torch's CPU threads for the fit (1 by default: students are small, and on a
    shared machine one thread is many times faster than contended ones); None leaves it alone.
    """
    with torch_threads(threads):
        return _fit(student, obs, target_action, cfg, seed, weights, progress)


def _fit(
    student: MLPStudent,
    obs: np.ndarray,
    target_action: np.ndarray,
    cfg: StudentTrainConfig,
    seed: int,
    weights: np.ndarray | None,
    progress: bool,
) -> dict[str, Any]:
    x = torch.from_numpy(_rows("obs", obs, student.input_dim))
    y = torch.from_numpy(_rows("target_action", target_action, student.action_dim))
    if y.shape[0] != x.shape[0]:
        raise DistillError(f"obs has {x.shape[0]} rows but target_action has {y.shape[0]}; they must match")
    w = _row_weights(weights, x.shape[0])
    n = x.shape[0]
    start = time.perf_counter()
    loss_start = evaluate_loss(student, obs, target_action, weights)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    epoch_losses: list[float] = []
    steps = 0
    student.train()
    batches_per_epoch = -(-n // cfg.batch_size)
    epochs = max(cfg.epochs, -(-cfg.min_steps // batches_per_epoch))
    bar = progress_bar(range(epochs), "fit student", enabled=progress, unit="epoch", leave=False)
    for _ in bar:
        order = torch.randperm(n, generator=generator)
        running = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = _batch_loss(student, x[idx], y[idx], w[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.item() * idx.shape[0]
            steps += 1
        epoch_losses.append(running / n)
        bar.set_postfix(loss=f"{epoch_losses[-1]:.4g}")
    student.eval()
    return {
        "loss_start": loss_start,
        "loss_final": evaluate_loss(student, obs, target_action, weights),
        "epoch_losses": epoch_losses,
        "epochs": epochs,
        "steps": steps,
        "rows": n,
        "seed": seed,
        "seconds": time.perf_counter() - start,
    }
