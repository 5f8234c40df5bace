"""`distill env info` and `distill env render`, run in-process through the real CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from distill.cli import main
from distill.envs import render
from distill.errors import DistillError


def _decode_png(blob: bytes) -> np.ndarray:
    """Reads a PNG back with Pillow, which checks every chunk's CRC and the zlib stream."""
    image = Image.open(io.BytesIO(blob))
    assert image.format == "PNG" and image.mode == "RGB"
    image.load()
    return np.asarray(image)


def test_info_reacher(capsys):
    assert main(["env", "info", "reacher"]) == 0
    out = capsys.readouterr().out
    assert "13 = 10 state + 3 goal" in out
    assert "[4, 5, 6]" in out
    assert "50 steps" in out and "0.02 s" in out and "0.05" in out
    lines = out.splitlines()
    assert any("[4:7]" in line and "tip" in line and "tip_x" in line for line in lines)
    assert any("[7:10]" in line and "tip_vel" in line for line in lines)
    assert any("[10:13]" in line and "goal" in line for line in lines)
    assert "joint0_torque" in out and "joint1_torque" in out


def test_info_go2(capsys):
    assert main(["env", "info", "go2"]) == 0
    out = capsys.readouterr().out
    assert "teacher input   52 = 50 state + 2 goal" in out
    assert "student input   44 = 42 state + 2 goal" in out
    assert "[42, 43]" in out
    assert "12 in [-1, 1]" in out
    assert "500 steps (10 s)" in out and "0.5" in out
    assert "Newton solver, 1 iteration(s), 5 line-search, pyramidal cone" in out
    teacher_part, student_part = out.split("teacher observation")[1].split("student observation")
    student_part = student_part.split("actions")[0]

    def rows(part: str) -> dict[str, str]:
        return {line.split()[0]: line for line in part.splitlines() if line.startswith("  [")}

    teacher, student = rows(teacher_part), rows(student_part)
    for table in (teacher, student):
        assert "base_ang_vel" in table["[0:3]"]
        assert "projected_gravity" in table["[3:6]"]
        assert "joint_pos" in table["[6:18]"] and "joint_vel" in table["[18:30]"]
        assert "last_action" in table["[30:42]"]
    assert "goal" in student["[42:44]"] and "goal_rel" in student["[42:44]"]
    assert "state" in teacher["[42:45]"] and "base_pos_x" in teacher["[42:45]"]
    assert "base_yaw" in teacher["[45:47]"] and "base_lin_vel" in teacher["[47:50]"]
    assert "goal" in teacher["[50:52]"] and "goal_x" in teacher["[50:52]"]
    assert "[42:44]" not in teacher and "[50:52]" not in student
    assert "FR_hip_target" in out and "RL_calf_target" in out


def test_info_unknown_env_is_a_one_line_error(capsys):
    assert main(["env", "info", "no_such_env"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown env 'no_such_env'" in err and "go2" in err


def test_render_rejects_bad_arguments(tmp_path, capsys):
    assert main(["env", "render", "reacher", "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".png" in capsys.readouterr().err
    assert (
        main(["env", "render", "reacher", "--out", str(tmp_path / "x.png"), "--steps", "-1"]) == 2
    )
    assert "--steps" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_png_writer_round_trips():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    blob = render.png_bytes(rgb)
    np.testing.assert_array_equal(_decode_png(blob), rgb)
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0xFF  # inside the image data: Pillow must refuse it
    with pytest.raises((OSError, SyntaxError, ValueError)):
        _decode_png(bytes(damaged))


def test_render_reacher_writes_a_real_png(tmp_path, capsys):
    try:
        render.gl_backend()
    except DistillError as exc:
        pytest.skip(f"no headless GL backend on this machine: {exc}")
    out = tmp_path / "reacher.png"
    assert main(["env", "render", "reacher", "--out", str(out), "--seed", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    image = _decode_png(out.read_bytes())
    assert image.shape == (render.HEIGHT, render.WIDTH, 3)
    assert image.reshape(-1, 3).std(axis=0).max() > 10
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
