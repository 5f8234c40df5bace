"""The run report: success of teacher and student, latency of both, where every artifact went.
The records above the pipeline's stages (rounds, latency rows, verdict) gathered for `distill run`.

`RunReport` is the typed record `distill run` produces; `report.json` is its `to_dict()` and
`RunReport.load` reads it back (ship, eval and the sweep read runs that way); `report.md` is the
same for people, and is what `make distill` prints at the end.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill.atomic import write_text_atomic
from distill.bench.latency import LatencyResult
from distill.bench.targets import TargetVerdict
from distill.dagger import RoundRecord
from distill.errors import DistillError
from distill.rollouts import EpisodeMetrics

RANDOM_INIT_WARNING = (
    "WARNING: teacher built with --random-init: success figures below are meaningless "
    "(systems benchmark only)."
)
REPORT_JSON, REPORT_MD = "report.json", "report.md"


@dataclass(frozen=True)
class TeacherInfo:
    name: str
    actor_depth: int
    critic_depth: int
    width: int
    actor_params: int
    weights_sha256: str
    """The weights' identity: their file's sha256, or `random-init:<seed>` for random weights."""
    backend: str = ""
    """The physics the teacher labelled and was evaluated in."""
    activation: str = "swish"


@dataclass(frozen=True)
class StudentInfo:
    preset: str
    depth: int
    width: int
    params: int
    input_dim: int
    """One observation's width (a history student stacks `history` of them)."""
    family: str = "mlp"
    history: int = 1
    hidden: int = 0
    layers: int = 0


@dataclass(frozen=True)
class LatencyRow:
    model: str
    """"student" or "teacher actor"."""
    result: LatencyResult


@dataclass(frozen=True)
class VariantRecord:
    """An exported student file and how it does in MJX, run by ONNX Runtime."""

    precision: str
    path: str
    max_abs_err: float
    """fp32: against PyTorch; fp16 / int8: against the fp32 ONNX on dataset rows."""
    mean_abs_err: float | None
    qdq_nodes: int
    success: EpisodeMetrics
    success_perturbed: EpisodeMetrics | None = None
    """Under the run's perturbations (noise, stale observations, delay), same goals; None without."""


@dataclass(frozen=True)
class Sim2SimRecord:
    """One ONNX file's figures in MJX and in plain MuJoCo on the same goals and settings."""

    file: str
    perturbed: bool
    mjx: EpisodeMetrics
    mujoco: EpisodeMetrics
    physics_steps_per_s: float = 0.0
    """Control steps per second of the MuJoCo loop (policy included)."""


@dataclass(frozen=True)
class RunReport:
    run: str
    env: str
    random_init: bool
    distill_version: str
    teacher: TeacherInfo
    student: StudentInfo
    teacher_success: EpisodeMetrics
    student_success: EpisodeMetrics
    rounds: tuple[RoundRecord, ...]
    latency_host: str
    latency: tuple[LatencyRow, ...]
    variants: tuple[VariantRecord, ...]
    target: TargetVerdict
    artifacts: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    student_success_perturbed: EpisodeMetrics | None = None
    """The student under the run's perturbations, same goals; None when the run has none."""
    perturbation: str = ""
    """What those perturbations are ("" or "none" without)."""
    sim2sim: tuple[Sim2SimRecord, ...] = ()
    """The fp32 ONNX in plain MuJoCo (C) beside MJX, on the same goals (`distill.bench.sim2sim`)."""

    def latency_of(self, model: str, backend: str) -> LatencyResult:
        for row in self.latency:
            if row.model == model and row.result.backend == backend:
                return row.result
        raise DistillError(f"report of {self.run} has no {backend} latency for the {model}")

    def ratio(self, metric: str) -> float:
        t = getattr(self.teacher_success, metric)
        return getattr(self.student_success, metric) / t if t else float("nan")

    @property
    def speedup_ort(self) -> float:
        """Teacher actor / student median latency, both in ONNX Runtime on one CPU thread."""
        return (self.latency_of("teacher actor", "onnxruntime_cpu").median_ms
                / self.latency_of("student", "onnxruntime_cpu").median_ms)

    def variant(self, precision: str) -> VariantRecord:
        for v in self.variants:
            if v.precision == precision:
                return v
        raise DistillError(f"report of {self.run} has no {precision} variant; known: "
                           f"{', '.join(v.precision for v in self.variants)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run, "env": self.env, "random_init": self.random_init,
            "distill_version": self.distill_version,
            "teacher": asdict(self.teacher), "student": asdict(self.student),
            "success": {"teacher": self.teacher_success.as_dict(), "student": self.student_success.as_dict(),
                        **{f"ratio_{m}": self.ratio(m) for m in ("success", "time_at_goal", "final_success")}},
            "rounds": [asdict(r) for r in self.rounds],
            "latency": {"host": self.latency_host,
                        "rows": [{"model": r.model, **r.result.to_dict()} for r in self.latency],
                        "speedup_ort": self.speedup_ort},
            "variants": [asdict(v) for v in self.variants],
            "target": asdict(self.target),
            "artifacts": dict(self.artifacts),
            "wall_s": self.wall_s,
            "student_success_perturbed": (None if self.student_success_perturbed is None
                                          else self.student_success_perturbed.as_dict()),
            "perturbation": self.perturbation,
            "sim2sim": [asdict(r) for r in self.sim2sim],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunReport:
        metrics = lambda m: EpisodeMetrics(**m)
        maybe = lambda m: None if m is None else metrics(m)
        variant = lambda v: VariantRecord(**{**v, "success": metrics(v["success"]),
                                             "success_perturbed": maybe(v.get("success_perturbed"))})
        sim = lambda r: Sim2SimRecord(**{**r, "mjx": metrics(r["mjx"]), "mujoco": metrics(r["mujoco"])})
        return cls(
            run=d["run"], env=d["env"], random_init=d["random_init"], distill_version=d["distill_version"],
            teacher=TeacherInfo(**d["teacher"]), student=StudentInfo(**d["student"]),
            teacher_success=metrics(d["success"]["teacher"]), student_success=metrics(d["success"]["student"]),
            rounds=tuple(RoundRecord.from_dict(r) for r in d["rounds"]),
            latency_host=d["latency"]["host"],
            latency=tuple(LatencyRow(r["model"], LatencyResult(**{k: v for k, v in r.items() if k != "model"}))
                          for r in d["latency"]["rows"]),
            variants=tuple(variant(v) for v in d["variants"]),
            target=TargetVerdict(**d["target"]), artifacts=d["artifacts"], wall_s=d["wall_s"],
            student_success_perturbed=maybe(d.get("student_success_perturbed")),
            perturbation=d.get("perturbation", ""), sim2sim=tuple(sim(r) for r in d.get("sim2sim", ())),
        )

    @classmethod
    def load(cls, run_dir: str | Path) -> RunReport:
        path = Path(run_dir) / REPORT_JSON
        if not path.is_file():
            raise DistillError(f"{path} not found: {run_dir} is not a finished run (run `distill run` first)")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (KeyError, TypeError, ValueError) as exc:
            raise DistillError(f"{path}: not a report this distill reads ({exc}); rerun the run") from None


def _fmt_metrics(m: EpisodeMetrics) -> str:
    return (f"{m.success:.3f} | {m.time_at_goal:.1f} / {m.episode_length} | "
            f"{m.final_success:.3f} | {m.final_distance:.4f} | {m.episodes}")


def _family(s: StudentInfo) -> str:
    if s.family == "history":
        return f"history of {s.history} observations"
    if s.family == "gru":
        return f"GRU {s.layers} x {s.hidden}, head {s.depth} x {s.width}"
    return "MLP"


def render_markdown(report: RunReport) -> str:
    lines: list[str] = []
    if report.random_init:
        lines += [RANDOM_INIT_WARNING, ""]
    t, s = report.teacher, report.student
    lines += [
        f"# distill report: {report.run}",
        "",
        (f"teacher `{t.name}` (env {report.env}, actor depth {t.actor_depth}, critic depth "
         f"{t.critic_depth}, width {t.width}, {t.actor_params:,} actor parameters) -> student "
         f"`{s.preset}` ({_family(s)}, {s.params:,} parameters, {s.input_dim} inputs)"),
        "",
        "## Success in MJX (deterministic policies, same goals)",
        "",
        "| policy | reached at least once | time at goal | final-step success | final distance | episodes |",
        "|---|---|---|---|---|---|",
        f"| teacher | {_fmt_metrics(report.teacher_success)} |",
        f"| student | {_fmt_metrics(report.student_success)} |",
        *([f"| student under {report.perturbation} | {_fmt_metrics(report.student_success_perturbed)} |"]
          if report.student_success_perturbed is not None else []),
        "",
        (f"student / teacher: reached {report.ratio('success'):.3f}, time at goal "
         f"{report.ratio('time_at_goal'):.3f}, final-step {report.ratio('final_success'):.3f}"),
        "",
        "## DAgger rounds",
        "",
        "critic gap: mean Q(s, a_teacher, g) − Q(s, a_student, g) on the run's held-out teacher states",
        "",
        ("| round | beta | rows | student reached | time at goal | final-step | critic gap | fit loss train / val | "
         "seconds | physics | teacher | critic | write | fit | eval | labelled rows/s |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rounds:
        m, st = r.student, r.stages
        lines.append(
            f"| {r.round} | {r.beta:.3f} | {r.rows} | {m.success:.3f} | {m.time_at_goal:.1f} | "
            f"{m.final_success:.3f} | {r.critic_gap:.4f} | {r.fit.loss_final:.2e} / "
            f"{'—' if r.fit.val_loss_final is None else f'{r.fit.val_loss_final:.2e}'} | {r.seconds:.1f} | "
            f"{st.physics:.1f} | {st.teacher:.1f} | {st.critic:.1f} | {st.write:.1f} | {st.fit:.1f} | "
            f"{st.eval:.1f} | {r.labelled_rows_per_s:.0f} |")
    lines += [
        "",
        ("teacher seconds are the actor's share of the rollout (timed apart at the same batch) where it "
         "acted, else its labelling after the rollout"),
        "",
        f"## Latency at batch 1 ({report.latency_host})",
        "",
        "| model | backend | median ms | p99 ms | calls |",
        "|---|---|---|---|---|",
    ]
    for row in report.latency:
        r = row.result
        lines.append(f"| {row.model} | {r.backend} | {r.median_ms:.4f} | {r.p99_ms:.4f} | {r.n_calls} |")
    lines += ["", f"teacher / student median latency on ONNX Runtime CPU (1 thread): {report.speedup_ort:.1f}x"]
    if report.variants:
        lines += ["", "## Exported student ONNX in MJX (run by ONNX Runtime, same goals)", "",
                  "action error: fp32 against PyTorch, fp16 / int8 against the fp32 ONNX on dataset rows", "",
                  ("| variant | reached | time at goal | final-step | max abs action error | mean abs error | "
                   "QDQ nodes | file |"), "|---|---|---|---|---|---|---|---|"]
        for v in report.variants:
            m = v.success
            mean_err = "—" if v.mean_abs_err is None else f"{v.mean_abs_err:.2e}"
            lines.append(f"| {v.precision} | {m.success:.3f} | {m.time_at_goal:.1f} | {m.final_success:.3f} | "
                         f"{v.max_abs_err:.2e} | {mean_err} | {v.qdq_nodes} | `{Path(v.path).name}` |")
        perturbed = [v for v in report.variants if v.success_perturbed is not None]
        if perturbed:
            lines += ["", f"Under {report.perturbation}:", "", "| variant | reached | time at goal | final-step |",
                      "|---|---|---|---|"]
            lines += [f"| {v.precision} | {v.success_perturbed.success:.3f} | {v.success_perturbed.time_at_goal:.1f} | "
                      f"{v.success_perturbed.final_success:.3f} |" for v in perturbed]
    if report.sim2sim:
        lines += ["", "## Sim2sim: the exported file in plain MuJoCo (C engine) against MJX, same goals", "",
                  "| file | perturbed | engine | reached | time at goal | final-step | final distance | episodes |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in report.sim2sim:
            for engine, m in (("MJX", r.mjx), ("MuJoCo", r.mujoco)):
                lines.append(f"| `{Path(r.file).name}` | {'yes' if r.perturbed else 'no'} | {engine} | "
                             f"{_fmt_metrics(m)} |")
    tv = report.target
    lines += ["", f"## Target `{tv.name}`", "",
              (f"budget p99 <= {tv.budget_p99_ms} ms at {tv.control_hz} Hz; student p99 on this host "
               f"{tv.student_p99_ms:.4f} ms -> {'meets' if tv.meets_budget else 'MISSES'} the budget "
               f"here ({tv.note})")]
    lines += ["", "## Artifacts", ""]
    lines += [f"- {k}: `{v}`" for k, v in report.artifacts.items()]
    lines += ["", f"wall time {report.wall_s:.0f} s"]
    return "\n".join(lines) + "\n"


def write_report(report: RunReport, directory: Path) -> tuple[Path, Path]:
    md, js = directory / REPORT_MD, directory / REPORT_JSON
    write_text_atomic(js, json.dumps(report.to_dict(), indent=1, default=float))
    write_text_atomic(md, render_markdown(report))
    return md, js
