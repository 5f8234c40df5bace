"""Success in MJX of a saved policy — a student folder or an ONNX file — and the re-check of a run.

A student folder is driven by its JAX mirror (what `distill run` reports for the student), an ONNX
file by ONNX Runtime at batch 1 (what it reports for each exported variant); both read the env's
student observation. Goals come from the same key a run evaluates on, so `evaluate_run` reproduces a
report's figures exactly: evaluation is deterministic, and the report was computed from the files
still in the run folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import onnx

from distill.bench.onnx_success import evaluate_onnx
from distill.bench.sim2sim import Sim2Sim, compare_engines
from distill.dagger import STATE_FILE, DaggerConfig, evaluate_student, evaluation_key, run_env
from distill.envs import make_env
from distill.envs.base import GoalEnv
from distill.errors import DistillError
from distill.export.onnx_export import INPUT_NAME, OUTPUT_NAME, onnx_io
from distill.export.stepper import history_layout
from distill.paths import students_dir
from distill.report import RunReport
from distill.rollouts import EpisodeMetrics
from distill.students.checkpoint import TOML_NAME, load_student
from distill.students.memory import Recurrence

log = logging.getLogger(__name__)

STUDENT_FOLDER = "student"


@dataclass(frozen=True)
class PolicyEvaluation:
    label: str
    path: Path
    metrics: EpisodeMetrics
    recorded: EpisodeMetrics | None = None
    """The figures the run's report holds for this policy, when re-checking a run."""

    @property
    def reproduced(self) -> bool | None:
        return None if self.recorded is None else self.metrics == self.recorded


def _check_dims(what: str, got: tuple[int, int], env: GoalEnv) -> None:
    want = (env.spec.student_input_dim, env.spec.action_dim)
    if got != want:
        raise DistillError(f"{what} maps {got[0]} inputs to {got[1]} actions, but env {env.spec.name} gives a "
                           f"student {want[0]} inputs and takes {want[1]} actions; pass the env it was trained on")


def _onnx_dims(path: Path) -> tuple[int, int]:
    """(observation width per step, action width) of a distill ONNX (a history file stacks several)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
        io = onnx_io(model)
    except Exception as exc:  # noqa: BLE001 (onnx's protobuf errors share no base)
        raise DistillError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0]})") from None
    inputs, outputs = io["inputs"].get(INPUT_NAME), io["outputs"].get(OUTPUT_NAME)
    if not inputs or not outputs or len(inputs) != 2 or len(outputs) != 2:
        raise DistillError(f"{path}: expected an input {INPUT_NAME!r} [1, D] and an output {OUTPUT_NAME!r} "
                           f"[1, A] (a distill export), found {io['inputs']} -> {io['outputs']}")
    layout = history_layout({p.key: p.value for p in model.metadata_props}, inputs[1])
    return (layout.step_dim if layout is not None else inputs[1]), outputs[1]


def evaluate_saved(path: str | Path, env_name: str, episodes: int, seed: int = 0,
                   envs: int = DaggerConfig.envs, backend: str | None = None) -> PolicyEvaluation:
    """`episodes` deterministic episodes of a student folder or .onnx file, `envs` at a time;
    `seed` picks the goals a `distill run` with that seed evaluates on (and its `envs` the batch
    it evaluates in, which its figures are exactly reproduced with); `backend` the physics
    (default: the env's own)."""
    path = Path(path)
    env = make_env(env_name, backend)
    key = evaluation_key(DaggerConfig(seed=seed, eval_episodes=episodes))
    if (path / TOML_NAME).is_file():
        student = load_student(path)
        _check_dims(f"student {path}", (Recurrence.of(student).step_dim, student.action_dim), env)
        log.info("evaluating %s in %s: %d episodes, goals of seed %d", path, env_name, episodes, seed)
        return PolicyEvaluation("student (JAX mirror)", path, evaluate_student(env, student, key, episodes, envs))
    if path.suffix == ".onnx" and path.is_file():
        _check_dims(f"{path}", _onnx_dims(path), env)
        log.info("evaluating %s in %s: %d episodes, goals of seed %d", path, env_name, episodes, seed)
        return PolicyEvaluation(f"{path.name} (ONNX Runtime)", path,
                                evaluate_onnx(env, path, key, episodes, batch=envs))
    raise DistillError(f"{path}: neither a student folder (with {TOML_NAME}) nor an .onnx file")


@dataclass(frozen=True)
class EngineComparison:
    """An ONNX file in MJX and in plain MuJoCo on the same goals, clean and (when the config has
    them) under the perturbations."""

    path: Path
    rows: tuple[tuple[str, Sim2Sim], ...]
    """(condition, comparison): "clean", and the perturbations' description when there are some."""


def evaluate_engines(path: str | Path, env_name: str, episodes: int, seed: int = 0,
                     cfg: DaggerConfig | None = None, progress: bool = True,
                     envs: int | None = None) -> EngineComparison:
    """`distill eval PATH --engine mujoco`: the file in plain MuJoCo beside MJX, on the goals a `distill
    run` with that seed evaluates on; `cfg` brings the [distill] perturbations (and episode length);
    MJX steps `envs` envs at a time (default: the config's evaluation batch)."""
    path = Path(path)
    if path.suffix != ".onnx" or not path.is_file():
        raise DistillError(f"{path}: --engine mujoco runs an exported .onnx file (a student folder runs in MJX only)")
    cfg = cfg or DaggerConfig(seed=seed)
    env = run_env(make_env(env_name), cfg)
    _check_dims(f"{path}", _onnx_dims(path), env)
    key = evaluation_key(DaggerConfig(seed=seed, eval_episodes=episodes))
    perturbation = cfg.perturbation(env)
    log.info("sim2sim %s in %s: %d episodes in MJX and in MuJoCo, goals of seed %d", path, env.spec.name, episodes,
             seed)
    batch = min(envs or cfg.eval_batch, episodes)
    rows = [("clean", compare_engines(env, path, key, episodes, progress=progress, batch=batch))]
    if perturbation.active:
        rows.append((perturbation.describe(),
                     compare_engines(env, path, key, episodes, perturbation, progress, batch=batch)))
    return EngineComparison(path, tuple(rows))


def run_folder(run: str | Path) -> Path:
    """A run name under students/, or a run folder's path."""
    candidate = Path(run)
    if (candidate / STATE_FILE).is_file():
        return candidate
    folder = students_dir() / str(run)
    if not (folder / STATE_FILE).is_file():
        raise DistillError(f"run {str(run)!r}: no {folder / STATE_FILE}; name a run under {students_dir()} "
                           "that `distill run` finished")
    return folder


def _run_config(folder: Path) -> DaggerConfig:
    path = folder / STATE_FILE
    try:
        return DaggerConfig.from_dict(json.loads(path.read_text())["config"], f"{path} config")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DistillError(f"{path}: unreadable ({exc}); rerun the run's `distill run` command") from None


def evaluate_run(run: str | Path) -> list[PolicyEvaluation]:
    """The run's final student and each ONNX variant in its report, on the report's goals
    (`evaluation_key` of the run's config, `eval_episodes` of them, the run's episode length),
    beside the recorded figures."""
    folder = run_folder(run)
    cfg = _run_config(folder)
    report = RunReport.load(folder)
    env = run_env(make_env(report.env, report.teacher.backend or None), cfg)
    key, episodes, batch = evaluation_key(cfg), cfg.eval_episodes, cfg.eval_batch
    log.info("re-evaluating run %s in %s on its report's goals (%d episodes, seed %d)",
             folder, env.spec.name, episodes, cfg.seed)
    student = load_student(folder / STUDENT_FOLDER)
    results = [PolicyEvaluation("student (JAX mirror)", folder / STUDENT_FOLDER,
                                evaluate_student(env, student, key, episodes, batch), report.student_success)]
    for variant in report.variants:
        path = folder / Path(variant.path).name
        results.append(PolicyEvaluation(f"{variant.precision} ONNX", path,
                                        evaluate_onnx(env, path, key, episodes, batch=batch),
                                        variant.success))
    return results
