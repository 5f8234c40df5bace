"""The ship archive: `students/<run>/ship/<run>-<target>-<precision>.tar.gz`.

Inside, one top folder named like the archive holds the chosen ONNX, deploy.yaml,
build_engine.sh, run_policy.py, replay_obs.npy, replay_actions.npy, replay_starts.npy and SHA256SUMS (the
`sha256sum -c` format, covering every other file). Every refusal is decided before anything is
written, and the archive is written to a temporary file and renamed, so a refused or interrupted
ship leaves nothing behind.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.atomic import atomic_path
from distill.bench.targets import TargetProfile, load_target
from distill.envs import make_env
from distill.errors import DistillError
from distill.export.tensorrt import (
    DEFAULT_WORKSPACE_MB,
    PRECISIONS,
    TRTEXEC,
    trtexec_precision_flags,
)
from distill.hashing import sha256_bytes, sha256_file
from distill.ship.deploy import (
    DeployDescription,
    MemorySection,
    ModelSection,
    ShipDecision,
    describe_deployment,
    model_section,
)
from distill.ship.gate import refusal_reasons, tensorrt_readiness
from distill.ship.inputs import ShipInputs, load_ship_inputs
from distill.ship.replay import ReplaySet, make_replay
from distill.ship.templates import (
    BUILD_ENGINE,
    RUN_POLICY,
    RobotConstants,
    render_build_engine,
    render_run_policy,
)

DEPLOY = "deploy.yaml"
CHECKSUMS = "SHA256SUMS"
REPLAY_OBS = "replay_obs.npy"
REPLAY_ACTIONS = "replay_actions.npy"
REPLAY_STARTS = "replay_starts.npy"
DEVICE_TIMINGS = "device_timings.json"
EXECUTABLE = ("build_engine.sh", "run_policy.py")


@dataclass(frozen=True)
class ShipResult:
    archive: Path
    sha256: str
    bundle: str
    """The archive's top folder."""
    files: tuple[str, ...]
    deploy: DeployDescription
    forced: bool
    reasons: tuple[str, ...]
    """Why it would have been refused (shipped anyway only with force)."""


def default_archive(inputs: ShipInputs, target: TargetProfile, precision: str) -> Path:
    return inputs.run_dir / "ship" / f"{bundle_name(inputs, target, precision)}.tar.gz"


def bundle_name(inputs: ShipInputs, target: TargetProfile, precision: str) -> str:
    return f"{inputs.run}-{target.name}-{precision}"


def _shipped_onnx(inputs: ShipInputs, precision: str) -> tuple[Path, Path]:
    if precision not in PRECISIONS:
        raise DistillError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    have = ", ".join(sorted(inputs.onnx_files)) or "none"
    for wanted in (precision, "fp32"):
        if wanted not in inputs.onnx_files:
            raise DistillError(f"{inputs.run_dir}: no {wanted} ONNX (the run has: {have}); re-run `distill run` to export it")
    return inputs.onnx_files[precision], inputs.onnx_files["fp32"]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def checksums(contents: Mapping[str, bytes]) -> bytes:
    """`sha256sum -c` lines ("<hex>  <name>") for every file, sorted by name."""
    lines = [f"{sha256_bytes(data)}  {name}\n" for name, data in sorted(contents.items())]
    return "".join(lines).encode()


def write_archive(path: Path, top: str, contents: Mapping[str, bytes]) -> None:
    """A .tar.gz with `top/` holding the files; owner-neutral, scripts executable."""
    mtime = int(time.time())

    def info(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.size, entry.mode, entry.mtime, entry.type = size, mode, mtime, kind
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = ""
        return entry

    with atomic_path(path) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.addfile(info(top, 0, 0o755, tarfile.DIRTYPE))
        for name, data in sorted(contents.items()):
            mode = 0o755 if name in EXECUTABLE else 0o644
            tar.addfile(info(f"{top}/{name}", len(data), mode), io.BytesIO(data))


def _robot_constants(name: str, files: Mapping[str, str], precision: str, target: TargetProfile,
                     model: ModelSection, memory: MemorySection, obs_dim: int, replay: ReplaySet) -> RobotConstants:
    fields = tuple((f.obs_start, f.obs_stop) for f in memory.history)
    return RobotConstants(
        bundle_name=name, onnx_file=files["onnx"], engine_file=files["engine"], precision=precision,
        input_name=model.input_name, output_name=model.output_name, obs_dim=obs_dim, input_dim=model.input_shape[1],
        action_dim=model.output_shape[1], history_length=memory.history_length, history_fields=fields,
        state_input=model.state_input, state_output=model.state_output, state_shape=tuple(model.state_shape),
        control_hz=target.control_hz, budget_ms=target.budget_p99_ms, replay_obs_file=files["replay_obs"],
        replay_actions_file=files["replay_actions"], replay_starts_file=files["replay_starts"],
        tolerance_onnx=replay.tolerance_onnx,
        tolerance_engine=replay.tolerance_engine, timings_file=files["device_timings"],
        precision_flags=tuple(trtexec_precision_flags(precision)), workspace_mb=DEFAULT_WORKSPACE_MB, trtexec=TRTEXEC,
    )


def _decide(inputs: ShipInputs, target: TargetProfile, onnx_path: Path, force: bool) -> ShipDecision:
    readiness = tensorrt_readiness(onnx_path, target)
    reasons = refusal_reasons(inputs, target, readiness)
    if reasons and not force:
        raise DistillError(f"refusing to ship {inputs.run}: {'; '.join(reasons)} (--force ships it anyway and records why)")
    return ShipDecision(readiness, reasons, force)


def build_bundle(
    run_dir: str | Path, target: str | Path = "go2", precision: str = "fp16", force: bool = False,
    out: str | Path | None = None,
) -> ShipResult:
    """Checks the run against the target, then writes the archive (default under the run's ship/)."""
    inputs = load_ship_inputs(run_dir)
    profile = load_target(target)
    onnx_path, fp32_path = _shipped_onnx(inputs, precision)
    env = make_env(inputs.env_name, inputs.backend or None)
    spec = env.spec
    model = model_section(onnx_path, precision, spec.student_input_dim, spec.action_dim)
    decision = _decide(inputs, profile, onnx_path, force)

    name = bundle_name(inputs, profile, precision)
    archive = Path(out) if out is not None else default_archive(inputs, profile, precision)
    if archive.is_dir():
        archive = archive / f"{name}.tar.gz"
    replay = make_replay(onnx_path, fp32_path, inputs.dataset_path, precision)
    files = {"onnx": onnx_path.name, "engine": onnx_path.name.removesuffix(".onnx") + ".engine", "deploy": DEPLOY,
             "run_policy": RUN_POLICY, "build_engine": BUILD_ENGINE, "replay_obs": REPLAY_OBS,
             "replay_actions": REPLAY_ACTIONS, "replay_starts": REPLAY_STARTS, "checksums": CHECKSUMS,
             "device_timings": DEVICE_TIMINGS}
    deploy = describe_deployment(inputs, env, profile, model, replay, decision, name, files)
    constants = _robot_constants(name, files, precision, profile, model, deploy.memory, spec.student_input_dim, replay)
    contents = {
        files["onnx"]: onnx_path.read_bytes(),
        DEPLOY: deploy.to_yaml().encode(),
        RUN_POLICY: render_run_policy(constants).encode(),
        BUILD_ENGINE: render_build_engine(constants).encode(),
        REPLAY_OBS: _npy(replay.obs),
        REPLAY_ACTIONS: _npy(replay.actions),
        REPLAY_STARTS: _npy(replay.starts),
    }
    contents[CHECKSUMS] = checksums(contents)
    write_archive(archive, name, contents)
    return ShipResult(archive, sha256_file(archive), name, tuple(sorted(contents)), deploy,
                      deploy.forced, decision.reasons)
