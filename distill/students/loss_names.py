"""The losses a student can be fitted with and the label columns each reads: plain data, so that
presets and data sources know them without importing torch (`distill.students.losses` has the
functions)."""

from __future__ import annotations

from distill.errors import DistillError

LOSS_COLUMNS: dict[str, tuple[str, ...]] = {
    "mse": ("teacher_action",),
    "kl": ("teacher_mean", "teacher_log_std"),
}
"""The label columns each loss reads."""
LOSSES = tuple(LOSS_COLUMNS)


def check_loss(name: str) -> str:
    if name not in LOSS_COLUMNS:
        raise DistillError(f"loss {name!r}: use one of {', '.join(LOSSES)}")
    return name
