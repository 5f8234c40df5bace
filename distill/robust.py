"""What a robot does to its policy that a simulator does not: noisy sensors, stale readings, late actions.

`Perturbation` is resolved once from a run's [distill] keys against the env's student observation
(noise scales are given per field name, e.g. `ball` or `goal` in `distill env info`) and applied
only to what the student reads; the teacher always labels from its own clean observation. The same
rules run in two places:

- in JAX (`perceive`, `actuate`, `perturb_reset`), inside jit'd MJX rollouts (collection and
  evaluation), one batch of envs at a time;
- in numpy (`NumpyPerturbation`), around a single env stepped by a robot-side style loop
  (`distill eval --engine mujoco`) or ONNX Runtime.

At each control step, in this order:
1. noise: the observation plus Gaussian noise of std `scale` or uniform noise in ±`scale`, per dim;
2. stale: with probability `stale_prob` the student gets the observation it got at the previous
   step instead (a sensor that did not refresh; never on an episode's first step);
3. delay: the action applied to the env is the one computed `delay` control steps earlier; for the
   first `delay` steps of an episode nothing computed has arrived yet and the action is zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from distill.errors import DistillError

NOISE_KINDS = ("none", "gaussian", "uniform")
MAX_DELAY = 100


def check_settings(noise: str, scales: Mapping[str, float], delay: int, stale_prob: float) -> None:
    """Config-level checks that need no env (the field names are checked by `Perturbation.resolve`)."""
    if noise not in NOISE_KINDS:
        raise DistillError(f"obs_noise = {noise!r}: use one of {', '.join(NOISE_KINDS)}")
    if not isinstance(scales, Mapping):
        raise DistillError(f"obs_noise_scale must be a table of field = scale, got {type(scales).__name__}")
    for name, value in scales.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value < math.inf):
            raise DistillError(f"obs_noise_scale.{name} = {value!r}: expected a non-negative number")
    if noise == "none" and any(v > 0 for v in scales.values()):
        raise DistillError("obs_noise_scale is set but obs_noise = \"none\"; choose \"gaussian\" or \"uniform\"")
    if noise != "none" and not any(v > 0 for v in scales.values()):
        raise DistillError(f"obs_noise = {noise!r} needs obs_noise_scale (a table of field = scale)")
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY:
        raise DistillError(f"action_delay = {delay!r}: expected an integer in [0, {MAX_DELAY}] (control steps)")
    if isinstance(stale_prob, bool) or not isinstance(stale_prob, (int, float)) or not 0.0 <= stale_prob < 1.0:
        raise DistillError(f"stale_obs_prob = {stale_prob!r}: expected a number in [0, 1)")


@dataclass(frozen=True)
class Perturbation:
    """The perturbations of one run, per dim of the student's observation (hashable: it is a static
    argument of the jit'd rollouts)."""

    noise: str = "none"
    scales: tuple[float, ...] = ()
    """Per observation dim: the Gaussian's std, or the uniform noise's half-width."""
    delay: int = 0
    stale_prob: float = 0.0

    @property
    def active(self) -> bool:
        return self.noisy or self.delay > 0 or self.stale_prob > 0

    @property
    def noisy(self) -> bool:
        return self.noise != "none" and any(s > 0 for s in self.scales)

    @classmethod
    def resolve(cls, noise: str, scales: Mapping[str, float], delay: int, stale_prob: float,
                fields: list[tuple[str, int, int]], names: tuple[str, ...]) -> Perturbation:
        """Per-dim scales from per-field ones: a key names a field of the student's observation
        (`fields`: (name, start, stop)) or a single entry of it (`names`)."""
        check_settings(noise, scales, delay, stale_prob)
        per_dim = [0.0] * len(names)
        by_field = {name: (start, stop) for name, start, stop in fields}
        for key, value in scales.items():
            if key in by_field:
                start, stop = by_field[key]
            elif key in names:
                start = names.index(key)
                stop = start + 1
            else:
                raise DistillError(f"obs_noise_scale.{key}: no such field in the student's observation; fields: "
                                   f"{', '.join(by_field)} (or single entries: {', '.join(names)})")
            for i in range(start, stop):
                per_dim[i] = float(value)
        return cls(noise, tuple(per_dim) if noise != "none" else (), int(delay), float(stale_prob))

    def describe(self) -> str:
        parts = []
        if self.noisy:
            parts.append(f"{self.noise} observation noise")
        if self.stale_prob > 0:
            parts.append(f"stale observations p={self.stale_prob:g}")
        if self.delay > 0:
            parts.append(f"action delay {self.delay} step(s)")
        return ", ".join(parts) or "none"


NONE = Perturbation()


# --- JAX ------------------------------------------------------------------------------------------
def perturb_init(p: Perturbation, batch: int, step_dim: int, action_dim: int) -> dict[str, jax.Array]:
    """The perturbation state of `batch` envs at their first step (batch axis first)."""
    return {"last": jnp.zeros((batch, step_dim), jnp.float32),
            "queue": jnp.zeros((batch, p.delay, action_dim), jnp.float32),
            "fresh": jnp.ones((batch,), bool)}


def perceive(p: Perturbation, state: dict, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
    """What the student reads this step: obs [B, D] noised and maybe stale."""
    k_noise, k_stale = jax.random.split(key)
    seen = obs
    if p.noisy:
        scale = jnp.asarray(p.scales, jnp.float32)
        draw = (jax.random.normal(k_noise, obs.shape) if p.noise == "gaussian"
                else jax.random.uniform(k_noise, obs.shape, minval=-1.0, maxval=1.0))
        seen = obs + scale * draw
    if p.stale_prob > 0:
        stale = (jax.random.uniform(k_stale, obs.shape[:1]) < p.stale_prob) & ~state["fresh"]
        seen = jnp.where(stale[:, None], state["last"], seen)
    return seen, {**state, "last": seen, "fresh": jnp.zeros_like(state["fresh"])}


def actuate(p: Perturbation, state: dict, action: jax.Array) -> tuple[jax.Array, dict]:
    """The action that reaches the env this step: the one computed `delay` steps ago."""
    if p.delay == 0:
        return action, state
    queue = state["queue"]
    return queue[:, 0], {**state, "queue": jnp.concatenate([queue[:, 1:], action[:, None]], axis=1)}


def perturb_reset(p: Perturbation, state: dict, done: jax.Array) -> dict:
    """Envs whose episode ended start the next one with nothing in flight."""
    return {**state, "fresh": state["fresh"] | done,
            "queue": jnp.where(done[:, None, None], 0.0, state["queue"])}


# --- numpy ----------------------------------------------------------------------------------------
class NumpyPerturbation:
    """The same rules for `batch` envs outside jit (one env in a robot-style loop, or the envs of an
    ONNX Runtime evaluation)."""

    def __init__(self, p: Perturbation, batch: int, step_dim: int, action_dim: int, seed: int) -> None:
        self.p = p
        self.rng = np.random.default_rng(seed)
        self.scales = np.asarray(p.scales, np.float32) if p.noisy else None
        self.last = np.zeros((batch, step_dim), np.float32)
        self.queue = np.zeros((batch, p.delay, action_dim), np.float32)
        self.fresh = np.ones(batch, bool)

    def perceive(self, obs: np.ndarray) -> np.ndarray:
        seen = np.asarray(obs, np.float32)
        if self.scales is not None:
            draw = (self.rng.standard_normal(seen.shape) if self.p.noise == "gaussian"
                    else self.rng.uniform(-1.0, 1.0, seen.shape))
            seen = (seen + self.scales * draw).astype(np.float32)
        if self.p.stale_prob > 0:
            stale = (self.rng.random(seen.shape[0]) < self.p.stale_prob) & ~self.fresh
            seen = np.where(stale[:, None], self.last, seen)
        self.last = seen.copy()
        self.fresh[:] = False
        return seen

    def actuate(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, np.float32)
        if self.p.delay == 0:
            return action
        out = self.queue[:, 0].copy()
        self.queue = np.concatenate([self.queue[:, 1:], action[:, None]], axis=1)
        return out

    def reset(self, done: np.ndarray) -> None:
        done = np.asarray(done, bool)
        self.fresh |= done
        self.queue[done] = 0.0
