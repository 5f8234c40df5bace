"""deploy.yaml: what the robot's side must know to run a shipped student, as typed records.

`describe_deployment` builds a `DeployDescription` from the run's inputs, the env (layout and
action semantics) and the shipping decisions; `to_yaml` writes it. The YAML's sections follow the
records' fields in order: format, bundle, created, env, target, model, observation, goal, memory,
action, latency, readiness, forced, forced_reasons, replay, lineage, files.

`memory` says what the controller must carry between steps: for a history student, each field's
last `history_length` values, oldest first, stacked field by field into the model's `obs` (as
unitree_rl_lab's deploy.yaml gives each observation term a `history_length`); for a recurrent
student, the state tensor to feed back (`h_out` of one step is `h_in` of the next); and when to
start afresh (a new episode: after a reset, a fall, a new goal).
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

import distill
from distill.bench.targets import TargetProfile
from distill.data.schema import utc_now_iso
from distill.envs.base import ActionSemantics, GoalEnv
from distill.envs.describe import obs_groups
from distill.errors import DistillError
from distill.export.onnx_export import (
    INPUT_NAME,
    OUTPUT_NAME,
    STATE_INPUT,
    STATE_OUTPUT,
    onnx_io,
    policy_io,
)
from distill.export.stepper import history_layout
from distill.hashing import sha256_file
from distill.paths import project_root
from distill.ship.gate import ReadinessVerdict
from distill.ship.inputs import ShipInputs
from distill.ship.replay import ReplaySet
from distill.ship.yaml_text import dump as dump_yaml

DEPLOY_FORMAT = "distill.deploy/1"
HOST_LATENCY_NOTE = ("measured on the run's host, not the robot: build_engine.sh times the engine on the robot "
                     "and `distill bench --device-timings` reads its figures")


@dataclass(frozen=True)
class TargetSection:
    name: str
    robot: str
    device: str
    jetpack: str
    tensorrt: str
    onnx_opset: int
    control_hz: float
    period_ms: float
    budget_p99_ms: float


@dataclass(frozen=True)
class ModelSection:
    file: str
    precision: str
    sha256: str
    opset: int
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    dtype: str = "float32"
    normalisation: str = "baked in: the graph computes (obs - mean) / std itself; feed raw observations"
    output: str = "tanh baked in: actions in [-1, 1]"
    state_input: str = ""
    """Recurrent students: the state input (fed the previous step's `state_output`)."""
    state_output: str = ""
    state_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class ObsField:
    name: str
    start: int
    stop: int
    part: str
    """"state" or "goal"."""
    names: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class ObservationSection:
    dim: int
    state_dim: int
    goal_dim: int
    fields: tuple[ObsField, ...]


@dataclass(frozen=True)
class GoalSection:
    dim: int
    start: int
    stop: int
    names: tuple[str, ...]
    frame: str


@dataclass(frozen=True)
class HistoryField:
    """One observation field's history in the model input."""

    name: str
    obs_start: int
    """Where the field sits in one observation (the `observation` section's slices)."""
    obs_stop: int
    input_start: int
    """Where its `history_length` values sit in the model's `obs` input, oldest first."""
    input_stop: int
    history_length: int


@dataclass(frozen=True)
class RecurrentState:
    input: str
    output: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    initial: str = "zeros"
    reset: str = "zeros at the first step of every episode"


@dataclass(frozen=True)
class MemorySection:
    """What the controller carries from step to step (kind "none": nothing)."""

    kind: str
    """"none", "history" or "recurrent"."""
    reset: str
    history_length: int = 1
    history_order: str = ""
    history: tuple[HistoryField, ...] = ()
    state: tuple[RecurrentState, ...] = ()


NO_MEMORY_RESET = "nothing to reset: the model reads the current observation only"
HISTORY_RESET = ("at an episode's first step (after a reset, a fall, a new goal) every slot of every field's "
                 "history holds that first observation")
HISTORY_ORDER = ("per field, in the observation's field order; within a field its history_length values, oldest "
                 "first, each the field's full slice")
RECURRENT_RESET = "zeros at an episode's first step (after a reset, a fall, a new goal)"


@dataclass(frozen=True)
class LatencySection:
    backend: str
    measured_on: str
    host: str
    median_ms: float
    p99_ms: float
    n_calls: int
    budget_p99_ms: float
    meets_budget: bool
    note: str = HOST_LATENCY_NOTE


@dataclass(frozen=True)
class ReplaySection:
    obs_file: str
    actions_file: str
    starts_file: str
    """True at each episode's first row: the runner starts afresh there (clears history / state)."""
    rows: int
    episodes: int
    actions_from: str
    shipped_vs_fp32_max_abs: float
    tolerance_onnx: float
    tolerance_engine: float


@dataclass(frozen=True)
class TeacherLineage:
    name: str
    weights_sha256: str


@dataclass(frozen=True)
class DatasetLineage:
    file: str
    rows: int
    created: str


@dataclass(frozen=True)
class StudentLineage:
    preset: str
    depth: int
    width: int
    params: int
    weights_sha256: str
    dagger_round: int | None


@dataclass(frozen=True)
class ToolLineage:
    trained_with_distill: str
    shipped_with_distill: str
    git_commit: str
    git_dirty: bool | None


@dataclass(frozen=True)
class Lineage:
    run: str
    teacher: TeacherLineage
    dataset: DatasetLineage
    student: StudentLineage
    distill: ToolLineage


@dataclass(frozen=True)
class DeployDescription:
    bundle: str
    created: str
    env: str
    target: TargetSection
    model: ModelSection
    observation: ObservationSection
    goal: GoalSection
    memory: MemorySection
    action: ActionSemantics
    latency: LatencySection
    readiness: ReadinessVerdict
    forced: bool
    forced_reasons: tuple[str, ...]
    replay: ReplaySection
    lineage: Lineage
    files: Mapping[str, str]
    """Role -> file name inside the bundle (engine: the file build_engine.sh writes)."""
    format: str = DEPLOY_FORMAT

    def to_tree(self) -> dict[str, Any]:
        tree = _plain(self)
        return {"format": tree.pop("format"), **tree}

    def to_yaml(self) -> str:
        return dump_yaml(self.to_tree(), header=(
            f"deploy.yaml for bundle {self.bundle}: written by `distill ship` ({DEPLOY_FORMAT}).",
            "Observations are raw (normalisation is inside the model); actions are in [-1, 1].",
        ))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def git_state(root: Path) -> tuple[str, bool | None]:
    """(commit, has uncommitted changes to tracked files) of the distill checkout; "unknown" and
    None outside a git checkout or without git."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, bool(status.strip())


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path.resolve())


def model_section(onnx_path: Path, precision: str, input_dim: int, action_dim: int) -> ModelSection:
    """The shipped file's IO, checked against the dims the run's data and env say (`input_dim`: one
    observation; a history file stacks several, a recurrent one adds its state)."""
    model = onnx.load(str(onnx_path))
    io = onnx_io(model)
    width = io["inputs"].get(INPUT_NAME, [0, 0])[-1]
    layout = history_layout({p.key: p.value for p in model.metadata_props}, width)
    state = io["inputs"].get(STATE_INPUT)
    want = policy_io(layout.input_dim if layout is not None else input_dim, action_dim, state)
    if {"inputs": io["inputs"], "outputs": io["outputs"]} != want or (layout and layout.step_dim != input_dim):
        raise DistillError(f"{onnx_path} has inputs {io['inputs']} and outputs {io['outputs']}; the run's data needs "
                           f"{want['inputs']} -> {want['outputs']} — re-export the student")
    return ModelSection(file=onnx_path.name, precision=precision, sha256=sha256_file(onnx_path), opset=int(io["opset"]),
                        input_name=INPUT_NAME, input_shape=tuple(want["inputs"][INPUT_NAME]), output_name=OUTPUT_NAME,
                        output_shape=(1, action_dim), state_input=STATE_INPUT if state else "",
                        state_output=STATE_OUTPUT if state else "", state_shape=tuple(state or ()))


def memory_section(onnx_path: Path, observation: ObservationSection) -> MemorySection:
    """What the shipped file needs carried between steps, from its own metadata and IO."""
    model = onnx.load(str(onnx_path))
    io = onnx_io(model)
    layout = history_layout({p.key: p.value for p in model.metadata_props}, io["inputs"][INPUT_NAME][-1])
    state = io["inputs"].get(STATE_INPUT)
    if state:
        return MemorySection("recurrent", RECURRENT_RESET,
                             state=(RecurrentState(STATE_INPUT, STATE_OUTPUT, tuple(state), reset=RECURRENT_RESET),))
    if layout is None:
        return MemorySection("none", NO_MEMORY_RESET)
    sizes = tuple(f.stop - f.start for f in observation.fields)
    if sizes != layout.fields:
        raise DistillError(f"{onnx_path} stacks its history by fields of sizes {list(layout.fields)}, the env's "
                           f"observation has fields of sizes {list(sizes)}; re-export the student for this env")
    fields = tuple(HistoryField(f.name, f.start, f.stop, a, b, layout.length)
                   for f, (a, b) in zip(observation.fields, layout.field_slices()))
    return MemorySection("history", HISTORY_RESET, layout.length, HISTORY_ORDER, fields)


def observation_sections(env: GoalEnv) -> tuple[ObservationSection, GoalSection]:
    """The student's observation: what the robot feeds the shipped model (never the teacher's,
    which may hold privileged simulator state)."""
    obs = env.spec.student_observation
    declared = env.student_obs_groups if env.spec.asymmetric else env.obs_groups
    fields = tuple(
        ObsField(name, start, stop, "goal" if start >= obs.state_dim else "state", obs.names[start:stop],
                 env.obs_notes.get(name, ""))
        for name, start, stop in obs_groups(obs, declared)
    )
    goal = GoalSection(obs.goal_dim, obs.state_dim, obs.dim, obs.names[obs.state_dim:], env.goal_frame)
    return ObservationSection(obs.dim, obs.state_dim, obs.goal_dim, fields), goal


def lineage(inputs: ShipInputs) -> Lineage:
    commit, dirty = git_state(project_root())
    return Lineage(
        run=inputs.run,
        teacher=TeacherLineage(inputs.teacher_name, inputs.teacher_sha256),
        dataset=DatasetLineage(_display_path(inputs.dataset_path), inputs.dataset_rows, inputs.dataset_meta.created),
        student=StudentLineage(inputs.student_preset, inputs.student_depth, inputs.student_width, inputs.student_params,
                               inputs.student_weights_sha256, inputs.student_round),
        distill=ToolLineage(inputs.run_distill_version, distill.__version__, commit, dirty),
    )


@dataclass(frozen=True)
class ShipDecision:
    """What shipping decided before writing: the readiness verdict and any overridden refusals."""

    readiness: ReadinessVerdict
    reasons: tuple[str, ...]
    forced: bool


def describe_deployment(
    inputs: ShipInputs, env: GoalEnv, target: TargetProfile, model: ModelSection, replay: ReplaySet,
    decision: ShipDecision, bundle: str, files: Mapping[str, str],
) -> DeployDescription:
    observation, goal = observation_sections(env)
    memory = memory_section(inputs.onnx_files[model.precision], observation)
    lat = inputs.latency
    return DeployDescription(
        bundle=bundle,
        created=utc_now_iso(),
        env=inputs.env_name,
        target=TargetSection(target.name, target.robot, target.device, target.jetpack, target.tensorrt,
                             target.onnx_opset, target.control_hz, target.period_ms, target.budget_p99_ms),
        model=model,
        observation=observation,
        goal=goal,
        memory=memory,
        action=env.action_semantics(),
        latency=LatencySection(lat.backend, lat.device, inputs.latency_host, lat.median_ms, lat.p99_ms, lat.n_calls,
                               target.budget_p99_ms, lat.p99_ms <= target.budget_p99_ms),
        readiness=decision.readiness,
        forced=decision.forced and bool(decision.reasons),
        forced_reasons=decision.reasons if decision.forced else (),
        replay=ReplaySection(files["replay_obs"], files["replay_actions"], files["replay_starts"], int(replay.obs.shape[0]),
                             int(replay.starts.sum()),
                             f"{model.file} in ONNX Runtime {_ort_version()} (CPU)", replay.shipped_vs_fp32,
                             replay.tolerance_onnx, replay.tolerance_engine),
        lineage=lineage(inputs),
        files=files,
    )


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
