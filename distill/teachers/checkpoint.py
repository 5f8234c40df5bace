"""Native teacher checkpoints: `teacher.toml` (what the teacher is) + safetensors (its weights).

The toml is self-describing, so a teacher loads from its folder alone; the weights' sha256 is
recorded there and checked on every load, so a swapped or truncated file is refused.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from distill import artifacts
from distill.atomic import write_bytes_atomic, write_text_atomic
from distill.errors import DistillError
from distill.hashing import sha256_bytes
from distill.teachers.manifest import TOML_NAME, WEIGHTS_NAME, TeacherManifest
from distill.teachers.networks import CRLArch, Params

SEP = "/"


def flatten(tree: Params, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{SEP}{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = np.asarray(value)
    return out


def unflatten(flat: dict[str, np.ndarray]) -> Params:
    tree: Params = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split(SEP)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree




def save_teacher(
    directory: str | Path,
    *,
    name: str,
    env: str,
    arch: CRLArch,
    actor: Params,
    critic: Params,
    provenance: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    backend: str | None = None,
) -> Path:
    """Writes weights then the toml (each atomically); the toml names the weights' sha256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat = flatten({"actor": actor, "critic": critic})
    flat = {k: np.array(v, dtype=np.float32, order="C") for k, v in flat.items()}
    blob = st_save(flat)
    write_bytes_atomic(directory / WEIGHTS_NAME, blob)
    doc: dict[str, Any] = {
        "name": name,
        "env": env,
        **({"backend": backend} if backend else {}),
        "arch": asdict(arch),
        "weights": {"file": WEIGHTS_NAME, "sha256": sha256_bytes(blob), "format": "safetensors"},
        "provenance": provenance,
    }
    if metrics:
        doc["metrics"] = metrics
    if training:
        doc["training"] = training
    write_text_atomic(directory / TOML_NAME, _header_comments(directory / TOML_NAME) + tomli_w.dumps(doc))
    return directory


def _header_comments(path: Path) -> str:
    """The comment block that opens an existing toml: a recipe's reasons survive its training's rewrite."""
    if not path.is_file():
        return ""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line + "\n")
    return "".join(header)


def read_toml(directory: str | Path) -> dict[str, Any]:
    return artifacts.read_toml(Path(directory) / TOML_NAME, f"no {TOML_NAME} in {directory}: not a teacher folder")


def arch_from_toml(doc: dict[str, Any], path: Path) -> CRLArch:
    try:
        return CRLArch(**doc["arch"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DistillError(f"{path / TOML_NAME}: bad [arch] table ({exc})") from None


def load_weights(directory: str | Path, manifest: TeacherManifest) -> tuple[Params, Params]:
    """Reads the safetensors named in the manifest after checking its sha256."""
    directory = Path(directory)
    path = manifest.weights_path
    blob = artifacts.read_verified(
        path, manifest.weights.sha256 if manifest.weights else None,
        f"teacher {manifest.name!r} has no weights ({path} is missing)",
        "restore them or re-import the teacher",
    )
    tree = unflatten(dict(st_load(blob)))
    return tree["actor"], tree["critic"]
