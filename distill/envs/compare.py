"""Replay a trajectory recorded in another implementation of an env and measure how far ours is.

A teacher labels well only in the physics it was trained in, so before distilling a teacher from
scaling-crl a user can record one trajectory with their own install (README, "Checking an env
against your scaling-crl install") and replay it here: same initial state and goal, the same
actions, and at every step the distance between the two achieved goals (the coordinates success
is measured on) and the relative error of the whole observation.

The file format is the fixtures' (tests/fixtures/scaling_crl_envs/README.md): `q`, `qd` (row 0 is
the initial state), `obs` (row 0 after reset; the goal is its last `goal_dim` entries), `actions`
[T, action_dim] in [-1, 1], `done` [T], `meta` (JSON naming `env` and `backend`).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.errors import DistillError

POSITION_TOLERANCE_M = 1e-3
OBS_RELATIVE_TOLERANCE = 1e-3
CHECKED_STEPS = 10
"""Parity is judged over the first 10 control steps: chaotic dynamics (a falling ant, contacts
switching on) amplify float32 round-off from the reference's jax/XLA build, so later steps are
reported but not judged."""
REQUIRED = ("q", "qd", "obs", "actions", "done", "meta")


@dataclass(frozen=True)
class Reference:
    """A recorded trajectory, checked for shape and finiteness."""

    path: Path
    env: str
    backend: str
    q: np.ndarray
    qd: np.ndarray
    obs: np.ndarray
    actions: np.ndarray
    done: np.ndarray
    meta: dict

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def first_done(self) -> int | None:
        """The 1-based step at which `done` first rose, or None."""
        hits = np.flatnonzero(self.done > 0)
        return int(hits[0]) + 1 if hits.size else None

    def shifted_actions(self, shift: int = 1) -> Reference:
        """The same file with its actions rolled by `shift` steps: a corrupted reference."""
        from dataclasses import replace

        return replace(self, actions=np.roll(self.actions, shift, axis=0))


def read_reference(path: str | Path) -> Reference:
    """Loads and checks a reference file; any problem is a one-line DistillError."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: no such reference file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED if k not in npz.files]
            if missing:
                raise DistillError(
                    f"{path}: not a reference trajectory: missing {', '.join(missing)} "
                    f"(needs {', '.join(REQUIRED)}; see README 'Checking an env against your scaling-crl install')"
                )
            arrays = {k: np.asarray(npz[k]) for k in REQUIRED}
    except DistillError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DistillError(f"{path}: not a readable .npz file ({' '.join(str(exc).split())[:160]})") from None
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError as exc:
        raise DistillError(f"{path}: field 'meta' is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DistillError(f"{path}: field 'meta' is not a JSON object")
    q, qd, obs, actions, done = (arrays[k] for k in ("q", "qd", "obs", "actions", "done"))
    t = actions.ndim == 2 and actions.shape[0]
    if not t or q.ndim != 2 or qd.ndim != 2 or obs.ndim != 2 or done.ndim != 1:
        raise DistillError(
            f"{path}: expected 2-D q, qd, obs, actions and 1-D done; got shapes "
            f"q {q.shape}, qd {qd.shape}, obs {obs.shape}, actions {actions.shape}, done {done.shape}"
        )
    if done.shape[0] != t or obs.shape[0] < t + 1:
        raise DistillError(
            f"{path}: {t} actions need {t} done flags and {t + 1} observations (row 0 after reset); "
            f"got {done.shape[0]} and {obs.shape[0]}"
        )
    for name, a in (("q", q), ("qd", qd), ("obs", obs), ("actions", actions)):
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a[: t + 1]).all():
            raise DistillError(f"{path}: field {name!r} holds non-numeric or non-finite values")
    return Reference(
        path=path, env=str(meta.get("env", "")), backend=str(meta.get("backend", "")),
        q=q.astype(np.float32), qd=qd.astype(np.float32), obs=obs.astype(np.float32),
        actions=actions.astype(np.float32), done=done.astype(np.float32), meta=meta,
    )


@dataclass(frozen=True)
class StepDeviation:
    step: int
    """0 is the state after reset; k the state after k actions."""
    position_m: float
    """Distance between our achieved goal and the reference's (the success coordinates)."""
    obs_relative: float
    """|obs_ours - obs_ref| / |obs_ref|."""


@dataclass(frozen=True)
class Comparison:
    env: str
    backend: str
    reference: str
    steps: tuple[StepDeviation, ...]
    checked_steps: int
    """How many steps after reset the tolerance was judged on."""
    first_done: int | None
    position_tolerance_m: float = POSITION_TOLERANCE_M
    obs_relative_tolerance: float = OBS_RELATIVE_TOLERANCE

    def within(self, upto: int) -> tuple[float, float]:
        """Largest (position, relative observation) deviation over steps 0..upto."""
        rows = [s for s in self.steps if s.step <= upto]
        return max(s.position_m for s in rows), max(s.obs_relative for s in rows)

    @property
    def passed(self) -> bool:
        pos, rel = self.within(self.checked_steps)
        return pos <= self.position_tolerance_m and rel <= self.obs_relative_tolerance


def _check_env(reference: Reference, env_name: str | None, backend: str | None):
    from distill.envs import check_backend, make_env

    name = env_name or reference.env
    if not name:
        raise DistillError(f"{reference.path}: meta names no env; pass --env NAME")
    backend = backend or reference.backend or None
    env = make_env(name, check_backend(name, backend))
    spec = env.spec
    nq, nv = env.mj_model.nq, env.mj_model.nv
    want = {"q": nq, "qd": nv, "obs": spec.input_dim, "actions": spec.action_dim}
    for field, n in want.items():
        got = getattr(reference, field).shape[1]
        if got != n:
            raise DistillError(
                f"{reference.path}: field {field!r} has {got} columns but env {name!r} needs {n}; "
                "is this a recording of another env?"
            )
    return env


def replay(reference: Reference, env, steps: int) -> np.ndarray:
    """Our observations along the reference's actions: [steps + 1, input_dim], row 0 at reset.
    Physics only (no auto-reset, no episode limit), as the reference was recorded."""
    import jax
    import jax.numpy as jnp

    goal = jnp.asarray(reference.obs[0, env.spec.obs_dim:])
    init = jax.jit(lambda q, qd: env.init_physics(q, qd))
    step = _compiled_step(env)
    physics = init(jnp.asarray(reference.q[0]), jnp.asarray(reference.qd[0]))
    rows = [np.asarray(env.observation(physics, goal))]
    for k in range(steps):
        physics, obs = step(physics, jnp.asarray(reference.actions[k]), goal)
        rows.append(np.asarray(obs))
    return np.stack(rows)


_STEPS: dict[int, object] = {}


def _compiled_step(env):
    """One jit'd physics step + observation per env instance (reused across replays)."""
    import jax

    key = id(env)
    if key not in _STEPS:
        def step(physics, action, goal):
            nxt = env.step_physics(physics, action)
            return nxt, env.observation(nxt, goal)

        _STEPS[key] = (env, jax.jit(step))
    return _STEPS[key][1]


def compare(
    reference: Reference, env_name: str | None = None, backend: str | None = None,
    steps: int | None = None, check: int = CHECKED_STEPS,
) -> Comparison:
    """Replays up to the first `done` (inclusive; at most `steps`) and measures each step."""
    env = _check_env(reference, env_name, backend)
    last = reference.steps if reference.first_done is None else reference.first_done
    if steps is not None:
        if steps < 1:
            raise DistillError(f"--steps {steps}: must be >= 1")
        last = min(last, steps)
    ours = replay(reference, env, last)
    ref = reference.obs[: last + 1]
    goal_idx = np.asarray(env.spec.goal_indices)
    position = np.linalg.norm(ours[:, goal_idx] - ref[:, goal_idx], axis=1)
    relative = np.linalg.norm(ours - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
    rows = tuple(StepDeviation(k, float(position[k]), float(relative[k])) for k in range(last + 1))
    return Comparison(
        env=env.spec.name, backend=env.backend, reference=str(reference.path), steps=rows,
        checked_steps=min(check, last), first_done=reference.first_done,
    )


def format_comparison(c: Comparison, every: int = 1) -> str:
    from distill.commands import format_table

    rows = [
        (s.step, f"{s.position_m:.2e}", f"{s.obs_relative:.2e}", "checked" if s.step <= c.checked_steps else "")
        for s in c.steps if s.step % every == 0 or s.step in (c.checked_steps, c.steps[-1].step)
    ]
    table = format_table(("step", "goal coords (m)", "obs (relative)", ""), rows)
    pos, rel = c.within(c.checked_steps)
    pos_all, rel_all = c.within(c.steps[-1].step)
    ended = f"first done at step {c.first_done}" if c.first_done else "no done"
    verdict = "PASS" if c.passed else "FAIL"
    return "\n".join([
        f"{c.env} on {c.backend} against {c.reference} ({ended}; {len(c.steps) - 1} steps replayed)",
        table,
        (f"max over steps 0-{c.checked_steps}: {pos:.2e} m, {rel:.2e} relative "
         f"(tolerance {c.position_tolerance_m:g} m, {c.obs_relative_tolerance:g})"),
        f"max over steps 0-{c.steps[-1].step}: {pos_all:.2e} m, {rel_all:.2e} relative (reported, not judged)",
        f"{verdict}: {'within' if c.passed else 'beyond'} tolerance over the first {c.checked_steps} steps",
    ])


def compare_command(args) -> int:
    """`distill env compare --reference FILE.npz [--env NAME] [--backend B] [--steps N]`."""
    reference = read_reference(args.reference)
    result = compare(reference, args.env, args.backend, args.steps)
    print(format_comparison(result))
    return 0 if result.passed else 1
