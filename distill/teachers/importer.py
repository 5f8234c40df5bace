"""Import scaling-crl / JaxGCRL checkpoints as native teachers.

Those files are `pickle.dumps((alpha_params, actor_params, critic_params))` of flax trees in which
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
from distill.paths import teachers_dir
from distill.teachers import checkpoint
from distill.teachers.networks import CRLArch, Params
from distill.teachers.safe_unpickle import safe_load

FORMAT = "scaling-crl pickle"
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


def import_scaling_crl(
    path: str | Path,
    name: str,
    *,
    env: str | None = None,
    obs_dim: int | None = None,
    goal_dim: int | None = None,
    force: bool = False,
) -> Path:
    """Imports a scaling-crl / JaxGCRL pickle as `teachers/NAME/`; returns the folder."""
    path = Path(path)
    target = teacher_target(name)
    if (target / checkpoint.TOML_NAME).exists() and not force:
        raise DistillError(
            f"teacher {name!r} already exists ({target / checkpoint.TOML_NAME}); pass --force to overwrite it"
        )
    expected, expected_from = _expected_dims(env, obs_dim, goal_dim)
    ckpt = read_checkpoint(path)
    actor, a_shape = convert_actor(ckpt.actor, ckpt.source)
    sa, sa_shape = convert_encoder(
        _node(ckpt.critic, ("sa_encoder",), ckpt.source), "sa_encoder", ckpt.source
    )
    g, g_shape = convert_encoder(
        _node(ckpt.critic, ("g_encoder",), ckpt.source), "g_encoder", ckpt.source
    )
    arch = infer_arch(
        a_shape,
        sa_shape,
        g_shape,
        expected=expected,
        expected_from=expected_from,
        source=ckpt.source,
    )
    provenance = {
        "format": FORMAT,
        "source_file": path.name,
        "source_sha256": checkpoint.sha256_file(path),
        "architecture": (
            f"inferred from the parameter tree: actor Dense_0…Dense_{arch.actor_depth + 2}, "
            f"critic encoders Dense_0…Dense_{arch.critic_depth + 1}"
        ),
        "dims_from": expected_from
        if any(x is not None for x in expected)
        else "the parameter tree",
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "distill_version": distill.__version__,
    }
    log_alpha = ckpt.alpha.get("log_alpha")
    if isinstance(log_alpha, np.ndarray) and log_alpha.size == 1:
        provenance["log_alpha"] = float(log_alpha.reshape(()))
    return checkpoint.save_teacher(
        target,
        name=name,
        env=env or "unknown",
        arch=arch,
        actor=actor,
        critic={"sa_encoder": sa, "g_encoder": g},
        provenance=provenance,
    )


def import_command(args: argparse.Namespace) -> int:
    """`distill teacher import PATH --name NAME [--env ENV] [--obs-dim N --goal-dim N] [--force]`."""
    directory = import_scaling_crl(
        args.path,
        args.name,
        env=args.env,
        obs_dim=args.obs_dim,
        goal_dim=args.goal_dim,
        force=args.force,
    )
    doc = checkpoint.read_toml(directory)
    arch = CRLArch(**doc["arch"])
    prov = doc["provenance"]
    print(
        f"imported {prov['source_file']} (sha256 {prov['source_sha256'][:12]}…) as teacher {args.name!r} -> {directory}"
    )
    print("  " + ", ".join(f"{k} {v}" for k, v in asdict(arch).items()))
    if args.env is None:
        print("  env not given: recorded as 'unknown'; re-import with --env ENV to roll it out")
    return 0
