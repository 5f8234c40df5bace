"""`distill teacher info`: what a teacher is, read from its toml without loading its weights.

Parameter counts come from `jax.eval_shape` on the init functions, so they are instant and allocate
nothing even for a 1,024-layer critic whose weights are not on disk.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax

from distill.errors import DistillError
from distill.teachers import checkpoint, networks
from distill.teachers.manifest import parse_manifest
from distill.teachers.networks import CRLArch
from distill.teachers.teacher import resolve_teacher_dir

RANDOM_INIT_WARNING = "WARNING: --random-init: random weights, for systems benchmarks only; any success figure from them is meaningless"


@dataclass(frozen=True)
class ParamCounts:
    actor: int
    sa_encoder: int
    g_encoder: int

    @property
    def critic(self) -> int:
        return self.sa_encoder + self.g_encoder

    @property
    def total(self) -> int:
        return self.actor + self.critic


def _count(shapes: Any) -> int:
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes)))


def param_counts(arch: CRLArch) -> ParamCounts:
    """Counts from abstract shapes (`jax.eval_shape`), never from allocated arrays."""
    key = jax.ShapeDtypeStruct((2,), jax.numpy.uint32)
    actor = jax.eval_shape(partial(networks.init_actor, arch=arch), key)
    critic = jax.eval_shape(partial(networks.init_critic, arch=arch), key)
    return ParamCounts(
        actor=_count(actor),
        sa_encoder=_count(critic["sa_encoder"]),
        g_encoder=_count(critic["g_encoder"]),
    )


def _millions(n: int) -> str:
    return f"{n:,} ({n / 1e6:.1f} M)"


def _table(title: str, table: dict[str, Any]) -> list[str]:
    lines = [f"{title}:"]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += ["  " + line for line in _table(key, value)]
        else:
            lines.append(f"  {key}: {value}")
    return lines


def describe(name_or_dir: str | Path, random_init: bool = False) -> list[str]:
    """The lines `distill teacher info` prints."""
    directory = resolve_teacher_dir(name_or_dir)
    doc = checkpoint.read_toml(directory)
    manifest = parse_manifest(doc, directory)
    arch, name = manifest.arch, manifest.name
    weights_path = manifest.weights_path
    counts = param_counts(arch)
    try:
        backend = manifest.env_backend()
    except DistillError:
        backend = "-"

    lines = [RANDOM_INIT_WARNING] if random_init else []
    lines += [
        f"teacher: {name} ({directory})",
        f"env: {manifest.env} (physics: {backend}{'' if manifest.backend else ', the env default'})",
        f"dims: obs {arch.obs_dim} + goal {arch.goal_dim} -> action {arch.action_dim}; critic repr {arch.repr_dim}",
        (f"depths: actor {arch.actor_depth}, critic {arch.critic_depth} (each encoder); width {arch.width}; "
        f"activation {arch.activation}"),
        "parameters:",
        f"  actor:      {_millions(counts.actor)}",
        f"  sa_encoder: {_millions(counts.sa_encoder)}",
        f"  g_encoder:  {_millions(counts.g_encoder)}",
        f"  total:      {_millions(counts.total)}",
    ]
    if weights_path.is_file():
        sha = manifest.weights.sha256 if manifest.weights else ""
        lines.append(
            f"weights: {weights_path} ({weights_path.stat().st_size / 2**20:.1f} MiB, sha256 {sha[:12]}…)"
        )
    else:
        hint = manifest.missing_weights_hint or (
            f"import a checkpoint with `distill teacher import PATH --name {name}` "
            f"or train one with `distill teacher train --name {name}`"
        )
        state = (
            "using random weights instead"
            if random_init
            else "pass --random-init for systems benchmarks only"
        )
        lines.append(f"weights: MISSING ({weights_path}); {hint}; {state}")
    if doc.get("provenance"):
        lines += _table("provenance", doc["provenance"])
    if doc.get("metrics"):
        title = (
            "metrics (recorded for the real weights, not these random ones)"
            if random_init
            else "metrics"
        )
        lines += _table(title, doc["metrics"])
    return lines


def info_command(args: argparse.Namespace) -> int:
    """`distill teacher info NAME [--random-init]`."""
    print("\n".join(describe(args.name, random_init=args.random_init)))
    return 0
