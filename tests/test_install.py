"""distill installs the way a stranger installs it: a plain (non-editable) `pip install` of its
sources into a fresh virtual environment, with constraints.txt, and its command runs there with the
pinned stack and the package data it needs.

The default test resolves the whole install with pip (`--dry-run --report`: every pin must be what
pip would install) and installs distill itself, non-editable, into a fresh venv that borrows this
environment's packages: about 25 s. Unpacking torch, jax and MuJoCo into a second venv (over a
minute with pip's cache warm, as long as the downloads without it) is the slow test beside it."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import distill

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "constraints.txt", "distill")
"""What a source distribution holds; installing a copy keeps pip's build files out of the checkout."""
PINNED = ("torch", "jax", "jaxlib", "mujoco", "mujoco-mjx", "brax", "numpy", "onnxruntime", "gymnasium-robotics")


def _pins(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _run(*argv: str | Path, timeout: int = 900) -> str:
    """Runs outside the checkout: `python -c` puts its working directory first on sys.path, and the
    checkout's own distill/ would shadow the installed one."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=Path(argv[0]).parent)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _sources_and_venv(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of what a source distribution holds, and a fresh venv with the constraints' pip."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / ("Scripts" if sys.platform == "win32" else "bin")
    _run(bin_dir / "python", "-m", "pip", "install", "-q", "--upgrade", "pip", "-c", src / "constraints.txt")
    return src, bin_dir, bin_dir / "python"


def _check_command(bin_dir: Path) -> None:
    version = _run(bin_dir / "distill", "--version")
    assert version.startswith(f"distill {distill.__version__} (")
    envs = _run(bin_dir / "distill", "env", "list", timeout=300)  # the MJCF assets came with the install
    assert envs.splitlines()[1].split()[:6] == ["reacher", "mjx", "10", "3", "2", "13"]


def test_resolves_the_pins_and_installs_with_its_package_data(tmp_path):
    src, bin_dir, python = _sources_and_venv(tmp_path)
    constraints = src / "constraints.txt"
    report = tmp_path / "resolution.json"
    _run(python, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed", "--report", report,
         "-c", constraints, src)
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    pins = _pins(constraints)
    for name in PINNED:
        assert resolved[name].split("+")[0] == pins[name], f"{name} {resolved[name]}, pinned {pins[name]}"
    assert "distill" in resolved

    # distill itself, non-editable, into the fresh venv; its dependencies are this environment's
    # (added after the venv's own site-packages, so the installed distill comes first)
    venv_site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (venv_site / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(python, "-m", "pip", "install", "-q", "--no-deps", src)
    where = _run(python, "-c", "import distill; print(distill.__file__)").strip()
    assert Path(where).is_relative_to(venv_site), where  # the installed copy, not this checkout
    _check_command(bin_dir)


@pytest.mark.slow  # unpacks torch, jax and MuJoCo into a fresh venv: over a minute with pip's cache warm
def test_installs_into_a_fresh_venv_from_the_constraints(tmp_path):
    src, bin_dir, python = _sources_and_venv(tmp_path)
    constraints = src / "constraints.txt"
    _run(python, "-m", "pip", "install", "-q", "-c", constraints, src)
    installed = _run(python, "-m", "pip", "list", "--format=freeze")
    versions = dict(line.lower().split("==") for line in installed.splitlines() if "==" in line)
    pins = _pins(constraints)
    for name in PINNED:
        assert versions[name].split("+")[0] == pins[name], f"{name} {versions[name]}, pinned {pins[name]}"
    assert "distill" in versions and not (tmp_path / "venv" / "src").exists()  # a real install, not editable
    _check_command(bin_dir)
