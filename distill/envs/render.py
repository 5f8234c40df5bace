"""`distill env render NAME --out x.png`: one env state drawn by MuJoCo's offscreen renderer.

The MJX state is copied back into an `mujoco.MjData` and drawn through an offscreen OpenGL context.
The backend is chosen at run time (EGL, then OSMesa), each tried in a child process first: PyOpenGL
binds one platform per process, so a failed EGL attempt here would leave no way to try OSMesa.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass

import jax
import mujoco
import numpy as np

from distill.atomic import write_bytes_atomic
from distill.envs import make_env
from distill.envs.base import EnvState, GoalEnv
from distill.errors import DistillError

BACKENDS = {
    "egl": "libegl1 and libgl1-mesa-dri",
    "osmesa": "libosmesa6",
}
"""MuJoCo's headless GL backends and the Debian packages that provide them."""

WIDTH, HEIGHT = 640, 480

_PROBE = (
    "import mujoco, importlib; m = importlib.import_module('mujoco.' + {name!r}); "
    "c = m.GLContext(16, 16); c.make_current(); c.free()"
)


@dataclass(frozen=True)
class View:
    """A free camera: where it looks, from how far, and from which direction (degrees)."""

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float = 135.0
    elevation: float = -35.0


# --- GL backend --------------------------------------------------------------------------------
def _probe(name: str) -> str | None:
    """None if an offscreen context can be made with `name` (in a child process), else why not."""
    env = dict(os.environ, MUJOCO_GL=name, PYOPENGL_PLATFORM=name)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE.format(name=name)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timed out creating a context"
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {proc.returncode}"


@functools.cache
def gl_backend() -> str:
    """The backend this process renders with: MUJOCO_GL if it names one, else the first that works."""
    bound = os.environ.get("PYOPENGL_PLATFORM", "").lower() if "OpenGL" in sys.modules else ""
    requested = os.environ.get("MUJOCO_GL", "").lower()
    if bound:
        candidates = [bound] if bound in BACKENDS else []
    else:
        candidates = [requested] if requested in BACKENDS else list(BACKENDS)
    failures = []
    for name in candidates:
        reason = _probe(name)
        if reason is None:
            return name
        failures.append(f"{name}: {reason}")
    if not candidates:
        failures.append(f"PyOpenGL is already bound to {bound!r}, not egl or osmesa")
    install = " or ".join(f"Debian's {pkgs} ({name})" for name, pkgs in BACKENDS.items())
    raise DistillError(
        f"no headless OpenGL backend works ({'; '.join(failures)}); install {install}, "
        f"e.g. `apt-get install -y libegl1 libgl1-mesa-dri`"
    )


# --- drawing -----------------------------------------------------------------------------------
def to_mj_data(env: GoalEnv, state: EnvState) -> mujoco.MjData:
    """An MjData holding one (unbatched) MJX state, with the goal marker moved onto the goal."""
    mj_data = mujoco.MjData(env.mj_model)
    mj_data.qpos[:] = np.asarray(env.qpos(state.data))
    mj_data.qvel[:] = np.asarray(env.qvel(state.data))
    for field in ("ctrl", "mocap_pos", "mocap_quat"):
        value = np.asarray(getattr(state.data, field, np.zeros(0)))
        if value.size:
            getattr(mj_data, field)[:] = value
    if hasattr(env, "show_goal"):
        env.show_goal(mj_data, np.asarray(state.goal))
    mujoco.mj_forward(env.mj_model, mj_data)
    return mj_data


def default_view(env: GoalEnv, state: EnvState, mj_data: mujoco.MjData) -> View:
    """Frames the robot, the goal and the static scenery (maze walls, obstacles, arena), looking
    down steeply when there are walls to show and from lower down on open ground."""
    m = env.mj_model
    points = [np.asarray(env.achieved_goal(state.data), float), np.asarray(state.goal, float)]
    points = [np.pad(p, (0, 3 - p.size))[:3] for p in points]
    lows, highs = [p - 0.3 for p in points], [p + 0.3 for p in points]
    static = [
        g
        for g in range(m.ngeom)
        if m.geom_bodyid[g] == 0 and m.geom_type[g] != mujoco.mjtGeom.mjGEOM_PLANE
    ]
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    for g in static:
        centre, half = m.geom_aabb[g, :3], m.geom_aabb[g, 3:]
        corners = (
            mj_data.geom_xpos[g] + (centre + signs * half) @ mj_data.geom_xmat[g].reshape(3, 3).T
        )
        lows.append(corners.min(axis=0))
        highs.append(corners.max(axis=0))
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    radius = 0.5 * float(np.linalg.norm((high - low)[:2]))
    half_fov = np.deg2rad(m.vis.global_.fovy) / 2
    distance = max(1.05 * radius / np.sin(half_fov), 0.5)
    centre = (low + high) / 2
    centre[2] = 0.0
    return View(lookat=tuple(centre), distance=distance, elevation=-60.0 if static else -35.0)


def render_state(
    env: GoalEnv,
    state: EnvState,
    view: View | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> np.ndarray:
    """RGB uint8 image (height, width, 3) of one env state."""
    backend = gl_backend()
    module = importlib.import_module(f"mujoco.{backend}")
    mj_model = env.mj_model
    width = min(width, mj_model.vis.global_.offwidth)
    height = min(height, mj_model.vis.global_.offheight)
    mj_data = to_mj_data(env, state)
    if view is None:
        view = default_view(env, state, mj_data)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = view.lookat
    camera.distance, camera.azimuth, camera.elevation = view.distance, view.azimuth, view.elevation

    context = module.GLContext(width, height)
    context.make_current()
    mjr_context = None
    try:
        mjr_context = mujoco.MjrContext(mj_model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, mjr_context)
        scene = mujoco.MjvScene(mj_model, maxgeom=2000)
        mujoco.mjv_updateScene(
            mj_model, mj_data, mujoco.MjvOption(), None, camera, mujoco.mjtCatBit.mjCAT_ALL, scene
        )
        viewport = mujoco.MjrRect(0, 0, width, height)
        mujoco.mjr_render(viewport, scene, mjr_context)
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(rgb, None, viewport, mjr_context)
    finally:
        if mjr_context is not None:
            mjr_context.free()
        context.free()
    return np.ascontiguousarray(rgb[::-1])


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an [H, W, 3] uint8 image, encoded by Pillow."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


# --- command -------------------------------------------------------------------------------------
def rollout_state(env: GoalEnv, seed: int, steps: int) -> EnvState:
    """The state after `steps` uniformly random actions from the reset drawn with `seed`."""
    key, act_key = jax.random.split(jax.random.PRNGKey(seed))
    state = jax.jit(env.reset)(key)
    if steps <= 0:
        return state

    def body(s, k):
        action = jax.random.uniform(k, (env.spec.action_dim,), minval=-1.0, maxval=1.0)
        return env.step(s, action), None

    run = jax.jit(lambda s, keys: jax.lax.scan(body, s, keys)[0])
    return run(state, jax.random.split(act_key, steps))


def render_command(args: argparse.Namespace) -> int:
    if args.steps < 0:
        raise DistillError(f"--steps must be >= 0, got {args.steps}")
    if not str(args.out).lower().endswith(".png"):
        raise DistillError(f"--out must name a .png file, got {args.out!r}")
    env = make_env(args.name, getattr(args, "backend", None))
    gl_backend()
    state = rollout_state(env, args.seed, args.steps)
    rgb = render_state(env, state)
    write_bytes_atomic(args.out, png_bytes(rgb))
    goal = ", ".join(f"{v:.2f}" for v in np.asarray(state.goal))
    print(
        f"wrote {args.out} ({rgb.shape[1]}x{rgb.shape[0]}, {args.name}, seed {args.seed}, "
        f"{args.steps} steps, goal ({goal}), GL {gl_backend()})"
    )
    return 0
