"""`distill env info NAME`: an env's dims, observation layout, actions and task constants."""

from __future__ import annotations

import argparse
import re

from distill.envs import make_env
from distill.envs.base import ObservationSpec

_SUFFIXES = (
    (re.compile(r"_v[xyz]$"), "_vel"),
    (re.compile(r"_[xyz]$"), ""),
    (re.compile(r"\d+$"), ""),
)


def _stem(name: str) -> str:
    for pattern, replacement in _SUFFIXES:
        if pattern.search(name):
            return pattern.sub(replacement, name)
    return name


def obs_groups(
    obs: ObservationSpec,
    declared: tuple[tuple[str, int, int], ...] | None = None,
) -> list[tuple[str, int, int]]:
    """(field, start, stop) per observation field: the env's own table, else runs of names that
    share a stem once an axis or index suffix is dropped (tip_x, tip_y, tip_z -> tip)."""
    if declared:
        return list(declared)
    groups: list[tuple[str, int, int]] = []
    for i, name in enumerate(obs.names):
        stem = _stem(name)
        if groups and groups[-1][0] == stem and groups[-1][2] == i and i != obs.state_dim:
            groups[-1] = (stem, groups[-1][1], i + 1)
        else:
            groups.append((stem, i, i + 1))
    return groups


def _field_lines(obs: ObservationSpec, declared: tuple[tuple[str, int, int], ...] | None) -> list[str]:
    groups = obs_groups(obs, declared)
    width = max(len(f"[{a}:{b}]") for _, a, b in groups)
    lines = []
    for field, start, stop in groups:
        part = "goal " if start >= obs.state_dim else "state"
        names = obs.names[start:stop]
        detail = ", ".join(names) if len(names) <= 4 else f"{names[0]} ... {names[-1]}"
        lines.append(f"  {f'[{start}:{stop}]':<{width}}  {part}  {field:<20} {detail}")
    return lines


def describe(name: str, backend: str | None = None) -> str:
    """The text `distill env info` prints."""
    env = make_env(name, backend)
    spec = env.spec
    frames = env.n_frames
    timestep = spec.control_dt / frames
    goal_idx = (
        f"{list(spec.goal_indices)} (state dims that hold the achieved goal)"
        if spec.goal_indices
        else "none: the state holds no absolute position; achieved goal = env.achieved_goal(data)"
    )
    teacher, student = spec.teacher_observation, spec.student_observation

    def dims(obs: ObservationSpec) -> str:
        return f"{obs.dim} = {obs.state_dim} state + {obs.goal_dim} goal"

    inputs = [f"input           {dims(teacher)}"]
    if spec.asymmetric:
        inputs = [
            f"teacher input   {dims(teacher)} (privileged simulator state)",
            f"student input   {dims(student)} (what the robot measures)",
        ]
    lines = [
        f"env             {spec.name}",
        *inputs,
        f"action          {spec.action_dim} in [-1, 1]",
        f"goal indices    {goal_idx}",
        f"control dt      {spec.control_dt:g} s ({1 / spec.control_dt:g} Hz) = {frames} x {timestep:g} s physics",
        f"episode length  {spec.episode_length} steps ({spec.episode_length * spec.control_dt:g} s)",
        f"success radius  {spec.success_radius:g}",
        f"physics         {env.physics_summary()}",
    ]
    if spec.asymmetric:
        lines += ["teacher observation", *_field_lines(teacher, env.obs_groups)]
        lines += ["student observation", *_field_lines(student, env.student_obs_groups)]
    else:
        lines += ["observation", *_field_lines(teacher, env.obs_groups)]
    lines.append("actions")
    for i, action in enumerate(spec.action_names):
        lines.append(f"  [{i}] {action}")
    return "\n".join(lines)


def info_command(args: argparse.Namespace) -> int:
    print(describe(args.name, getattr(args, "backend", None)))
    return 0
