"""Reading self-describing artifact folders (a TOML plus a weights file whose sha256 it records)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.hashing import sha256_bytes


def read_toml(path: Path, missing: str) -> dict[str, Any]:
    """The parsed TOML at `path`; `missing` is the one-line error when there is no such file."""
    if not path.is_file():
        raise DistillError(missing)
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DistillError(f"{path}: invalid TOML ({exc}); fix or re-create the file") from None


def read_verified(path: Path, expected_sha256: str | None, missing: str, remedy: str) -> bytes:
    """The bytes of `path` after checking them against the sha256 its TOML recorded."""
    if not path.is_file():
        raise DistillError(missing)
    blob = path.read_bytes()
    actual = sha256_bytes(blob)
    if actual != expected_sha256:
        raise DistillError(
            f"{path}: sha256 {actual[:12]}… does not match {(expected_sha256 or 'none')[:12]}… recorded beside it; "
            f"the weights were changed or truncated — {remedy}"
        )
    return blob
