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


def relative_to_root(path: str | Path) -> str:
    """`path` relative to the project root when it lies inside it (what results files record, so
    they read the same on every machine), else as given."""
    p = Path(path)
    try:
        return p.resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return str(p)


def from_root(path: str | Path) -> Path:
    """The inverse of `relative_to_root`: a recorded path, anchored at the project root when relative."""
    p = Path(path)
    return p if p.is_absolute() else project_root() / p
