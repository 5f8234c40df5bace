"""Goal-conditioned MJX environments, built by name.

The table maps each name to the module and factory that builds it; modules import lazily so that
building the reacher never pays for the humanoid's model.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from functools import cache

from distill.envs.base import ActionSemantics, EnvSpec, EnvState, MjxGoalEnv
from distill.errors import DistillError

ENV_FACTORIES: dict[str, tuple[str, str]] = {
    "reacher": ("distill.envs.reacher", "Reacher"),
    "reacher_egocentric": ("distill.envs.reacher", "make_reacher_egocentric"),
    "ant": ("distill.envs.ant", "make_ant"),
    "ant_u_maze": ("distill.envs.ant", "make_ant_u_maze"),
    "ant_big_maze": ("distill.envs.ant", "make_ant_big_maze"),
    "ant_hardest_maze": ("distill.envs.ant", "make_ant_hardest_maze"),
    "humanoid": ("distill.envs.humanoid", "make_humanoid"),
    "humanoid_u_maze": ("distill.envs.humanoid", "make_humanoid_u_maze"),
    "humanoid_big_maze": ("distill.envs.humanoid", "make_humanoid_big_maze"),
    "go2": ("distill.envs.go2", "make_go2"),
    "go2_obstacles": ("distill.envs.go2", "make_go2_obstacles"),
    "point_u_maze": ("distill.envs.point_maze", "make_point_u_maze"),
    "point_u_maze_blind": ("distill.envs.point_maze", "make_point_u_maze_blind"),
    "point_medium_maze": ("distill.envs.point_maze", "make_point_medium_maze"),
    "point_large_maze": ("distill.envs.point_maze", "make_point_large_maze"),
}


@cache
def make_env(name: str) -> MjxGoalEnv:
    """One shared instance per name: envs are stateless, and sharing lets jit caches be reused."""
    if name not in ENV_FACTORIES:
        raise DistillError(f"unknown env {name!r}; known envs: {', '.join(ENV_FACTORIES)}")
    module_name, factory = ENV_FACTORIES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise DistillError(f"env {name!r} is not implemented yet ({module_name} is missing)") from None
        raise
    return getattr(module, factory)()


@cache
def with_episode_length(env: MjxGoalEnv, episode_length: int) -> MjxGoalEnv:
    """The same env with episodes of `episode_length` steps (0: unchanged); one shared copy per
    length, so jit caches are reused. For quick runs of slow teachers: success figures then
    describe the shortened episodes."""
    if episode_length < 0:
        raise DistillError(f"episode_length {episode_length}: must be >= 0 (0 keeps the env's own)")
    if episode_length in (0, env.spec.episode_length):
        return env
    short = copy.copy(env)
    short.spec = dataclasses.replace(env.spec, episode_length=episode_length)
    return short


__all__ = ["ENV_FACTORIES", "ActionSemantics", "EnvSpec", "EnvState", "MjxGoalEnv", "make_env",
           "with_episode_length"]
