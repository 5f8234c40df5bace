"""Envs whose physics is one of Brax's own pipelines: how the paper's teachers were trained.

scaling-crl trains its ant and humanoid tasks with Brax 0.10.1's `spring` pipeline (and offers
Brax's `mjx` pipeline on a branch). A teacher only means something in the physics it learned in,
so these envs step those pipelines from the `brax` package itself, on Brax's own models, rather
than a re-creation in MuJoCo. Two behaviours of the versions scaling-crl pins are restored here:

- Time step. Brax 0.10.1's `System` carried its own `dt` (spring integrates with it; the model's
  `opt.timestep` was ignored by spring); from 0.10.4 on, `opt.timestep` is read. Each task states
  the step 0.10.1 actually took and it is written into `opt.timestep`.
- MJX warm start. MJX <= 3.2 saved the solver's acceleration as the next warm start inside
  `forward`, so Brax's `mjx` pipeline started its first step warm; MJX 3.3+ saves it only when
  integrating, so the first step of a fresh state starts cold, and with one Newton iteration the
  result differs by ~1.5 mm after one ant step. `init_physics` restores the warm start.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jax
import jax.numpy as jnp
import mujoco

from distill.envs.base import EnvSpec, GoalEnv

BACKENDS = ("spring", "mjx")
MJX_SOLVER = {
    "opt.solver": mujoco.mjtSolver.mjSOL_NEWTON,
    "opt.disableflags": mujoco.mjtDisableBit.mjDSBL_EULERDAMP,
    "opt.iterations": 1,
    "opt.ls_iterations": 4,
}
"""The solver settings scaling-crl's MJX branch gives Brax's `mjx` pipeline."""


def _import_brax():
    """Brax's pipelines, imported on first use (they pull in flax; most commands never need it)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import brax
        from brax.io import mjcf
        from brax.mjx import pipeline as mjx_pipeline
        from brax.spring import pipeline as spring_pipeline
    return brax, mjcf, {"spring": spring_pipeline, "mjx": mjx_pipeline}


def brax_asset(name: str) -> Path:
    """One of the models the `brax` package ships (envs/assets/ant.xml, humanoid.xml)."""
    brax, _, _ = _import_brax()
    path = Path(brax.__file__).parent / "envs" / "assets" / name
    if not path.is_file():
        raise FileNotFoundError(f"brax {brax.__version__} does not ship {name} (looked in {path.parent})")
    return path


def brax_version() -> str:
    return _import_brax()[0].__version__


def load_system(root: ElementTree.Element) -> Any:
    """A Brax `System` from an edited MJCF tree, through Brax's own loader (which fuses jointless
    bodies into their parents, as the paper's envs were loaded)."""
    _, mjcf, _ = _import_brax()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Brax's loader warns that Brax is unmaintained
        return mjcf.loads(ElementTree.tostring(root, encoding="unicode"))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class BraxPhysics:
    """A Brax pipeline state plus the control applied on the step that led to it (the humanoid
    observes its actuator forces, which Brax's spring state does not keep)."""

    pipeline: Any
    ctrl: jax.Array


class BraxGoalEnv(GoalEnv):
    """Physics from Brax's `spring` or `mjx` pipeline; subclasses define the task."""

    def __init__(self, sys: Any, spec: EnvSpec, backend: str, timestep: float, n_frames: int) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"{spec.name}: backend {backend!r}: use one of {', '.join(BACKENDS)}")
        _, _, pipelines = _import_brax()
        self.backend = backend
        self._pipeline = pipelines[backend]
        self.device = jax.local_devices()[0]
        sys = sys.tree_replace({"opt.timestep": timestep})
        if backend == "mjx":
            sys = sys.tree_replace(MJX_SOLVER)
        self.mj_model = sys.mj_model
        self.sys = jax.device_put(sys.replace(mj_model=None), self.device)
        self.spec = spec
        self.n_frames = n_frames
        self.timestep = timestep
        if abs(timestep * n_frames - spec.control_dt) > 1e-9:
            raise ValueError(f"{spec.name}: control_dt {spec.control_dt} != {timestep} x {n_frames}")

    def scale_action(self, action: jax.Array) -> jax.Array:
        """The control a policy action in [-1, 1] becomes (identity unless a task scales it)."""
        return action

    def init_physics(self, qpos: jax.Array, qvel: jax.Array) -> BraxPhysics:
        state = self._pipeline.init(self.sys, qpos, qvel)
        if self.backend == "mjx":
            state = state.replace(qacc_warmstart=state.qacc)
        return BraxPhysics(state, jnp.zeros(self.spec.action_dim, jnp.float32))

    def step_physics(self, physics: BraxPhysics, action: jax.Array) -> BraxPhysics:
        ctrl = self.scale_action(action)

        def substep(state, _):
            return self._pipeline.step(self.sys, state, ctrl), None

        state, _ = jax.lax.scan(substep, physics.pipeline, None, length=self.n_frames)
        return BraxPhysics(state, ctrl)

    def qpos(self, physics: BraxPhysics) -> jax.Array:
        return physics.pipeline.q

    def qvel(self, physics: BraxPhysics) -> jax.Array:
        return physics.pipeline.qd

    def physics_summary(self) -> str:
        engine = f"Brax {brax_version()} `{self.backend}` pipeline"
        if self.backend == "mjx":
            engine += f" (MuJoCo/MJX {mujoco.__version__}, Newton solver, 1 iteration, 4 line-search)"
        return engine
