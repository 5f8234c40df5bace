"""The student's observation as named fields: the one table that noise scales, history layouts and
deploy files are written against (`distill env info NAME` prints it)."""

from __future__ import annotations

from distill.envs.base import GoalEnv
from distill.envs.describe import obs_groups


def student_fields(env: GoalEnv) -> list[tuple[str, int, int]]:
    """(field, start, stop) of each field of the student's observation, in order."""
    declared = env.student_obs_groups if env.spec.asymmetric else env.obs_groups
    return obs_groups(env.spec.student_observation, declared)


def field_sizes(env: GoalEnv) -> tuple[int, ...]:
    """Sizes of those fields: how a history student stacks its window (per field, oldest first)."""
    return tuple(stop - start for _, start, stop in student_fields(env))
