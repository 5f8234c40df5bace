"""Where the artifact folders live: the repository root holding teachers/, students/, datasets/."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """$DISTILL_ROOT if set, else the checkout this package was installed from (editable install)."""
    env = os.environ.get("DISTILL_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def teachers_dir() -> Path:
    return project_root() / "teachers"


def students_dir() -> Path:
    return project_root() / "students"


def datasets_dir() -> Path:
    return project_root() / "datasets"
