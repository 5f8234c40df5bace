"""Import scaling-crl / JaxGCRL checkpoints as native teachers.

A scaling-crl run folder (`runs/<env>_<seed>_<time>/`: `step_N.pkl`, `final.pkl`, `args.pkl`)
says what the weights are: `args.pkl` (the script's `Args` dataclass, read as plain data by an
allow-list unpickler) gives the env, depths, widths, skip connections and activation, and the
checkpoint is checked against them. A bare checkpoint pickle imports with `--env`/`--backend`.

The checkpoint files are `pickle.dumps((alpha_params, actor_params, critic_params))` of flax trees in which
every layer is its own `Dense_k` / `LayerNorm_k`, numbered in creation order:
  actor:           Dense_0 (input), Dense_1…Dense_D (blocks), Dense_{D+1} (mean), Dense_{D+2} (log_std)
  critic encoders: Dense_0 (input), Dense_1…Dense_D (blocks), Dense_{D+1} (repr)
  every trunk:     LayerNorm_0 (input), LayerNorm_1…LayerNorm_D (blocks)
The architecture is read off the tree, checked against the env's dims, and the block layers are
stacked into our scanned layout [depth // 4, 4, ...].
"""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import distill
from distill.errors import DistillError
from distill.hashing import sha256_file
from distill.paths import teachers_dir
from distill.teachers import checkpoint
from distill.teachers.networks import ACTIVATIONS, CRLArch, Params
from distill.teachers.safe_unpickle import safe_load, safe_load_args

FORMAT = "scaling-crl pickle"
RUN_FORMAT = "scaling-crl run folder"
ARGS_NAME = "args.pkl"
FINAL_NAME = "final.pkl"
SCALING_CRL_BACKENDS: dict[str, str] = {
    **{env: "spring" for env in ("ant", "ant_u_maze", "ant_big_maze", "ant_hardest_maze", "humanoid",
                                 "humanoid_u_maze", "humanoid_big_maze", "humanoid_hardest_maze")},
}
"""The physics scaling-crl's train.py builds each env we have on (its `make_env`): spring for the
ant and humanoid tasks. Its MJX-only tasks (ant_push, the arm tasks) have no env here."""
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DENSE_RE = re.compile(r"^Dense_(\d+)$")
_NORM_RE = re.compile(r"^LayerNorm_(\d+)$")

# (obs_dim, goal_dim, action_dim) of the envs scaling-crl / JaxGCRL trained on (their train.py), so
# an import need not build an MJX model to learn three numbers; tests hold our envs to the same.
SCALING_CRL_ENV_DIMS: dict[str, tuple[int, int, int]] = {
    "reacher": (10, 3, 2),
    "ant": (29, 2, 8),
    "ant_u_maze": (29, 2, 8),
    "ant_big_maze": (29, 2, 8),
    "ant_hardest_maze": (29, 2, 8),
    "humanoid": (268, 3, 17),
    "humanoid_u_maze": (268, 3, 17),
    "humanoid_big_maze": (268, 3, 17),
    "humanoid_hardest_maze": (268, 3, 17),
}


@dataclass(frozen=True)
class EncoderShape:
    """What one flax trunk's tree says about itself."""

    in_dim: int
    width: int
    depth: int
    out_dims: tuple[int, ...]


@dataclass(frozen=True)
class ScalingCrlCheckpoint:
    """A scaling-crl checkpoint read into numpy: the flax trees as they were saved."""

    alpha: Params
    actor: Params
    critic: Params
    source: str


def read_checkpoint(path: str | Path) -> ScalingCrlCheckpoint:
    """Reads the pickle with the allow-list unpickler and checks its top-level layout."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        obj = safe_load(f, str(path))
    if not (
        isinstance(obj, (tuple, list)) and len(obj) == 3 and all(isinstance(x, dict) for x in obj)
    ):
        raise DistillError(
            f"{path}: not a scaling-crl checkpoint: expected a pickled tuple "
            "(alpha_params, actor_params, critic_params) of parameter dicts"
        )
    alpha, actor, critic = obj
    return ScalingCrlCheckpoint(alpha=alpha, actor=actor, critic=critic, source=str(path))


def _node(tree: Any, keys: tuple[str, ...], source: str) -> Any:
    node = tree
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            where = "/".join(keys[:i]) or "the root"
            have = ", ".join(sorted(node)[:6]) if isinstance(node, dict) else type(node).__name__
            raise DistillError(
                f"{source}: not a scaling-crl tree: no {key!r} under {where} (found: {have})"
            )
        node = node[key]
    return node


def _numbered(
    params: dict[str, Any], pattern: re.Pattern, what: str, where: str, source: str
) -> int:
    """How many `what_k` entries there are, requiring k = 0…n-1 without gaps."""
    indices = sorted(int(m.group(1)) for k in params if (m := pattern.match(k)))
    if indices != list(range(len(indices))) or not indices:
        raise DistillError(
            f"{source}: {where}: {what} layers are not numbered 0…n-1 (found {indices[:8]}…)"
        )
    return len(indices)


def _array(
    params: dict[str, Any], layer: str, leaf: str, shape: tuple[int, ...], where: str, source: str
) -> np.ndarray:
    value = _node(params, (layer, leaf), f"{source}: {where}")
    if not isinstance(value, np.ndarray) or value.shape != shape:
        got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        raise DistillError(f"{source}: {where}/{layer}/{leaf} has shape {got}, expected {shape}")
    return value.astype(np.float32)


def _trunk_shape(params: dict[str, Any], n_heads: int, where: str, source: str) -> EncoderShape:
    """Depth, width and dims of a flax trunk with `n_heads` output Dense layers after the blocks."""
    n_dense = _numbered(params, _DENSE_RE, "Dense", where, source)
    n_norm = _numbered(params, _NORM_RE, "LayerNorm", where, source)
    depth = n_dense - 1 - n_heads
    if depth < 0 or depth % 4 or n_norm != depth + 1:
        raise DistillError(
            f"{source}: {where}: {n_dense} Dense and {n_norm} LayerNorm layers do not form a scaling-crl "
            f"network (expected depth + {1 + n_heads} Dense and depth + 1 LayerNorm, depth a multiple of 4)"
        )
    if depth > 1024:
        raise DistillError(
            f"{source}: {where}: depth {depth} exceeds the 1,024 layers distill supports"
        )
    kernel = _node(params, ("Dense_0", "kernel"), f"{source}: {where}")
    if not isinstance(kernel, np.ndarray) or kernel.ndim != 2:
        raise DistillError(f"{source}: {where}/Dense_0/kernel is not a 2-D array")
    in_dim, width = (int(n) for n in kernel.shape)
    outs = []
    for h in range(n_heads):
        head = _node(params, (f"Dense_{depth + 1 + h}", "kernel"), f"{source}: {where}")
        if not isinstance(head, np.ndarray) or head.ndim != 2:
            raise DistillError(f"{source}: {where}/Dense_{depth + 1 + h}/kernel is not a 2-D array")
        outs.append(int(head.shape[1]))
    return EncoderShape(in_dim=in_dim, width=width, depth=depth, out_dims=tuple(outs))


def _convert_trunk(params: dict[str, Any], shape: EncoderShape, where: str, source: str) -> Params:
    w = shape.width

    def dense(k: int, fan_in: int) -> Params:
        return {
            "kernel": _array(params, f"Dense_{k}", "kernel", (fan_in, w), where, source),
            "bias": _array(params, f"Dense_{k}", "bias", (w,), where, source),
        }

    def norm(k: int) -> Params:
        return {
            "scale": _array(params, f"LayerNorm_{k}", "scale", (w,), where, source),
            "bias": _array(params, f"LayerNorm_{k}", "bias", (w,), where, source),
        }

    n_blocks = shape.depth // 4
    layers = range(1, shape.depth + 1)
    blocks_dense = [dense(k, w) for k in layers]
    blocks_norm = [norm(k) for k in layers]

    def stack(items: list[Params], leaf: str, tail: tuple[int, ...]) -> np.ndarray:
        if not items:
            return np.zeros((0, 4) + tail, np.float32)
        return np.stack([p[leaf] for p in items]).reshape((n_blocks, 4) + tail)

    return {
        "input": {"dense": dense(0, shape.in_dim), "norm": norm(0)},
        "blocks": {
            "dense": {
                "kernel": stack(blocks_dense, "kernel", (w, w)),
                "bias": stack(blocks_dense, "bias", (w,)),
            },
            "norm": {
                "scale": stack(blocks_norm, "scale", (w,)),
                "bias": stack(blocks_norm, "bias", (w,)),
            },
        },
    }


def _head(params: dict[str, Any], k: int, width: int, out: int, where: str, source: str) -> Params:
    return {
        "kernel": _array(params, f"Dense_{k}", "kernel", (width, out), where, source),
        "bias": _array(params, f"Dense_{k}", "bias", (out,), where, source),
    }


def convert_actor(flax_actor: Params, source: str = "<actor>") -> tuple[Params, EncoderShape]:
    """flax `Actor` params -> our actor tree; the shape says depth, width, input and action dims."""
    params = _node(flax_actor, ("params",), source)
    where = "actor_params/params"
    shape = _trunk_shape(params, 2, where, source)
    if shape.out_dims[0] != shape.out_dims[1]:
        raise DistillError(
            f"{source}: {where}: mean and log_std heads differ in size {shape.out_dims}"
        )
    act = shape.out_dims[0]
    tree = {
        "trunk": _convert_trunk(params, shape, where, source),
        "mean": _head(params, shape.depth + 1, shape.width, act, where, source),
        "log_std": _head(params, shape.depth + 2, shape.width, act, where, source),
    }
    return tree, shape


def convert_encoder(
    flax_encoder: Params, which: str, source: str = "<critic>"
) -> tuple[Params, EncoderShape]:
    """flax `SA_encoder` / `G_encoder` params -> our encoder tree."""
    params = _node(flax_encoder, ("params",), f"{source}: critic_params/{which}")
    where = f"critic_params/{which}/params"
    shape = _trunk_shape(params, 1, where, source)
    tree = {
        "trunk": _convert_trunk(params, shape, where, source),
        "out": _head(params, shape.depth + 1, shape.width, shape.out_dims[0], where, source),
    }
    return tree, shape


def env_dims(env: str) -> tuple[int, int, int]:
    """(obs_dim, goal_dim, action_dim) of a known env, building its MJX model only if we must."""
    from distill.envs import ENV_FACTORIES, make_env

    if env not in ENV_FACTORIES:
        raise DistillError(f"--env {env!r}: unknown env; known envs: {', '.join(ENV_FACTORIES)}")
    if env in SCALING_CRL_ENV_DIMS:
        return SCALING_CRL_ENV_DIMS[env]
    spec = make_env(env).spec
    return spec.obs_dim, spec.goal_dim, spec.action_dim


def infer_arch(
    actor_shape: EncoderShape,
    sa_shape: EncoderShape,
    g_shape: EncoderShape,
    *,
    expected: tuple[int | None, int | None, int | None],
    expected_from: str,
    source: str,
) -> CRLArch:
    """The architecture the trees imply, checked against the dims the user (or the env) gave."""
    action_dim = actor_shape.out_dims[0]
    goal_dim = g_shape.in_dim
    obs_dim = sa_shape.in_dim - action_dim
    if sa_shape.depth != g_shape.depth:
        raise DistillError(
            f"{source}: sa_encoder depth {sa_shape.depth} != g_encoder depth {g_shape.depth}; "
            "distill critics use one depth for both encoders"
        )
    widths = {actor_shape.width, sa_shape.width, g_shape.width}
    if len(widths) != 1:
        raise DistillError(
            f"{source}: actor width {actor_shape.width}, sa_encoder {sa_shape.width}, g_encoder {g_shape.width}: "
            "distill teachers use one width for actor and critic, so this checkpoint cannot be imported"
        )
    if sa_shape.out_dims != g_shape.out_dims:
        raise DistillError(
            f"{source}: sa_encoder and g_encoder representations differ "
            f"({sa_shape.out_dims[0]} vs {g_shape.out_dims[0]})"
        )
    if obs_dim <= 0 or actor_shape.in_dim != obs_dim + goal_dim:
        raise DistillError(
            f"{source}: inconsistent trees: the actor reads {actor_shape.in_dim} inputs but the critic implies "
            f"obs_dim {obs_dim} (sa_encoder input {sa_shape.in_dim} - action {action_dim}) + goal_dim {goal_dim}"
        )
    want_obs, want_goal, want_act = expected
    found = {"obs_dim": obs_dim, "goal_dim": goal_dim, "action_dim": action_dim}
    for field, want in zip(found, (want_obs, want_goal, want_act)):
        if want is not None and want != found[field]:
            raise DistillError(
                f"{source}: {expected_from} gives {field} {want} but the checkpoint has {found[field]} "
                f"(critic sa_encoder input {sa_shape.in_dim} = obs_dim + action_dim {action_dim}, g_encoder input "
                f"{goal_dim} = goal_dim); check --env / --obs-dim / --goal-dim"
            )
    return CRLArch(
        obs_dim=obs_dim,
        goal_dim=goal_dim,
        action_dim=action_dim,
        actor_depth=actor_shape.depth,
        critic_depth=sa_shape.depth,
        width=actor_shape.width,
        repr_dim=sa_shape.out_dims[0],
    )


def _expected_dims(env: str | None, obs_dim: int | None, goal_dim: int | None):
    if env is None:
        return (obs_dim, goal_dim, None), "--obs-dim/--goal-dim"
    e_obs, e_goal, e_act = env_dims(env)
    for flag, given, known in (("--obs-dim", obs_dim, e_obs), ("--goal-dim", goal_dim, e_goal)):
        if given is not None and given != known:
            raise DistillError(
                f"{flag} {given} contradicts --env {env} ({flag[2:]} {known}); drop one of them"
            )
    return (e_obs, e_goal, e_act), f"--env {env}"


def teacher_target(name: str) -> Path:
    if not _NAME_RE.match(name):
        raise DistillError(
            f"--name {name!r}: use letters, digits, '_', '-' or '.', no path separators"
        )
    return teachers_dir() / name


@dataclass(frozen=True)
class RunArgs:
    """What a scaling-crl run's args.pkl says about its teacher (the rest is kept as provenance)."""

    env: str
    actor_depth: int
    critic_depth: int
    actor_width: int
    critic_width: int
    actor_skip_connections: int
    critic_skip_connections: int
    use_relu: bool
    obs_dim: int
    goal_indices: tuple[int, ...]
    fields: dict[str, Any]

    @property
    def activation(self) -> str:
        return "relu" if self.use_relu else "swish"


def read_run_args(path: Path) -> RunArgs:
    """args.pkl read as plain data; missing or mistyped fields are one-line errors."""
    with open(path, "rb") as f:
        fields = safe_load_args(f, str(path))

    def get(key: str, kind: type) -> Any:
        value = fields.get(key)
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise DistillError(f"{path}: field {key!r} is {value!r}, expected {kind.__name__}; "
                               "is this a scaling-crl args.pkl?")
        return value

    start, end = get("goal_start_idx", int), get("goal_end_idx", int)
    return RunArgs(
        env=get("env_id", str), actor_depth=get("actor_depth", int), critic_depth=get("critic_depth", int),
        actor_width=get("actor_network_width", int), critic_width=get("critic_network_width", int),
        actor_skip_connections=int(fields.get("actor_skip_connections", 0) or 0),
        critic_skip_connections=int(fields.get("critic_skip_connections", 0) or 0),
        use_relu=bool(fields.get("use_relu", 0)), obs_dim=get("obs_dim", int),
        goal_indices=tuple(range(start, end)), fields=fields,
    )


def _convert(path: Path, expected, expected_from: str, activation: str):
    ckpt = read_checkpoint(path)
    actor, a_shape = convert_actor(ckpt.actor, ckpt.source)
    sa, sa_shape = convert_encoder(_node(ckpt.critic, ("sa_encoder",), ckpt.source), "sa_encoder", ckpt.source)
    g, g_shape = convert_encoder(_node(ckpt.critic, ("g_encoder",), ckpt.source), "g_encoder", ckpt.source)
    arch = infer_arch(a_shape, sa_shape, g_shape, expected=expected, expected_from=expected_from,
                      source=ckpt.source)
    arch = CRLArch(**{**asdict(arch), "activation": activation})
    return ckpt, arch, actor, {"sa_encoder": sa, "g_encoder": g}


def _log_alpha(ckpt: ScalingCrlCheckpoint) -> dict[str, float]:
    log_alpha = ckpt.alpha.get("log_alpha")
    if isinstance(log_alpha, np.ndarray) and log_alpha.size == 1:
        return {"log_alpha": float(log_alpha.reshape(()))}
    return {}


def _check_target(name: str, force: bool) -> Path:
    target = teacher_target(name)
    if (target / checkpoint.TOML_NAME).exists() and not force:
        raise DistillError(
            f"teacher {name!r} already exists ({target / checkpoint.TOML_NAME}); pass --force to overwrite it"
        )
    return target


def _backend_for(env: str | None, backend: str | None, source: str) -> str | None:
    if env is None or env == "unknown":
        if backend is not None:
            raise DistillError(f"--backend {backend}: give --env too (a backend belongs to an env)")
        return None
    from distill.envs import check_backend

    return check_backend(env, backend or SCALING_CRL_BACKENDS.get(env))


def import_run_folder(
    run_dir: str | Path, name: str, *, step: int | None = None, env: str | None = None,
    backend: str | None = None, force: bool = False,
) -> Path:
    """Imports `final.pkl` (or `step_<step>.pkl`) of a scaling-crl run folder, checked against its
    args.pkl; env, backend, depths, width and activation come from the folder."""
    from distill.envs import PAPER_TASKS

    run_dir = Path(run_dir)
    args_path = run_dir / ARGS_NAME
    if not args_path.is_file():
        raise DistillError(f"{run_dir}: no {ARGS_NAME}: not a scaling-crl run folder (pass the checkpoint file "
                           "itself with --env to import a bare pickle)")
    target = _check_target(name, force)
    run = read_run_args(args_path)
    if env is not None and env != run.env:
        raise DistillError(f"--env {env} contradicts {args_path} (env_id {run.env!r}); drop --env")
    if run.env not in PAPER_TASKS:
        raise DistillError(
            f"{args_path}: env_id {run.env!r} has no env in distill (it has scaling-crl's "
            f"{', '.join(PAPER_TASKS)}); its teacher cannot be distilled here"
        )
    backend = _backend_for(run.env, backend, str(args_path))
    ckpt_path = run_dir / (f"step_{step}.pkl" if step is not None else FINAL_NAME)
    if not ckpt_path.is_file():
        found = sorted(p.name for p in run_dir.glob("*.pkl") if p.name != ARGS_NAME)
        raise DistillError(f"{run_dir}: no {ckpt_path.name} (checkpoints here: {', '.join(found) or 'none'}); "
                           "pass --step N for step_N.pkl")
    e_obs, e_goal, e_act = env_dims(run.env)
    ckpt, arch, actor, critic = _convert(ckpt_path, (e_obs, e_goal, e_act), f"env {run.env}", run.activation)
    from distill.envs import make_env

    spec_goal = make_env(run.env, backend).spec.goal_indices
    mismatches = [
        (what, said, found) for what, said, found in (
            ("actor_depth", run.actor_depth, arch.actor_depth),
            ("critic_depth", run.critic_depth, arch.critic_depth),
            ("actor_network_width", run.actor_width, arch.width),
            ("critic_network_width", run.critic_width, arch.width),
            ("obs_dim", run.obs_dim, arch.obs_dim),
            ("goal indices", run.goal_indices, spec_goal),
        ) if said != found
    ]
    if mismatches:
        what, said, found = mismatches[0]
        raise DistillError(
            f"{ckpt_path}: disagrees with {args_path}: args say {what} {said}, the checkpoint/env has {found}; "
            "is this checkpoint from another run?"
        )
    args_table = {k: v for k, v in run.fields.items() if v is not None and not isinstance(v, (list, tuple))}
    provenance = {
        "format": RUN_FORMAT,
        "run_folder": run_dir.name,
        "checkpoint": ckpt_path.name,
        "source_sha256": sha256_file(ckpt_path),
        "args_sha256": sha256_file(args_path),
        "skip_connections": (
            f"actor {run.actor_skip_connections}, critic {run.critic_skip_connections} (recorded; "
            "scaling-crl's residual blocks always add their input, whatever this flag says)"
        ),
        "backend_from": "--backend" if backend != SCALING_CRL_BACKENDS.get(run.env) else
                        "scaling-crl train.py builds this env on spring",
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "distill_version": distill.__version__,
        **_log_alpha(ckpt),
        "args": args_table,
    }
    return checkpoint.save_teacher(target, name=name, env=run.env, backend=backend, arch=arch, actor=actor,
                                   critic=critic, provenance=provenance)


def import_scaling_crl(
    path: str | Path,
    name: str,
    *,
    env: str | None = None,
    backend: str | None = None,
    activation: str | None = None,
    obs_dim: int | None = None,
    goal_dim: int | None = None,
    force: bool = False,
) -> Path:
    """Imports a bare scaling-crl / JaxGCRL pickle as `teachers/NAME/`; returns the folder."""
    path = Path(path)
    target = _check_target(name, force)
    activation = activation or "swish"
    if activation not in ACTIVATIONS:
        raise DistillError(f"--activation {activation!r}: use one of {', '.join(ACTIVATIONS)}")
    expected, expected_from = _expected_dims(env, obs_dim, goal_dim)
    backend = _backend_for(env, backend, str(path))
    ckpt, arch, actor, critic = _convert(path, expected, expected_from, activation)
    provenance = {
        "format": FORMAT,
        "source_file": path.name,
        "source_sha256": sha256_file(path),
        "architecture": (
            f"inferred from the parameter tree: actor Dense_0…Dense_{arch.actor_depth + 2}, "
            f"critic encoders Dense_0…Dense_{arch.critic_depth + 1}; activation {activation} "
            f"({'--activation' if activation != 'swish' else 'default: a bare pickle does not record it'})"
        ),
        "dims_from": expected_from
        if any(x is not None for x in expected)
        else "the parameter tree",
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "distill_version": distill.__version__,
        **_log_alpha(ckpt),
    }
    return checkpoint.save_teacher(
        target,
        name=name,
        env=env or "unknown",
        backend=backend,
        arch=arch,
        actor=actor,
        critic=critic,
        provenance=provenance,
    )


def import_teacher(path: str | Path, name: str, **options: Any) -> Path:
    """A run folder (a directory) or a bare checkpoint pickle (a file)."""
    path = Path(path)
    if path.is_dir():
        for flag in ("obs_dim", "goal_dim", "activation"):
            if options.get(flag) is not None:
                raise DistillError(f"--{flag.replace('_', '-')}: a run folder's args.pkl says it; drop the flag")
        return import_run_folder(path, name, step=options.get("step"), env=options.get("env"),
                                 backend=options.get("backend"), force=options.get("force", False))
    if options.get("step") is not None:
        raise DistillError("--step selects a checkpoint inside a run folder; pass the folder, not a file")
    options.pop("step", None)
    return import_scaling_crl(path, name, **options)


def import_command(args: argparse.Namespace) -> int:
    """`distill teacher import PATH --name NAME [--step N] [--env ENV] [--backend B] ...`."""
    from distill.teachers.manifest import read_manifest

    directory = import_teacher(
        args.path, args.name, step=args.step, env=args.env, backend=args.backend,
        activation=args.activation, obs_dim=args.obs_dim, goal_dim=args.goal_dim, force=args.force,
    )
    manifest = read_manifest(directory)
    prov = manifest.provenance
    source = prov.get("checkpoint") and f"{prov['run_folder']}/{prov['checkpoint']}" or prov.get("source_file")
    print(
        f"imported {source} (sha256 {prov['source_sha256'][:12]}…) as teacher {args.name!r} -> {directory}"
    )
    print(f"  env {manifest.env}, backend {manifest.backend or '-'}; "
          + ", ".join(f"{k} {v}" for k, v in asdict(manifest.arch).items()))
    if manifest.env == "unknown":
        print("  env not given: recorded as 'unknown'; re-import with --env ENV to roll it out")
    return 0
