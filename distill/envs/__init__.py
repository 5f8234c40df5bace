"""Goal-conditioned MJX environments, built by name.

The table maps each name to the module and factory that builds it; modules import lazily so that
building the reacher never pays for the humanoid's model.
"""

from __future__ import annotations

import importlib
from functools import cache

from distill.envs.base import ActionSemantics, EnvSpec, EnvState, MjxGoalEnv
from distill.errors import DistillError

ENV_FACTORIES: dict[str, tuple[str, str]] = {
    "reacher": ("distill.envs.reacher", "Reacher"),
    "ant": ("distill.envs.ant", "make_ant"),
    "ant_u_maze": ("distill.envs.ant", "make_ant_u_maze"),
    "ant_big_maze": ("distill.envs.ant", "make_ant_big_maze"),
    "ant_hardest_maze": ("distill.envs.ant", "make_ant_hardest_maze"),
    "humanoid": ("distill.envs.humanoid", "make_humanoid"),
    "humanoid_u_maze": ("distill.envs.humanoid", "make_humanoid_u_maze"),
    "humanoid_big_maze": ("distill.envs.humanoid", "make_humanoid_big_maze"),
    "go2": ("distill.envs.go2", "make_go2"),
    "go2_obstacles": ("distill.envs.go2", "make_go2_obstacles"),
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


__all__ = ["ENV_FACTORIES", "ActionSemantics", "EnvSpec", "EnvState", "MjxGoalEnv", "make_env"]
