"""Per-row losses between the student's outputs and the teacher's labels (pure functions).

- `mse` (default): squared error between the student's action tanh(mu_s) and the teacher's
  deterministic action tanh(mu_t), averaged over action dims: the error of what is deployed.
- `kl`: KL(teacher || student) between the diagonal Gaussians N(mu_t, sigma_t^2) and
  N(mu_s, sigma_s^2) in pre-tanh space, summed over action dims. tanh is a bijection and KL is
  unchanged by an invertible change of variables (the Jacobians cancel in the density ratio), so
  this is also the KL between the two tanh-squashed action distributions. It needs the student's
  training-only log-std head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from distill.errors import DistillError
from distill.students.loss_names import LOSS_COLUMNS, LOSSES, check_loss
from distill.students.mlp import MLPStudent

__all__ = ["LOSSES", "LOSS_COLUMNS", "TrainForward", "batch_loss", "check_loss", "kl", "mse", "per_row_loss"]

if TYPE_CHECKING:
    from distill.students.sources import Batch



def mse(outputs: tuple[torch.Tensor, ...], batch: Batch) -> torch.Tensor:
    return ((torch.tanh(outputs[0]) - batch.labels["teacher_action"]) ** 2).mean(dim=-1)


def kl(outputs: tuple[torch.Tensor, ...], batch: Batch) -> torch.Tensor:
    mean, log_std = outputs
    t_mean, t_log_std = batch.labels["teacher_mean"], batch.labels["teacher_log_std"]
    ratio = torch.exp(2.0 * (t_log_std - log_std))
    scaled_gap = (t_mean - mean) * torch.exp(-log_std)
    return (log_std - t_log_std + 0.5 * (ratio + scaled_gap**2) - 0.5).sum(dim=-1)


_FUNCTIONS = {"mse": mse, "kl": kl}


def per_row_loss(name: str, outputs: tuple[torch.Tensor, ...], batch: Batch) -> torch.Tensor:
    return _FUNCTIONS[name](outputs, batch)


def batch_loss(name: str, outputs: tuple[torch.Tensor, ...], batch: Batch) -> torch.Tensor:
    """Mean per-row loss, weighted by the batch's row weights when it has them (weights have mean 1
    over the rows, so a weighted loss stays on the unweighted one's scale)."""
    rows = per_row_loss(name, outputs, batch)
    return rows.mean() if batch.weight is None else (rows * batch.weight).sum() / rows.shape[0]


class TrainForward(nn.Module):
    """What a loss reads from the student, as one module DDP can wrap: (pre-tanh mean,), or
    (pre-tanh mean, log std) for `kl`."""

    def __init__(self, student: MLPStudent, loss: str) -> None:
        super().__init__()
        if loss == "kl" and not student.has_log_std_head:
            raise DistillError("loss 'kl' needs a student with a log-std head (build_student(..., log_std_head=True))")
        self.student = student
        self.with_log_std = loss == "kl"

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.with_log_std:
            return self.student.distribution(obs)
        return (self.student.pre_tanh(obs),)
