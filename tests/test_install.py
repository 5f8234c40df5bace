"""distill installs the way a stranger installs it: a plain (non-editable) `pip install` of its
sources into a fresh virtual environment, with constraints.txt, and its command runs there with the
pinned stack and the package data it needs.

About 50 s here with pip's cache warm (torch's CPU wheel from a local find-links folder); on a machine
that must download torch, jax and MuJoCo it takes as long as those downloads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import distill

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "constraints.txt", "distill")
"""What a source distribution holds; installing a copy keeps pip's build files out of the checkout."""
PINNED = ("torch", "jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy", "onnxruntime", "gymnasium-robotics")


def _pins(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _run(*argv: str | Path, timeout: int = 900) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_installs_into_a_fresh_venv_from_the_constraints(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    constraints = src / "constraints.txt"
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    _run(python, "-m", "pip", "install", "-q", "--upgrade", "pip", "-c", constraints)
    _run(python, "-m", "pip", "install", "-q", "-c", constraints, src)

    version = _run(bin_dir / "distill", "--version")
    assert version.startswith(f"distill {distill.__version__} (")
    installed = _run(python, "-m", "pip", "list", "--format=freeze")
    versions = dict(line.lower().split("==") for line in installed.splitlines() if "==" in line)
    pins = _pins(constraints)
    for name in PINNED:
        assert versions[name].split("+")[0] == pins[name], f"{name} {versions[name]}, pinned {pins[name]}"
    assert "distill" in versions and not (tmp_path / "venv" / "src").exists()  # a real install, not editable

    envs = _run(bin_dir / "distill", "env", "list", timeout=300)  # the MJCF assets came with the install
    assert envs.splitlines()[1].split()[:6] == ["reacher", "mjx", "10", "3", "2", "13"]
