"""`distill ship`: the bundle unpacks, its checksums hold, run_policy.py replays the student's
actions on its own (Python 3.8 + numpy + onnxruntime), refusals, trtexec timings coming back,
and the Go2's action semantics against the simulator's actuators.

The run folder is built here without MJX: a real student exported to real ONNX files, a real
HDF5 dataset written by `RolloutWriter`, and the `report.json` fields that shipping reads.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

import distill
from distill.bench.device_timings import device_verdict, load_device_timings
from distill.bench.latency import LatencyResult
from distill.bench.targets import TargetVerdict, load_target
from distill.cli import main as distill_main
from distill.data import DatasetMeta, RolloutWriter
from distill.data.episodes import read_sequences
from distill.envs import make_env
from distill.errors import DistillError
from distill.export.onnx_export import export_onnx
from distill.export.precision import make_fp16, make_int8_qdq
from distill.observation import field_sizes
from distill.report import (
    LatencyRow,
    RunReport,
    StudentInfo,
    TeacherInfo,
    VariantRecord,
    write_report,
)
from distill.rollouts import EpisodeMetrics
from distill.ship.bundle import build_bundle
from distill.ship.gate import ReadinessVerdict, refusal_reasons
from distill.ship.inputs import load_ship_inputs
from distill.ship.robot.trtexec_summary import TrtexecParseError, parse_trtexec_log
from distill.ship.templates import ROBOT_DIR, parser_source
from distill.ship.yaml_text import dump
from distill.students.checkpoint import save_student
from distill.students.fit import fit_normalizer
from distill.students.memory import build_student
from distill.students.presets import StudentPreset, get_preset

TEACHER_SHA = "5e" * 32
ROUND_ROWS = 300

# trtexec's performance summary as TensorRT 8.5 prints it for a --loadEngine timing run
# (samples/common/sampleReporting.cpp, printEpilog: one percentile, set by --percentile).
TRTEXEC_85_LOG = textwrap.dedent("""\
    &&&& RUNNING TensorRT.trtexec [TensorRT v8502] # /usr/src/tensorrt/bin/trtexec --loadEngine=student.fp16.engine --percentile=99
    [11/24/2026-10:02:11] [I] === Device Information ===
    [11/24/2026-10:02:11] [I] Selected Device: Orin
    [11/24/2026-10:02:11] [I] Compute Capability: 8.7
    [11/24/2026-10:02:11] [I] TensorRT version: 8.5.2
    [11/24/2026-10:02:12] [I] Engine loaded in 0.0106 sec.
    [11/24/2026-10:02:24] [I] Warmup completed 9120 queries over 2000 ms
    [11/24/2026-10:02:24] [I] Timing trace has 45210 queries over 10.0002 s
    [11/24/2026-10:02:24] [I]
    [11/24/2026-10:02:24] [I] === Trace details ===
    [11/24/2026-10:02:24] [I] Trace averages of 1000 runs:
    [11/24/2026-10:02:24] [I] Average on 1000 runs - GPU latency: 0.0871 ms - Host latency: 0.1342 ms (enqueue 0.0652 ms)
    [11/24/2026-10:02:24] [I]
    [11/24/2026-10:02:24] [I] === Performance summary ===
    [11/24/2026-10:02:24] [I] Throughput: 4520.91 qps
    [11/24/2026-10:02:24] [I] Latency: min = 0.118164 ms, max = 0.912109 ms, mean = 0.135742 ms, median = 0.131836 ms, percentile(99%) = 0.208008 ms
    [11/24/2026-10:02:24] [I] Enqueue Time: min = 0.0517578 ms, max = 0.384277 ms, mean = 0.0651855 ms, median = 0.0634766 ms, percentile(99%) = 0.101562 ms
    [11/24/2026-10:02:24] [I] H2D Latency: min = 0.0141602 ms, max = 0.0981445 ms, mean = 0.0183105 ms, median = 0.0175781 ms, percentile(99%) = 0.0314941 ms
    [11/24/2026-10:02:24] [I] GPU Compute Time: min = 0.0800781 ms, max = 0.785156 ms, mean = 0.0871582 ms, median = 0.0849609 ms, percentile(99%) = 0.150391 ms
    [11/24/2026-10:02:24] [I] D2H Latency: min = 0.0214844 ms, max = 0.0927734 ms, mean = 0.0302734 ms, median = 0.0292969 ms, percentile(99%) = 0.0463867 ms
    [11/24/2026-10:02:24] [I] Total Host Walltime: 10.0002 s
    [11/24/2026-10:02:24] [I] Total GPU Compute Time: 3.94042 s
    [11/24/2026-10:02:24] [W] * Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be under-utilized.
    [11/24/2026-10:02:24] [W]   If not already in use, --useCudaGraph (utilize CUDA graphs where possible) may increase the throughput.
    [11/24/2026-10:02:24] [I] Explanations of the performance metrics are printed in the verbose logs.
    [11/24/2026-10:02:24] [I]
    &&&& PASSED TensorRT.trtexec [TensorRT v8502] # /usr/src/tensorrt/bin/trtexec --loadEngine=student.fp16.engine --percentile=99
""")


# --- the run folder ----------------------------------------------------------------------------
def _round(spec, n: int, seed: int) -> dict[str, np.ndarray]:
    """Time-major rows of 3 envs' 100-step episodes (ids unique per round), as DAgger lays them out."""
    rng = np.random.default_rng(seed)
    a = spec.action_dim
    dim = spec.student_input_dim
    obs = rng.normal(size=(n, dim)) * np.linspace(0.05, 2.0, dim)
    actions = np.tanh(rng.normal(size=(n, a)))
    envs = 3
    return {
        "obs": obs.astype(np.float32), "goal": rng.normal(size=(n, spec.goal_dim)),
        "teacher_action": actions, "teacher_mean": np.arctanh(actions * 0.999),
        "teacher_log_std": np.full((n, a), -1.0), "behavior_action": actions,
        "critic_value": rng.normal(size=n), "episode": seed * envs + np.arange(n) % envs, "t": np.arange(n) // envs,
        "done": np.arange(n) // envs == 99, "success": np.zeros(n, bool),
        **({"teacher_obs": rng.normal(size=(n, spec.input_dim)).astype(np.float32)} if spec.asymmetric else {}),
    }


def make_run(root: Path, run: str = "go2_test-mlp_2x64", p99_ms: float = 0.09, random_init: bool = False,
             preset: StudentPreset | None = None) -> Path:
    """A finished run of the Go2 as `distill run` leaves it, minus the MJX parts."""
    preset = preset or get_preset("mlp_2x64")
    env = make_env("go2")
    spec = env.spec
    run_dir = root / "students" / run
    dataset = root / "datasets" / run / "rollouts.h5"
    meta = DatasetMeta.from_env_spec(spec, teacher_name="go2_test", teacher_sha256=TEACHER_SHA,
                                     lineage={"run": run, "preset": "mlp_2x64"})
    with RolloutWriter.create(dataset, meta) as writer:
        for k in range(2):
            writer.append_round(k, _round(spec, ROUND_ROWS, seed=k))
    obs = np.concatenate([_round(spec, ROUND_ROWS, seed=k)["obs"] for k in range(2)])
    mean, std = fit_normalizer(obs)
    student = build_student(preset, spec.student_input_dim, spec.action_dim, mean, std, seed=3,
                            fields=field_sizes(env))
    save_student(student, run_dir / "student", metadata={"round": 1, "teacher": "go2_test"})
    export = export_onnx(student, run_dir / "student.onnx")
    if preset.family == "gru":
        seq, starts = read_sequences(dataset, max_rows=256)
        fp16 = make_fp16(export.path, run_dir / "student.fp16.onnx", eval_obs=seq, eval_starts=starts)
        int8 = make_int8_qdq(export.path, run_dir / "student.int8.qdq.onnx", calibration_obs=seq,
                             calibration_starts=starts, eval_obs=seq, eval_starts=starts)
    else:
        rows = obs if preset.family == "mlp" else student.layout.stack_sequence(*read_sequences(dataset))
        fp16 = make_fp16(export.path, run_dir / "student.fp16.onnx", eval_obs=rows[:256])
        int8 = make_int8_qdq(export.path, run_dir / "student.int8.qdq.onnx", calibration_obs=rows, eval_obs=rows[:256])
    metrics = EpisodeMetrics(success=1.0, time_at_goal=400.0, final_success=1.0, final_distance=0.1,
                             episodes=16, episode_length=500)
    device = "test CPU, 1 thread(s)"
    report = RunReport(
        run=run, env="go2", random_init=random_init, distill_version=distill.__version__,
        teacher=TeacherInfo("go2_test", 8, 8, 128, 1, TEACHER_SHA),
        student=StudentInfo(preset.name, preset.depth, preset.width, student.num_params(), spec.student_input_dim,
                            preset.family, preset.history, preset.hidden, preset.layers),
        teacher_success=metrics, student_success=metrics, rounds=(),
        latency_host="test CPU (x86_64), jax test",
        latency=(LatencyRow("student", LatencyResult("onnxruntime_cpu", 0.05, p99_ms, 0.06, 2000, device)),
                 LatencyRow("teacher actor", LatencyResult("onnxruntime_cpu", 0.5, 0.9, 0.6, 2000, device))),
        variants=tuple(VariantRecord(precision, str(path), err, None, 0, metrics) for precision, path, err in (
            ("fp32", export.path, export.max_abs_err), ("fp16", fp16.path, fp16.max_abs_err),
            ("int8", int8.path, int8.max_abs_err))),
        target=TargetVerdict("go2", 1.0, 50.0, p99_ms, p99_ms <= 1.0, device),
        artifacts={"dataset": str(dataset), "student": str(run_dir / "student"), "student_onnx": str(export.path)},
    )
    write_report(report, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("ship"))


@pytest.fixture(scope="module")
def shipped(run_dir):
    return build_bundle(run_dir, target="go2", precision="fp16")


@pytest.fixture(scope="module")
def unpacked(shipped, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("robot")
    assert not any(dest.iterdir())
    with tarfile.open(shipped.archive) as tar:
        tar.extractall(dest, filter="data")
    (top,) = dest.iterdir()
    return top


# --- the robot side, run as the robot would --------------------------------------------------
REFUSE_IMPORTS = textwrap.dedent("""\
    import importlib.abc, sys
    FORBIDDEN = {"distill", "torch", "jax", "jaxlib"}
    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError("run_policy.py may not import " + name)
    sys.meta_path.insert(0, Refuse())
""")
ROBOT_RUNNER = REFUSE_IMPORTS + textwrap.dedent("""\
    import runpy
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
""")
ROBOT_ENV = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}


def robot_python(bundle: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python run_policy.py ARGS` in isolated mode (no PYTHONPATH, no user site), with distill,
    torch and jax made unimportable, from a folder other than the bundle's."""
    return subprocess.run([sys.executable, "-I", "-c", ROBOT_RUNNER, str(bundle / "run_policy.py"), *args],
                          cwd=cwd or bundle.parent, env=ROBOT_ENV, check=False, capture_output=True, text=True, timeout=300)


def test_bundle_unpacks_with_every_checksum_valid(shipped, unpacked):
    assert shipped.archive == shipped.archive.parent / "go2_test-mlp_2x64-go2-fp16.tar.gz"
    assert shipped.archive.parent.name == "ship" and unpacked.name == shipped.bundle
    names = sorted(p.name for p in unpacked.iterdir())
    assert names == sorted(["student.fp16.onnx", "deploy.yaml", "build_engine.sh", "run_policy.py",
                            "replay_obs.npy", "replay_actions.npy", "replay_starts.npy", "SHA256SUMS"])
    listed = {}
    for line in (unpacked / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert sorted(listed) == sorted(set(names) - {"SHA256SUMS"})
    for name, digest in listed.items():
        assert hashlib.sha256((unpacked / name).read_bytes()).hexdigest() == digest, name
    assert os.access(unpacked / "build_engine.sh", os.X_OK) and os.access(unpacked / "run_policy.py", os.X_OK)
    assert shipped.sha256 == hashlib.sha256(shipped.archive.read_bytes()).hexdigest()
    assert not list(shipped.archive.parent.glob("*.tmp"))
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=unpacked, check=False, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_run_policy_replays_the_students_actions_with_onnxruntime_alone(unpacked, run_dir):
    proc = robot_python(unpacked, "--replay", "--onnx")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replay OK: 256 rows (256 episodes) through ONNX Runtime" in proc.stdout
    # the replay rows are the run's own dataset rows, and the actions those of the shipped file
    obs, actions = np.load(unpacked / "replay_obs.npy"), np.load(unpacked / "replay_actions.npy")
    assert obs.dtype == np.float32 and obs.shape == (256, 44) and actions.shape == (256, 12)
    assert np.abs(actions).max() <= 1.0 and actions.std() > 0.05


def test_run_policy_falls_back_to_onnxruntime_when_the_engine_cannot_run(unpacked):
    proc = robot_python(unpacked, "--replay")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no engine at" in proc.stderr and "falling back to ONNX Runtime" in proc.stderr
    (unpacked / "student.fp16.engine").write_bytes(b"not an engine")
    try:
        proc = robot_python(unpacked, "--replay", "--engine")
    finally:
        (unpacked / "student.fp16.engine").unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the engine cannot run here" in proc.stderr and "replay OK" in proc.stdout


def test_run_policy_replay_fails_on_wrong_actions_and_names_the_row(unpacked, tmp_path):
    copy = tmp_path / unpacked.name
    shutil.copytree(unpacked, copy)
    actions = np.load(copy / "replay_actions.npy")
    actions[17] += 0.5
    np.save(copy / "replay_actions.npy", actions)
    proc = robot_python(copy, "--replay", "--onnx")
    assert proc.returncode == 1
    assert "replay FAILED" in proc.stdout and "worst row 17" in proc.stdout


def test_run_policy_bench_reports_against_the_budget(unpacked):
    """The verdict follows the measured p99 and the budget: a budget no call can miss passes (exit
    0), one no call can meet fails (exit 1); by default the target's budget is named."""
    generous = robot_python(unpacked, "--bench", "50", "--onnx", "--budget-ms", "60000")
    assert generous.returncode == 0, generous.stdout + generous.stderr
    assert generous.stdout.startswith("PASS: act() p99") and "vs budget 60000 ms" in generous.stdout
    impossible = robot_python(unpacked, "--bench", "50", "--onnx", "--budget-ms", "1e-9")
    assert impossible.returncode == 1, impossible.stdout + impossible.stderr
    assert impossible.stdout.startswith("FAIL: act() p99") and "vs budget 1e-09 ms" in impossible.stdout
    p99 = float(re.search(r"p99 ([0-9.]+) ms", generous.stdout).group(1))
    assert 0 < p99 < 60000
    default = robot_python(unpacked, "--bench", "20", "--onnx")
    word = "PASS" if float(re.search(r"p99 ([0-9.]+) ms", default.stdout).group(1)) <= 1.0 else "FAIL"
    assert default.stdout.startswith(f"{word}: act() p99") and "vs budget 1 ms" in default.stdout
    assert default.returncode == (0 if word == "PASS" else 1)


def test_run_policy_is_importable_as_the_controllers_library(unpacked):
    program = textwrap.dedent(f"""\
        import sys, warnings
        sys.path.insert(0, {str(unpacked)!r})
        import numpy as np
        from run_policy import ACTION_DIM, FixedRateLoop, PolicyRunner
        policy = PolicyRunner.load("onnx")
        obs = np.load({str(unpacked / "replay_obs.npy")!r})
        want = np.load({str(unpacked / "replay_actions.npy")!r})
        assert np.allclose(policy.act(obs[3]), want[3], atol=policy.tolerance)
        now = [0.0]
        def clock():
            return now[0]
        def slow_step():
            now[0] += 0.030          # 30 ms: over the 20 ms period
        loop = FixedRateLoop(rate_hz=50, budget_ms=1.0, clock=clock, sleep=lambda s: None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop.run(slow_step, steps=3)
        assert loop.steps == 3 and loop.period_overruns == 3, vars(loop)
        assert len(caught) == 1 and "over the 20.000 ms period" in str(caught[0].message)
        slept = []
        def sleep(seconds):
            slept.append(seconds)
            now[0] += seconds
        loop = FixedRateLoop(rate_hz=50, budget_ms=1.0, clock=clock, sleep=sleep)
        def busy_step():
            now[0] += 0.002          # 2 ms: inside the period, over the 1 ms budget
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop.run(busy_step, steps=2)
        assert loop.budget_overruns == 2 and loop.period_overruns == 0
        assert "inference budget" in str(caught[0].message)
        assert all(abs(s - 0.018) < 1e-9 for s in slept), slept
        print("ok", ACTION_DIM)
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", REFUSE_IMPORTS + program], env=ROBOT_ENV,
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok 12"


# --- Python 3.8 ------------------------------------------------------------------------------
def vermin(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from vermin import main; sys.exit(main())",
                           "--no-tips", "--violations", "-t=3.8-", str(path)], check=False, capture_output=True, text=True)


def test_run_policy_needs_nothing_newer_than_python38(unpacked, tmp_path):
    shipped_script = unpacked / "run_policy.py"
    for path in (shipped_script, ROBOT_DIR / "run_policy.py", ROBOT_DIR / "trtexec_summary.py"):
        text = path.read_text()
        ast.parse(text, feature_version=(3, 8))
        proc = vermin(path)
        assert proc.returncode == 0, f"{path}:\n{proc.stdout}{proc.stderr}"
    newer = tmp_path / "newer.py"
    newer.write_text('print("v1".removeprefix("v"))\n')
    assert vermin(newer).returncode != 0, "vermin must flag a 3.9-only call"


def _python38() -> str | None:
    """A Python 3.8 interpreter: $DISTILL_PY38, python3.8 on PATH, or pyenv's."""
    found = [os.environ.get("DISTILL_PY38"), *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.8*/bin/python")),
             shutil.which("python3.8")]
    for python in filter(None, found):
        probe = subprocess.run([python, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                               capture_output=True, check=False, timeout=60)
        if probe.returncode == 0:  # pyenv's shims exist but fail when 3.8 is not selected
            return python
    return None


@pytest.fixture(scope="module")
def robot_venv(tmp_path_factory) -> Path:
    """A Python 3.8 virtual environment with only numpy and onnxruntime, as on the Go2's Jetson."""
    python = _python38()
    if python is None:
        pytest.skip("no Python 3.8 interpreter here (set DISTILL_PY38, or install python3.8)")
    venv = tmp_path_factory.mktemp("py38") / "venv"
    made = subprocess.run([python, "-m", "venv", str(venv)], check=False, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert made.returncode == 0, made.stderr
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", "numpy", "onnxruntime"],
                         check=False, capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    return venv / "bin" / "python"


def test_run_policy_replays_under_a_real_python38(unpacked, robot_venv):
    proc = subprocess.run([str(robot_venv), "-I", str(unpacked / "run_policy.py"), "--replay", "--onnx"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = subprocess.run([str(robot_venv), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout
    assert version.strip() == "(3, 8)"


def test_shipped_script_carries_the_one_trtexec_parser(unpacked):
    text = (unpacked / "run_policy.py").read_text()
    assert parser_source() in text
    assert "from trtexec_summary import" not in text
    assert "INPUT_DIM = 44\n" in text and "ACTION_DIM = 12\n" in text and "PRECISION = 'fp16'\n" in text
    script = (unpacked / "build_engine.sh").read_text()
    assert "PRECISION_FLAGS=--fp16\n" in script and "JETPACK_TRTEXEC=/usr/src/tensorrt/bin/trtexec\n" in script
    assert "ONNX_FILE=student.fp16.onnx\n" in script and "ENGINE_FILE=student.fp16.engine\n" in script


# --- students with memory ----------------------------------------------------------------------
GRU_PRESET = StudentPreset("gru_1x32_h16", 1, 32, family="gru", hidden=16, layers=1)
HISTORY_PRESET = StudentPreset("hist3_1x32", 1, 32, family="history", history=3)


def _unpack(archive: Path, dest: Path) -> Path:
    assert not any(dest.iterdir())
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    (top,) = dest.iterdir()
    return top


@pytest.fixture(scope="module")
def gru_bundle(tmp_path_factory) -> Path:
    run_dir = make_run(tmp_path_factory.mktemp("gru"), run="go2_test-gru", preset=GRU_PRESET)
    return _unpack(build_bundle(run_dir, precision="fp32").archive, tmp_path_factory.mktemp("robot_gru"))


def test_gru_bundle_replays_whole_episodes_with_resets_in_an_empty_folder(gru_bundle, tmp_path):
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=gru_bundle, check=False, capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    starts = np.load(gru_bundle / "replay_starts.npy")
    assert starts[0] and starts.sum() >= 3 and len(starts) > starts.sum()  # several episodes, several steps each
    proc = robot_python(gru_bundle, "--replay", "--onnx")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"({int(starts.sum())} episodes) through ONNX Runtime" in proc.stdout
    # a runner that never resets its hidden state between episodes does not reproduce the student
    copy = tmp_path / gru_bundle.name
    shutil.copytree(gru_bundle, copy)
    np.save(copy / "replay_starts.npy", np.zeros_like(starts))
    proc = robot_python(copy, "--replay", "--onnx")
    assert proc.returncode == 1 and "replay FAILED" in proc.stdout


def test_gru_deploy_yaml_names_the_state_and_its_reset(gru_bundle):
    doc = yaml.safe_load((gru_bundle / "deploy.yaml").read_text())
    assert doc["model"]["input_shape"] == [1, 44] and doc["model"]["state_shape"] == [1, 1, 16]
    assert (doc["model"]["state_input"], doc["model"]["state_output"]) == ("h_in", "h_out")
    memory = doc["memory"]
    assert memory["kind"] == "recurrent" and memory["history"] == []
    (state,) = memory["state"]
    assert state["input"] == "h_in" and state["output"] == "h_out" and state["shape"] == [1, 1, 16]
    assert state["initial"] == "zeros" and "episode's first step" in state["reset"]
    text = (gru_bundle / "run_policy.py").read_text()
    assert "STATE_INPUT = 'h_in'\n" in text and "STATE_SHAPE = (1, 1, 16)\n" in text and "OBS_DIM = 44\n" in text


def test_history_bundle_stacks_each_field_oldest_first(tmp_path_factory):
    run_dir = make_run(tmp_path_factory.mktemp("hist"), run="go2_test-hist", preset=HISTORY_PRESET)
    bundle = _unpack(build_bundle(run_dir, precision="int8").archive, tmp_path_factory.mktemp("robot_hist"))
    doc = yaml.safe_load((bundle / "deploy.yaml").read_text())
    memory = doc["memory"]
    assert memory["kind"] == "history" and memory["history_length"] == 3 and "oldest first" in memory["history_order"]
    fields = {f["name"]: f for f in memory["history"]}
    joint = fields["joint_pos"]
    assert (joint["obs_start"], joint["obs_stop"]) == (6, 18)
    assert (joint["input_start"], joint["input_stop"]) == (18, 54) and joint["history_length"] == 3
    assert doc["model"]["input_shape"] == [1, 3 * 44] and memory["history"][-1]["input_stop"] == 3 * 44
    proc = robot_python(bundle, "--replay", "--onnx")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "episodes) through ONNX Runtime" in proc.stdout


def test_gru_bundle_replays_under_a_real_python38(gru_bundle, robot_venv):
    proc = subprocess.run([str(robot_venv), "-I", str(gru_bundle / "run_policy.py"), "--replay", "--onnx"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replay OK" in proc.stdout


# --- deploy.yaml -----------------------------------------------------------------------------
def test_deploy_yaml_parses_back_to_the_record(shipped, unpacked):
    doc = yaml.safe_load((unpacked / "deploy.yaml").read_text())
    assert doc == shipped.deploy.to_tree()
    assert doc["format"] == "distill.deploy/1" and doc["env"] == "go2" and doc["forced"] is False
    assert doc["model"]["file"] == "student.fp16.onnx" and doc["model"]["input_shape"] == [1, 44]
    assert doc["model"]["opset"] == 17 and "baked in" in doc["model"]["normalisation"]
    fields = {f["name"]: (f["start"], f["stop"], f["part"]) for f in doc["observation"]["fields"]}
    assert fields["joint_pos"] == (6, 18, "state") and fields["goal_rel"] == (42, 44, "goal")
    assert "base_pos" not in fields and doc["observation"]["dim"] == 44  # the student's, not the privileged teacher's
    assert doc["goal"]["frame"].startswith("base yaw frame") and doc["goal"]["names"] == ["goal_rel_x", "goal_rel_y"]
    assert doc["action"]["kp"] == 50.0 and doc["action"]["joint_order"][0] == "FR_hip"
    assert doc["latency"]["p99_ms"] == 0.09 and doc["latency"]["meets_budget"] is True
    assert doc["lineage"]["teacher"] == {"name": "go2_test", "weights_sha256": TEACHER_SHA}
    assert doc["lineage"]["dataset"]["rows"] == 2 * ROUND_ROWS
    assert doc["lineage"]["student"]["preset"] == "mlp_2x64" and doc["lineage"]["student"]["dagger_round"] == 1
    assert doc["lineage"]["distill"]["shipped_with_distill"] == distill.__version__
    assert doc["replay"]["rows"] == 256 and doc["replay"]["tolerance_onnx"] >= 1e-3


def test_yaml_writer_quotes_what_a_reader_would_misread():
    tree = {"yes": "yes", "num": "1.0", "tiny": 1e-05, "big": 1e20, "colon": "a: b", "hash": "x #y", "empty": [],
            "none": None, "flag": True, "uni": "q̇ − τ", "nested": [{"k": 1, "v": [1.5, "on"]}], "inf": float("inf"),
            "path": "datasets/run/rollouts.h5", "date": "2026-11-24"}
    text = dump(tree, header=("a comment",))
    assert text.startswith("# a comment\n")
    for line in ('"yes": "yes"', 'num: "1.0"', "tiny: 1.0e-05", "big: 1.0e+20", "empty: []", "none: null",
                 "flag: true", "path: datasets/run/rollouts.h5", 'date: "2026-11-24"', '"inf": .inf'):
        assert line in text.splitlines(), line
    assert yaml.safe_load(text) == tree


# --- refusals --------------------------------------------------------------------------------
def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


def test_refuses_a_student_over_budget_unless_forced(tmp_path):
    run_dir = make_run(tmp_path, run="slow", p99_ms=2.5)
    before = _files_under(tmp_path)
    with pytest.raises(DistillError, match=r"refusing to ship slow: student p99 2\.5 ms .* misses the go2 budget of 1 ms"):
        build_bundle(run_dir, precision="fp32")
    assert _files_under(tmp_path) == before
    result = build_bundle(run_dir, precision="fp32", force=True)
    assert result.forced and "misses the go2 budget" in result.reasons[0]
    assert result.deploy.forced and result.deploy.forced_reasons == result.reasons
    assert result.deploy.latency.meets_budget is False


def test_shipped_file_is_checked_for_tensorrt85_and_refused_when_not_ready(run_dir, shipped, tmp_path):
    assert shipped.deploy.readiness.checked and shipped.deploy.readiness.ok
    copy = tmp_path / "students" / "opset18"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("ship"))
    import onnx

    model = onnx.load(str(copy / "student.onnx"))
    model.opset_import[0].version = 18  # TensorRT 8.5's parser stops at opset 17
    onnx.save(model, str(copy / "student.onnx"))
    with pytest.raises(DistillError, match=r"not ready for TensorRT 8\.5: .*opset 18"):
        build_bundle(copy, precision="fp32")
    assert not (copy / "ship").exists()
    forced = build_bundle(copy, precision="fp32", force=True)
    assert forced.deploy.forced and not forced.deploy.readiness.ok


def test_cli_refusals_are_one_line_and_write_nothing(run_dir, tmp_path, capsys):
    before = _files_under(run_dir.parent.parent)
    assert distill_main(["ship", str(tmp_path / "no_such_run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no run folder" in err
    copy = tmp_path / "students" / "no_int8"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("ship"))
    (copy / "student.int8.qdq.onnx").unlink()
    assert distill_main(["ship", str(copy), "--precision", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no int8 ONNX" in err and "fp16, fp32" in err
    assert not (copy / "ship").exists()
    assert _files_under(run_dir.parent.parent) == before


def test_cli_ships_int8_with_the_qdq_flags(run_dir, tmp_path, capsys):
    out = tmp_path / "go2.tar.gz"
    assert distill_main(["ship", str(run_dir), "--precision", "int8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"shipped go2_test-mlp_2x64-go2-int8: {out}" in printed and "sha256sum -c SHA256SUMS" in printed
    with tarfile.open(out) as tar:
        script = tar.extractfile("go2_test-mlp_2x64-go2-int8/build_engine.sh").read().decode()
        names = tar.getnames()
    assert "PRECISION_FLAGS='--int8 --fp16'\n" in script
    assert "go2_test-mlp_2x64-go2-int8/student.int8.qdq.onnx" in names


def test_readiness_and_random_teacher_are_refusal_reasons(run_dir):
    inputs = load_ship_inputs(run_dir)
    target = load_target("go2")
    assert refusal_reasons(inputs, target, ReadinessVerdict(True, True)) == ()
    bad = ReadinessVerdict(True, False, ("LayerNormalization is not in TensorRT 8.5's parser",))
    (reason,) = refusal_reasons(inputs, target, bad)
    assert reason == "not ready for TensorRT 8.5: LayerNormalization is not in TensorRT 8.5's parser"
    (reason,) = refusal_reasons(replace(inputs, random_init=True), target, ReadinessVerdict(True, True))
    assert "random weights" in reason


def test_inputs_come_from_report_student_toml_and_dataset(run_dir):
    inputs = load_ship_inputs(run_dir)
    assert inputs.run == "go2_test-mlp_2x64" and inputs.env_name == "go2"
    assert sorted(inputs.onnx_files) == ["fp16", "fp32", "int8"]
    assert inputs.dataset_rows == 2 * ROUND_ROWS and inputs.dataset_meta.teacher_sha256 == TEACHER_SHA
    assert inputs.latency.p99_ms == 0.09 and inputs.latency.backend == "onnxruntime_cpu"
    assert len(inputs.student_weights_sha256) == 64 and inputs.student_round == 1


# --- timings from the robot ------------------------------------------------------------------
def test_trtexec_85_summary_parses_to_latency_figures():
    t = parse_trtexec_log(TRTEXEC_85_LOG, precision="fp16")
    assert (t.median_ms, t.p99_ms, t.min_ms, t.max_ms, t.mean_ms) == (0.131836, 0.208008, 0.118164, 0.912109, 0.135742)
    assert (t.gpu_compute_median_ms, t.gpu_compute_p99_ms) == (0.0849609, 0.150391)
    assert t.throughput_qps == 4520.91 and t.tensorrt_version == "8.5.2" and t.device == "Orin"
    assert t.meets(1.0) and not t.meets(0.2)
    assert t.verdict_line(1.0).startswith("PASS: p99 0.2080 ms vs budget 1 ms")


def test_trtexec_summary_with_more_percentiles_picks_the_99th():
    newer = TRTEXEC_85_LOG.replace(
        "median = 0.131836 ms, percentile(99%) = 0.208008 ms",
        "median = 0.131836 ms, percentile(90%) = 0.15 ms, percentile(95%) = 0.17 ms, percentile(99%) = 0.208008 ms")
    assert parse_trtexec_log(newer).p99_ms == 0.208008
    with pytest.raises(TrtexecParseError, match="Performance summary"):
        parse_trtexec_log(TRTEXEC_85_LOG.split("=== Performance summary ===")[0])
    with pytest.raises(TrtexecParseError, match="percentile"):
        parse_trtexec_log(TRTEXEC_85_LOG.replace(", percentile(99%) = 0.208008 ms", ""))


def test_timings_travel_from_the_robot_script_to_distill_bench(unpacked, tmp_path, capsys):
    log = tmp_path / "timing.log"
    log.write_text(TRTEXEC_85_LOG)
    out = tmp_path / "device_timings.json"
    proc = robot_python(unpacked, "parse-trtexec", str(log), "--out", str(out), "--device", "NVIDIA Jetson Orin NX")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PASS: p99 0.2080 ms vs budget 1 ms")
    timing = load_device_timings(out)
    onnx_sha = hashlib.sha256((unpacked / "student.fp16.onnx").read_bytes()).hexdigest()
    assert timing == replace(parse_trtexec_log(TRTEXEC_85_LOG, precision="fp16", device="NVIDIA Jetson Orin NX"),
                             bundle=unpacked.name, model_sha256=onnx_sha)
    assert load_device_timings(log).p99_ms == timing.p99_ms
    verdict = device_verdict(timing, load_target("go2"), out)
    assert verdict.meets_budget and verdict.headroom_ms == pytest.approx(1.0 - 0.208008)
    assert distill_main(["bench", "--device-timings", str(out)]) == 0
    assert "go2 (from device_timings.json): PASS: p99 0.2080 ms" in capsys.readouterr().out
    (tmp_path / "junk.json").write_text('{"format": "something else"}')
    assert distill_main(["bench", "--device-timings", str(tmp_path / "junk.json")]) == 2


def test_build_engine_script_builds_times_and_judges(unpacked, tmp_path):
    """trtexec cannot run without a GPU; a stand-in that records its arguments and prints the
    documented summary checks the script's own logic: flags, the two runs, the parse, PASS/FAIL."""
    fake = tmp_path / "trtexec"
    fake.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        echo "$@" >> {tmp_path / "calls"}
        for a in "$@"; do case "$a" in --saveEngine=*) echo engine > "${{a#--saveEngine=}}";; esac; done
        case "$*" in *--loadEngine=*) cat {tmp_path / "timing.log"};; esac
    """))
    fake.chmod(0o755)
    (tmp_path / "timing.log").write_text(TRTEXEC_85_LOG)
    bundle = tmp_path / "bundle"
    shutil.copytree(unpacked, bundle)
    env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "TRTEXEC": str(fake), "PYTHON": sys.executable, "HOME": os.environ.get("HOME", "/tmp")}
    proc = subprocess.run(["bash", str(bundle / "build_engine.sh")], cwd=tmp_path, env=env, check=False, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS: p99 0.2080 ms vs budget 1 ms" in proc.stdout
    build, timing = (tmp_path / "calls").read_text().splitlines()
    assert "--onnx=student.fp16.onnx" in build and "--saveEngine=student.fp16.engine" in build and "--fp16" in build
    assert "--loadEngine=student.fp16.engine" in timing and "--percentile=99" in timing
    assert json.loads((bundle / "device_timings.json").read_text())["precision"] == "fp16"
    (tmp_path / "timing.log").write_text(TRTEXEC_85_LOG.replace("percentile(99%) = 0.208008", "percentile(99%) = 1.5"))
    proc = subprocess.run(["bash", str(bundle / "build_engine.sh")], cwd=tmp_path, env=env, check=False, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and "FAIL: p99 1.5000 ms vs budget 1 ms" in proc.stdout
    env["TRTEXEC"] = str(tmp_path / "missing")
    proc = subprocess.run(["bash", str(bundle / "build_engine.sh")], env=env, check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and "no trtexec at" in proc.stderr


# --- the Go2's action semantics ----------------------------------------------------------------
def test_go2_action_semantics_match_the_simulated_actuators():
    from distill.envs import go2

    env = make_env("go2")
    sem = env.action_semantics()
    assert sem.joint_order == go2.JOINT_NAMES and len(sem.names) == env.spec.action_dim == 12
    assert sem.default_pose == tuple(go2.HOME_POSE) and sem.action_scale == go2.ACTION_SCALE
    assert (sem.kp, sem.kd) == (go2.KP, go2.KD) and sem.control_hz == 1.0 / (go2.TIMESTEP * go2.N_FRAMES) == 50.0
    assert sem.torque_limits == tuple(go2.TORQUE_LIMIT[j.split("_")[1]] for j in go2.JOINT_NAMES)
    m = env.mj_model
    for i, name in enumerate(sem.joint_order):
        assert m.actuator(i).name == name
        # MuJoCo's affine actuator: force = gain * a + b0 + b1 q + b2 qdot, the PD law written out
        assert m.actuator_gainprm[i, 0] == pytest.approx(sem.kp * sem.action_scale)
        assert tuple(m.actuator_biasprm[i, :3]) == pytest.approx((sem.kp * sem.default_pose[i], -sem.kp, -sem.kd))
        assert tuple(m.actuator_forcerange[i]) == pytest.approx((-sem.torque_limits[i], sem.torque_limits[i]))
    generic = make_env("reacher").action_semantics()
    assert generic.names == make_env("reacher").spec.action_names and generic.kp is None and generic.joint_order == ()
