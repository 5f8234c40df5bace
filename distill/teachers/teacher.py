"""A frozen CRL teacher: actor and critic weights plus what they were trained on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from distill.errors import DistillError
from distill.paths import teachers_dir
from distill.teachers import checkpoint, networks
from distill.teachers.networks import CRLArch, Params


@dataclass(frozen=True)
class Teacher:
    """Frozen weights and jit'd inference; arrays (numpy or jax, batched) in, arrays out."""

    name: str
    env: str
    arch: CRLArch
    actor_params: Params
    critic_params: Params
    meta: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None
    compute_dtype: str = "float32"
    """"bfloat16" runs inference in bf16 (weights and activations; LayerNorm still normalises in
    float32): about half the memory traffic for deep teachers on a GPU. Outputs stay float32."""

    @cached_property
    def _actor_dist(self):
        return jax.jit(networks.actor_dist)

    @cached_property
    def _critic(self):
        return jax.jit(networks.critic_value)

    def actor_dist(self, obs) -> tuple[jax.Array, jax.Array]:
        return self._actor_dist(self.actor_params, jnp.asarray(obs, jnp.float32))

    def act(self, obs) -> jax.Array:
        return jnp.tanh(self.actor_dist(obs)[0])

    def critic(self, state, action, goal) -> jax.Array:
        f32 = lambda x: jnp.asarray(x, jnp.float32)
        return self._critic(self.critic_params, f32(state), f32(action), f32(goal))

    def with_compute_dtype(self, compute_dtype: str) -> Teacher:
        """The same teacher computing in `compute_dtype` (weights cast; this one is left as it is)."""
        if compute_dtype not in COMPUTE_DTYPES:
            raise DistillError(f"compute_dtype {compute_dtype!r}: use one of {', '.join(COMPUTE_DTYPES)}")
        if compute_dtype == self.compute_dtype:
            return self
        return replace(self, actor_params=networks.cast_params(self.actor_params, compute_dtype),
                       critic_params=networks.cast_params(self.critic_params, compute_dtype),
                       compute_dtype=compute_dtype)

    @property
    def weights_sha256(self) -> str:
        return (self.meta.get("weights") or {}).get("sha256", "")

    @property
    def random_init(self) -> bool:
        return bool(self.meta.get("random_init", False))


def resolve_teacher_dir(name_or_dir: str | Path) -> Path:
    """A folder path, or a zoo name under teachers/."""
    candidate = Path(name_or_dir)
    if (candidate / checkpoint.TOML_NAME).is_file():
        return candidate
    zoo = teachers_dir() / str(name_or_dir)
    if (zoo / checkpoint.TOML_NAME).is_file():
        return zoo
    known = sorted(p.parent.name for p in teachers_dir().glob(f"*/{checkpoint.TOML_NAME}"))
    raise DistillError(
        f"unknown teacher {str(name_or_dir)!r}: no {zoo / checkpoint.TOML_NAME}; "
        f"known teachers: {', '.join(known) or 'none'} (import one with `distill teacher import`)"
    )


COMPUTE_DTYPES = ("float32", "bfloat16")


def load_teacher(
    name_or_dir: str | Path, random_init: bool = False, seed: int = 0, compute_dtype: str = "float32"
) -> Teacher:
    """Loads a native teacher; `random_init` builds its architecture with fresh weights
    (for systems benchmarks only: success figures from it are meaningless)."""
    if compute_dtype not in COMPUTE_DTYPES:
        raise DistillError(f"compute_dtype {compute_dtype!r}: use one of {', '.join(COMPUTE_DTYPES)}")
    directory = resolve_teacher_dir(name_or_dir)
    doc = checkpoint.read_toml(directory)
    arch = checkpoint.arch_from_toml(doc, directory)
    name = doc.get("name", directory.name)
    if random_init:
        k_a, k_c = jax.random.split(jax.random.PRNGKey(seed))
        actor, critic = networks.init_actor(k_a, arch), networks.init_critic(k_c, arch)
        meta = dict(doc, random_init=True)
    else:
        weights_path = directory / (doc.get("weights") or {}).get("file", checkpoint.WEIGHTS_NAME)
        if not weights_path.is_file():
            hint = doc.get("missing_weights_hint") or (
                f"import a checkpoint with `distill teacher import PATH --name {name}` or train one with "
                f"`make teacher TEACHER={name}`"
            )
            raise DistillError(
                f"teacher {name!r} has no weights ({weights_path} is missing): {hint}; "
                "or pass --random-init for systems benchmarks only"
            )
        actor_np, critic_np = checkpoint.load_weights(directory, doc)
        to_jax = lambda t: jax.tree_util.tree_map(jnp.asarray, t)
        actor, critic = to_jax(actor_np), to_jax(critic_np)
        meta = doc
    teacher = Teacher(name=name, env=doc["env"], arch=arch, actor_params=actor, critic_params=critic,
                      meta=meta, directory=directory)
    return teacher.with_compute_dtype(compute_dtype)


def as_numpy(x) -> np.ndarray:
    return np.asarray(jax.device_get(x))
