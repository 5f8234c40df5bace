"""Student folders: `student.toml` (constructor arguments, weights sha256, free metadata) and
`weights.safetensors` (state dict, normaliser buffers included), so a student loads from its
folder alone and a swapped weights file is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from distill.artifacts import read_toml, read_verified
from distill.atomic import write_bytes_atomic, write_text_atomic
from distill.errors import DistillError
from distill.hashing import sha256_bytes
from distill.students.memory import Student, student_class
from distill.students.mlp import ACTIVATION, MLPStudent

TOML_NAME = "student.toml"
WEIGHTS_NAME = "weights.safetensors"
FORMAT_VERSION = 1


def save_student(student: Student, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Writes the weights, then the toml naming their sha256 (each atomically).

    `metadata` (TOML-serialisable: no None) lands in the toml's [meta] table, for lineage
    such as the preset, run and DAgger round."""
    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    blob = st_save(state)
    write_bytes_atomic(directory / WEIGHTS_NAME, blob)
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "arch": student.config(),
        "weights": {"file": WEIGHTS_NAME, "sha256": sha256_bytes(blob), "format": "safetensors"},
        "num_params": student.num_params(),
    }
    if metadata:
        doc["meta"] = metadata
    try:
        text = tomli_w.dumps(doc)
    except TypeError as exc:
        raise DistillError(f"student metadata is not TOML-serialisable ({exc}); drop None values and objects") from None
    write_text_atomic(directory / TOML_NAME, text)
    return directory


def read_student_toml(directory: str | Path) -> dict[str, Any]:
    return read_toml(Path(directory) / TOML_NAME,
                     f"no {TOML_NAME} in {directory}: not a student folder (train one with `distill run`)")


def load_student(directory: str | Path) -> Student:
    """Rebuilds the student from its folder after checking the weights' sha256; eval mode."""
    directory = Path(directory)
    doc = read_student_toml(directory)
    arch = dict(doc.get("arch") or {})
    activation = arch.pop("activation", ACTIVATION)
    if activation != ACTIVATION:
        raise DistillError(f"{directory / TOML_NAME}: activation {activation!r} is not supported (only {ACTIVATION!r})")
    weights = doc.get("weights") or {}
    path = directory / weights.get("file", WEIGHTS_NAME)
    blob = read_verified(path, weights.get("sha256"), f"student weights {path} are missing; re-train or restore them",
                         "re-train or restore them")
    family = arch.pop("family", MLPStudent.family)
    try:
        student = student_class(family)(**arch)
        student.load_state_dict(st_load(blob), strict=True)
    except (TypeError, RuntimeError) as exc:
        raise DistillError(f"{directory / TOML_NAME}: [arch] does not match the weights ({exc})") from None
    return student.eval()

