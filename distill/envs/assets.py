"""Locating the MJCF models that maintained packages ship, so we edit them rather than copy them."""

from __future__ import annotations

from pathlib import Path

import mujoco


def gymnasium_asset(name: str) -> Path:
    """Path of one of gymnasium's classic MuJoCo models (reacher.xml, ant.xml, humanoid.xml)."""
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - gymnasium is a runtime dependency
        raise RuntimeError("gymnasium is not installed: `pip install gymnasium` provides the MJCF assets") from exc
    path = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / name
    if not path.is_file():
        raise FileNotFoundError(f"gymnasium does not ship {name} (looked in {path.parent})")
    return path


def load_spec(name: str) -> mujoco.MjSpec:
    return mujoco.MjSpec.from_file(str(gymnasium_asset(name)))
