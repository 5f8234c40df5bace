"""The one sha256 of distill's artifacts (weights, ONNX files, archives, bundle contents).

The robot-side script (`distill/ship/robot/run_policy.py`) keeps its own, as it runs on Python 3.8
without distill, where `hashlib.file_digest` does not exist yet."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (files can be hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
