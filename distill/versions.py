"""What software a result came from: distill's version, the stack's versions, Python, host and the
checkout's git commit. Versions are read from package metadata, so asking costs no import of jax
or torch."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import distill

STACK = ("jax", "jaxlib", "torch", "mujoco", "mujoco-mjx", "numpy", "onnxruntime")
"""The packages whose versions decide what a run computes."""


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def stack_versions(names: tuple[str, ...] = STACK) -> dict[str, str]:
    return {name: package_version(name) for name in names}


def version_line() -> str:
    """`distill --version`: distill itself, then the versions that matter for its results."""
    stack = stack_versions(("jax", "torch", "mujoco"))
    return f"distill {distill.__version__} ({', '.join(f'{k} {v}' for k, v in stack.items())}; " \
           f"python {platform.python_version()})"


@dataclass(frozen=True)
class GitState:
    commit: str
    dirty: bool
    """Tracked files differ from the commit."""


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def checkout_dir() -> Path:
    """The folder holding the `distill` package: a git checkout for an editable install."""
    return Path(distill.__file__).resolve().parent.parent


def git_state(directory: Path | None = None) -> GitState | None:
    """The checkout's commit, or None where the package does not sit at the top of a git work tree
    (an installed wheel inside some other repository must not report that repository's commit)."""
    directory = directory or checkout_dir()
    top = _git(directory, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != directory.resolve():
        return None
    commit = _git(directory, "rev-parse", "HEAD")
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    if commit is None or status is None:
        return None
    return GitState(commit=commit, dirty=bool(status))


def host_line() -> str:
    return f"{platform.node()} ({platform.machine()}, {platform.system()} {platform.release()}, " \
           f"{os.cpu_count()} CPUs)"
