"""A frozen CRL teacher: actor and critic weights plus what they were trained on."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from distill.errors import DistillError
from distill.paths import teachers_dir
from distill.teachers import checkpoint, networks
from distill.teachers.manifest import TeacherManifest, random_init_identity, read_manifest
from distill.teachers.networks import CRLArch, Params


@dataclass(frozen=True)
class Teacher:
    """Frozen weights and jit'd inference; arrays (numpy or jax, batched) in, arrays out."""

    name: str
    env: str
    arch: CRLArch
    actor_params: Params
    critic_params: Params
    manifest: TeacherManifest | None = None
    """What teacher.toml says (None for teachers built in code, e.g. in tests)."""
    directory: Path | None = None
    compute_dtype: str = "float32"
    """"bfloat16" runs inference in bf16 (weights and activations; LayerNorm still normalises in
    float32): about half the memory traffic for deep teachers on a GPU. Outputs stay float32."""
    random_init_seed: int | None = None
    """Set when the weights were drawn at random (systems benchmarks), never trained."""
    backend: str | None = None
    """The physics backend the teacher was trained in (None: the env's default)."""

    @cached_property
    def _actor_dist(self):
        return jax.jit(networks.actor_dist_fn(self.arch.activation))

    @cached_property
    def _critic(self):
        return jax.jit(partial(networks.critic_value, activation=self.arch.activation))

    def actor_dist(self, obs) -> tuple[jax.Array, jax.Array]:
        return self._actor_dist(self.actor_params, jnp.asarray(obs, jnp.float32))

    def act(self, obs) -> jax.Array:
        return jnp.tanh(self.actor_dist(obs)[0])

    def critic(self, state, action, goal) -> jax.Array:
        f32 = lambda x: jnp.asarray(x, jnp.float32)
        return self._critic(self.critic_params, f32(state), f32(action), f32(goal))

    @property
    def act_fn(self):
        """`act(params, obs)` for rollouts: one function object per activation (jit caches reuse it)."""
        return networks.actor_act_fn(self.arch.activation)

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
    def random_init(self) -> bool:
        return self.random_init_seed is not None

    @property
    def weights_identity(self) -> str:
        """What labelled: the weights file's sha256 (verified when loaded), or
        `random-init:<seed>` for random weights."""
        if self.random_init_seed is not None:
            return random_init_identity(self.random_init_seed)
        if self.manifest is None or self.manifest.weights is None:
            return ""
        return self.manifest.weights.sha256

    @property
    def env_backend(self) -> str:
        """The backend to build the teacher's env on (the recorded one, else the env's default)."""
        from distill.envs import check_backend

        return check_backend(self.env, self.backend)


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
    manifest = read_manifest(directory)
    arch, name = manifest.arch, manifest.name
    if random_init:
        k_a, k_c = jax.random.split(jax.random.PRNGKey(seed))
        actor, critic = networks.init_actor(k_a, arch), networks.init_critic(k_c, arch)
    else:
        if not manifest.has_weights:
            hint = manifest.missing_weights_hint or (
                f"import a checkpoint with `distill teacher import PATH --name {name}` or train one with "
                f"`make teacher TEACHER={name}`"
            )
            raise DistillError(
                f"teacher {name!r} has no weights ({manifest.weights_path} is missing): {hint}; "
                "or pass --random-init for systems benchmarks only"
            )
        actor_np, critic_np = checkpoint.load_weights(directory, manifest)
        to_jax = lambda t: jax.tree_util.tree_map(jnp.asarray, t)
        actor, critic = to_jax(actor_np), to_jax(critic_np)
    teacher = Teacher(name=name, env=manifest.env, arch=arch, actor_params=actor, critic_params=critic,
                      manifest=manifest, directory=directory,
                      random_init_seed=seed if random_init else None, backend=manifest.backend)
    return teacher.with_compute_dtype(compute_dtype)


def as_numpy(x) -> np.ndarray:
    return np.asarray(jax.device_get(x))
