"""Deep-teacher collection: labelled rows/s of a whole DAgger round, against bare physics and the
machine's arithmetic bound, before and after labelling moved out of the rollout.

A round is what `distill run` does per round before fitting: MJX rollout with the β-mixed policy,
teacher labels (mean, log std, action) and critic values, and the HDF5 append. Two paths:

- after (today's `collect_round`): the actor runs inside the rollout only when it may act (β > 0),
  at batch = envs; the critic (and the actor when β = 0) label the rows afterwards in jit'd chunks,
  with ψ(g) once per distinct goal;
- before (the collection up to 14f744c): actor and both critic encoders inside the rollout, for
  every env at every step.

The bound is measured, not assumed (`distill.bench.matmul_bound`): the matmul-only time of the
same work at the same shapes — the actor's forward products at batch = envs once per step where it
acts in the rollout (or at the label chunk where it labels afterwards), φ(s, a) at the label chunk,
ψ(g) at the number of distinct goals (the before path: all three at batch = envs, every step) —
each product shape timed alone in the same run. A round's share = bound seconds ÷ its seconds;
the labels' share divides by the teacher and critic stages only (the after path). The 2048³ peak
is measured in the same run too, for context.

Also: the same round split over 1 … N devices (forced host devices here: they share the same
cores, so this checks overhead, not speed-up; real GPUs where there are several), and student
fitting samples/s against DDP ranks where `distill.students.throughput` exists.

    python benchmarks/deep_labelling.py            # full run -> results/deep_labelling_<device>.{json,md}
    python benchmarks/deep_labelling.py --quick    # two teachers, short rounds -> ..._quick.*

Run it on a quiet machine (no CRL training, under the heavy lock): the figures are wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from distill import labels
from distill.atomic import write_text_atomic
from distill.bench import matmul_bound as mb
from distill.bench.jax_timing import device_name, run_context
from distill.dagger import DaggerConfig, collect_round, run_env
from distill.data import DatasetMeta, RolloutWriter
from distill.envs import make_env
from distill.rollouts import deterministic, reset_batch, rollout
from distill.students.jax_mirror import student_params_to_jax
from distill.students.memory import build_student
from distill.students.presets import get_preset
from distill.teachers import networks
from distill.teachers.networks import CRLArch
from distill.teachers.teacher import Teacher

RESULTS = Path(__file__).resolve().parent / "results"
ENV = "humanoid_u_maze"
OBS, GOAL, ACT, WIDTH = 268, 3, 17, 256  # humanoid_1024's dims
TEACHERS = ((8, 8), (64, 64), (256, 256), (512, 1024))  # (actor depth, critic depth)
QUICK_TEACHERS = ((8, 8), (512, 1024))
DEEP = (512, 1024)


# --- arithmetic ----------------------------------------------------------------------------------
def row_gflop(arch: CRLArch) -> dict[str, float]:
    """Matmul GFLOP of one row's forward pass, per network."""
    layers = {"actor": mb.actor_layers(arch), "sa_encoder": mb.sa_layers(arch), "g_encoder": mb.g_layers(arch)}
    return {k: mb.total_flops(mb.forward_gemms(1, v)) / 1e9 for k, v in layers.items()}


def _chunks(n: int, chunk: int) -> tuple[int, int]:
    """(rows per chunk, chunks) as `distill.labels.chunked` splits n rows on one device."""
    size = min(chunk, max(n, 1))
    return size, -(-n // size)


def round_gemms(arch: CRLArch, path: str, envs: int, steps: int, beta: float, rows: int, goals: int,
                chunk: int = labels.DEFAULT_CHUNK) -> tuple[mb.Gemm, ...]:
    """The products a round computes: see the module docstring."""
    actor, sa, g = mb.actor_layers(arch), mb.sa_layers(arch), mb.g_layers(arch)
    if path == "before":
        return mb.forward_gemms(envs, actor + sa + g, steps)
    if path != "after":
        return ()
    chunked = lambda n, layers: mb.forward_gemms(_chunks(n, chunk)[0], layers, _chunks(n, chunk)[1])
    acting = mb.forward_gemms(envs, actor, steps) if beta > 0 else chunked(rows, actor)
    return mb.merge([*acting, *chunked(rows, sa), *chunked(goals, g)])


# --- teachers and rounds -------------------------------------------------------------------------
def random_teacher(actor_depth: int, critic_depth: int) -> Teacher:
    arch = CRLArch(OBS, GOAL, ACT, actor_depth, critic_depth, WIDTH)
    k_a, k_c = jax.random.split(jax.random.PRNGKey(0))
    return Teacher(name=f"random_a{actor_depth}_c{critic_depth}", env=ENV, arch=arch,
                   actor_params=networks.init_actor(k_a, arch), critic_params=networks.init_critic(k_c, arch),
                   meta={"random_init": True})


def _zero_action(params, obs):
    return jnp.zeros((obs.shape[0], ACT), jnp.float32)


def _flat_columns(steps, round_index: int) -> dict[str, np.ndarray]:
    T, N = steps.t.shape
    flat = lambda x: np.asarray(x).reshape((T * N,) + np.asarray(x).shape[2:])
    episode = (round_index * N + np.broadcast_to(np.arange(N), (T, N))).astype(np.int64) * 1_000_000 + steps.episode
    return {"obs": flat(steps.obs), "goal": flat(steps.goal), "behavior_action": flat(steps.action),
            **{k: flat(v) for k, v in steps.extras.items()}, "episode": flat(episode), "t": flat(steps.t),
            "done": flat(steps.done), "success": flat(steps.success).astype(bool)}


@dataclass(frozen=True)
class RoundTiming:
    teacher: str
    actor_depth: int
    critic_depth: int
    path: str
    """"after", "before" or "physics" (bare env stepping, zero actions, nothing labelled or written)."""
    envs: int
    steps: int
    beta: float
    devices: int
    rows: int
    distinct_goals: int
    first_call_s: float
    """The untimed first round: compiles included."""
    seconds: float
    rows_per_s: float
    stages: dict
    bound_s: float
    """Matmul-only seconds of the round's products at their shapes (0: physics, or split over devices)."""
    bound_gflops: float
    """Those products' matmul-only rate."""
    share: float
    """bound_s / seconds: the round's share of its bound."""
    labels_share: float
    """bound_s / (teacher + critic stage seconds): the labelling's share (after path; 0 otherwise)."""
    computed_gflop_per_s: float
    pct_of_peak: float


class Bench:
    """One env and config; times rounds of either path with one teacher, writing real HDF5 files."""

    def __init__(self, envs: int, steps: int, peak_gflops: float, workdir: Path, devices=None,
                 name_prefix: str = "") -> None:
        self.cfg = DaggerConfig(envs=envs, episode_length=steps)
        self.env = run_env(make_env(ENV), self.cfg)
        self.student = build_student(get_preset("mlp_2x256"), self.env.spec.student_input_dim, ACT, seed=0)
        self.peak, self.workdir, self.devices, self.name_prefix = peak_gflops, workdir, devices, name_prefix
        self.timings: tuple[mb.GemmTiming, ...] = ()

    def bound(self, gemms: tuple[mb.Gemm, ...]) -> mb.Bound:
        """Measured now, reusing this run's timings of shapes already seen."""
        bound = mb.measure_bound(gemms, known=self.timings)
        self.timings = tuple({(t.m, t.k, t.n): t for t in (*self.timings, *bound.timings)}.values())
        return bound

    def _writer(self, name: str) -> RolloutWriter:
        path = self.workdir / f"{self.name_prefix}{name}.h5"
        path.unlink(missing_ok=True)
        spec = self.env.spec
        return RolloutWriter.create(path, DatasetMeta.from_env_spec(spec, teacher_name=name, teacher_sha256="random-init"))

    def _after(self, teacher: Teacher, beta: float, k: int, writer: RolloutWriter):
        t0 = time.perf_counter()
        got = collect_round(self.env, teacher, self.student, beta, self.cfg, k, devices=self.devices)
        t_write = time.perf_counter()
        writer.append_round(k, got.columns)
        end = time.perf_counter()
        stages = {"physics": got.physics_s, "teacher": got.teacher_s, "critic": got.critic_s,
                  "write": end - t_write}
        return got.columns, end - t0, stages

    def _before(self, teacher: Teacher, beta: float, k: int, writer: RolloutWriter):
        key = jax.random.fold_in(jax.random.PRNGKey(self.cfg.seed), k)
        k_reset, k_roll = jax.random.split(key)
        params = {"actor": teacher.actor_params, "critic": teacher.critic_params,
                  "student": student_params_to_jax(self.student), "beta": jnp.asarray(beta, jnp.float32)}
        t0 = time.perf_counter()
        state = reset_batch(self.env, k_reset, self.cfg.envs)
        _, steps = rollout(self.env, labels.in_rollout_policy(OBS), self.env.spec.episode_length, params, state, k_roll)
        columns = _flat_columns(jax.device_get(steps), k)
        t_write = time.perf_counter()
        writer.append_round(k, columns)
        end = time.perf_counter()
        return columns, end - t0, {"rollout_with_labels": t_write - t0, "write": end - t_write}

    def _physics(self, k: int):
        key = jax.random.fold_in(jax.random.PRNGKey(self.cfg.seed), k)
        k_reset, k_roll = jax.random.split(key)
        t0 = time.perf_counter()
        state = reset_batch(self.env, k_reset, self.cfg.envs)
        _, steps = rollout(self.env, deterministic(_zero_action), self.env.spec.episode_length, None, state, k_roll)
        steps = jax.device_get(steps)
        return {"t": np.asarray(steps.t).reshape(-1), "goal": np.asarray(steps.goal).reshape(-1, GOAL)}, \
            time.perf_counter() - t0, {}

    def time(self, path: str, teacher: Teacher | None, beta: float = 1.0, repeats: int = 1) -> RoundTiming:
        """One untimed round (compiles), then the best of `repeats` timed rounds."""
        name = f"{path}_{teacher.name if teacher else 'physics'}_{beta}"
        writer = self._writer(name) if teacher is not None else None
        run = {"after": lambda k: self._after(teacher, beta, k, writer),
               "before": lambda k: self._before(teacher, beta, k, writer),
               "physics": lambda k: self._physics(k)}[path]
        t0 = time.perf_counter()
        run(0)
        first = time.perf_counter() - t0
        best = None
        for k in range(1, repeats + 1):
            columns, seconds, stages = run(k)
            if best is None or seconds < best[1]:
                best = (columns, seconds, stages)
        if writer is not None:
            writer.close()
        columns, seconds, stages = best
        rows = len(columns["t"])
        goals = len(np.unique(columns["goal"], axis=0))
        arch = teacher.arch if teacher else CRLArch(OBS, GOAL, ACT, 0, 0, WIDTH)
        gemms = round_gemms(arch, path, self.cfg.envs, self.env.spec.episode_length, beta, rows, goals,
                            self.cfg.label_chunk)
        computed = mb.total_flops(gemms)
        bound = self.bound(gemms) if gemms and self.devices is None else None
        label_s = stages.get("teacher", 0.0) + stages.get("critic", 0.0)
        rate = rows / seconds
        return RoundTiming(
            teacher=teacher.name if teacher else "-", actor_depth=arch.actor_depth, critic_depth=arch.critic_depth,
            path=path, envs=self.cfg.envs, steps=self.env.spec.episode_length, beta=beta,
            devices=len(self.devices) if self.devices else jax.device_count(), rows=rows, distinct_goals=goals,
            first_call_s=round(first, 2), seconds=round(seconds, 3), rows_per_s=round(rate, 1),
            stages={k: round(v, 3) for k, v in stages.items()},
            bound_s=round(bound.seconds, 4) if bound else 0.0, bound_gflops=round(bound.gflops, 1) if bound else 0.0,
            share=round(bound.share(seconds), 3) if bound else 0.0,
            labels_share=round(bound.seconds / label_s, 3) if bound and path == "after" and label_s > 0 else 0.0,
            computed_gflop_per_s=round(computed / seconds / 1e9, 1),
            pct_of_peak=round(100 * computed / seconds / 1e9 / self.peak, 1) if teacher else 0.0,
        )


# --- devices (a subprocess: jax fixes its device count when it starts) -----------------------------
def scaling_worker(max_devices: int, envs: int, steps: int, depths: tuple[int, int], peak: float) -> list[dict]:
    teacher = random_teacher(*depths)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(1, max_devices + 1):
            bench = Bench(envs, steps, peak, Path(tmp), devices=jax.devices()[:n])
            out.append(asdict(bench.time("after", teacher, beta=1.0)))
    return out


def device_scaling(max_devices: int, envs: int, steps: int, depths: tuple[int, int], peak: float,
                   timeout_s: float = 900.0) -> dict:
    """Rows/s of the same round over 1 … max_devices devices; efficiency = rate_n / (n · rate_1)."""
    if jax.devices()[0].platform == "cpu":
        flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={max_devices}".strip()
        env = dict(os.environ, XLA_FLAGS=flags)
        cmd = [sys.executable, __file__, "--scaling-worker", str(max_devices), "--envs", str(envs), "--steps",
               str(steps), "--depths", f"{depths[0]},{depths[1]}", "--peak", str(peak)]
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"error": f"the {depths[0]}/{depths[1]} teacher over {max_devices} forced host devices did not "
                             f"finish within {timeout_s:.0f} s (hung)"}
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        kind = "forced host devices sharing this machine's cores"
    else:
        rows = scaling_worker(min(max_devices, jax.device_count()), envs, steps, depths, peak)
        kind = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
    base = rows[0]["rows_per_s"]
    for r in rows:
        r["efficiency"] = round(r["rows_per_s"] / (r["devices"] * base), 3)
    return {"kind": kind, "rounds": rows}


def ddp_fitting(dataset: Path, ranks: tuple[int, ...], epochs: int = 20) -> dict:
    """Student fitting samples/s against DDP ranks, through the fit branch's `fit_throughput`."""
    try:
        from distill.students.throughput import fit_throughput
    except ImportError:
        return {"skipped": "distill.students.throughput is not in this checkout (DDP fitting lands with it)"}
    return {"runs": [asdict(fit_throughput(dataset, ranks=r, epochs=epochs)) for r in ranks]}


# --- report ----------------------------------------------------------------------------------------
def training_running() -> bool:
    done = subprocess.run(["pgrep", "-f", "teacher train"], capture_output=True, text=True, check=False)
    return bool(done.stdout.strip())


SHARE = "labels_share"


def where_the_rest_goes(doc: dict) -> list[str]:
    """For each round under half its bound: the stage that is not matmul arithmetic."""
    lines = []
    physics = {(r["envs"], r["steps"]): r["seconds"] for r in doc["rounds"] if r["path"] == "physics"}
    for r in doc["rounds"]:
        if r["path"] == "physics" or not r["bound_s"] or r["share"] >= 0.5:
            continue
        bare = physics.get((r["envs"], r["steps"]))
        phys = r["stages"].get("physics", bare)
        what = (f"physics {phys:.2f} s ({100 * phys / r['seconds']:.0f}%)" if phys is not None else "")
        lines.append(f"- {r['actor_depth']}/{r['critic_depth']} {r['path']} β {r['beta']:g}, {r['envs']} × {r['steps']}: "
                     f"{100 * r['share']:.0f}% of its bound; of {r['seconds']:.2f} s, {what}"
                     f"{f', labels at {100 * r[SHARE]:.0f}% of the bound' if r[SHARE] else ''}.")
    return lines


def render(doc: dict) -> str:
    host, ctx = doc["context"]["host"], doc["context"]
    lines = [
        f"# Deep-teacher collection — {ctx['device']['name']} ({ctx['device']['platform']})",
        "",
        (f"{host['cpu']}, {host['cpu_count']} CPUs, jax {doc['jax']}, {doc['created']}; load average "
        f"{host['loadavg_1m_at_start']} -> {host['loadavg_1m_at_end']}; CRL training running at start: "
        f"{doc['training_running_at_start']}. Env {ENV}, random teacher weights, width {WIDTH}."),
        "",
        (f"Peak matmul in this run: **{doc['peak_gflops']:.0f} GFLOP/s** (2048² × 2048² float32, best of 7). "
        "Bound: the matmul-only seconds of the products the round computes, at their shapes, each shape "
        "timed alone in this run (actor at batch = envs per step where it acts, else at the label chunk; "
        "φ(s, a) at the chunk; ψ(g) per distinct goal; the before path all three at batch = envs). Share "
        "of bound = bound s ÷ round s; labels' share = bound s ÷ (teacher + critic stage s); matmul GFLOP/s "
        "counts what was computed, against the bound's own rate and the peak."),
        "",
        ("A round = rollout + labels + HDF5 append, timed after one untimed round (compiles); β = 1: the "
        "teacher drives (its actor runs in the rollout at batch = envs), β = 0: the student drives and "
        "the actor labels afterwards."),
        "",
        ("| teacher actor/critic | path | envs × steps | β | rows | s | rows/s | bound s | share of bound | "
        "labels' share | matmul GFLOP/s (bound's, % of peak) | stages s | first round s |"),
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in doc["rounds"]:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        depth = f"{r['actor_depth']}/{r['critic_depth']}" if r["path"] != "physics" else "— (bare physics)"
        lines.append(
            f"| {depth} | {r['path']} | {r['envs']} × {r['steps']} | {r['beta']:g} | {r['rows']:,} | "
            f"{r['seconds']:.2f} | {r['rows_per_s']:,.0f} | {r['bound_s']:.3f} | {100 * r['share']:.0f}% | "
            f"{f'{100 * r[SHARE]:.0f}%' if r[SHARE] else ''} | "
            f"{r['computed_gflop_per_s']:.0f} ({r['bound_gflops']:.0f}, {r['pct_of_peak']:.0f}%) | {stages} | "
            f"{r['first_call_s']:.0f} |")
    rest = where_the_rest_goes(doc)
    if rest:
        lines += ["", ("Rounds under half their bound, and where the rest goes (bare physics: the physics row at "
                  "the same envs × steps, or the after path's physics stage):"), "", *rest]
    lines += ["", "## Before and after, same config", "",
              "| teacher | envs × steps | β | before rows/s | after rows/s | speed-up |", "|---|---|---:|---:|---:|---:|"]
    for b in (r for r in doc["rounds"] if r["path"] == "before"):
        for a in (r for r in doc["rounds"] if r["path"] == "after" and r["teacher"] == b["teacher"]
                  and (r["envs"], r["steps"]) == (b["envs"], b["steps"])):
            lines.append(f"| {a['actor_depth']}/{a['critic_depth']} | {a['envs']} × {a['steps']} | {a['beta']:g} | "
                         f"{b['rows_per_s']:,.0f} | {a['rows_per_s']:,.0f} | {a['rows_per_s'] / b['rows_per_s']:.1f}× |")
    scaling = doc.get("device_scaling", {})
    lines += ["", "## Devices", ""]
    if "rounds" in scaling:
        r0 = scaling["rounds"][0]
        lines += [(f"The {r0['actor_depth']}/{r0['critic_depth']} teacher, {r0['envs']} envs × {r0['steps']} steps, "
                  f"β = 1, {scaling['kind']}."), "",
                  "| devices | rows/s | efficiency (rows/s ÷ devices ÷ 1-device rows/s) |", "|---:|---:|---:|"]
        lines += [f"| {r['devices']} | {r['rows_per_s']:,.0f} | {r['efficiency']:.2f} |" for r in scaling["rounds"]]
    else:
        lines.append(f"Not measured: {scaling.get('error', scaling)}.")
    ddp = doc.get("ddp_fitting", {})
    lines += ["", "## Student fitting against DDP ranks", ""]
    if "runs" in ddp:
        lines += ["| ranks | samples/s | steps | seconds |", "|---:|---:|---:|---:|"]
        lines += [f"| {r['ranks']} | {r['samples_per_second']:,.0f} | {r['steps']} | {r['train_seconds']:.1f} |"
                  for r in ddp["runs"]]
    else:
        lines.append(f"Not measured: {ddp.get('skipped', ddp)}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="two teachers, short rounds")
    p.add_argument("--envs", type=int, default=256)
    p.add_argument("--steps", type=int, default=16, help="episode length of a round")
    p.add_argument("--small-envs", type=int, default=8, help="the 1,024/512 teacher again at this many envs")
    p.add_argument("--small-steps", type=int, default=64)
    p.add_argument("--devices", type=int, default=2, help="device scaling up to this many (forced on CPU)")
    p.add_argument("--scaling-depths", default="8,8",
                   help="actor,critic depth of the teacher the device scaling uses (default: 8,8)")
    p.add_argument("--scaling-envs", type=int, default=64, help="envs of the device-scaling round (default: 64)")
    p.add_argument("--scaling-steps", type=int, default=8, help="steps of the device-scaling round (default: 8)")
    p.add_argument("--scaling-timeout", type=float, default=900.0,
                   help="seconds before the device-scaling subprocess counts as hung (default: 900)")
    p.add_argument("--ddp-epochs", type=int, default=20, help="epochs of each DDP fitting run (default: 20)")
    p.add_argument("--parts", default="rounds,scaling,ddp",
                   help="what to measure; a subset updates that part of an existing results file "
                        "(default: rounds,scaling,ddp)")
    p.add_argument("--scaling-worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--depths", default="512,1024", help=argparse.SUPPRESS)
    p.add_argument("--peak", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scaling_worker:
        depths = tuple(int(x) for x in args.depths.split(","))
        print(json.dumps(scaling_worker(args.scaling_worker, args.envs, args.steps, depths, args.peak)))
        return
    parts = set(args.parts.split(","))
    if not parts <= {"rounds", "scaling", "ddp"}:
        raise SystemExit(f"deep_labelling: --parts {args.parts!r}: choose among rounds, scaling, ddp")

    device = jax.devices()[0]
    stem = f"deep_labelling_{device_name(device)}{'_quick' if args.quick else ''}"
    previous = json.loads((RESULTS / f"{stem}.json").read_text()) if (RESULTS / f"{stem}.json").is_file() else None
    if "rounds" not in parts and previous is None:
        raise SystemExit(f"deep_labelling: --parts without rounds updates {RESULTS / stem}.json, which is missing")

    load_start = os.getloadavg()[0]
    busy = training_running()
    if busy:
        print("warning: CRL training is running: figures will be pessimistic", file=sys.stderr)
    envs, steps = (64, 8) if args.quick else (args.envs, args.steps)
    teachers = QUICK_TEACHERS if args.quick else TEACHERS
    peak = mb.peak_matmul_gflops() if "rounds" in parts or previous is None else previous["peak_gflops"]
    print(f"peak matmul {peak:.0f} GFLOP/s", flush=True)
    rounds: list[RoundTiming] = []

    def note(r: RoundTiming) -> None:
        rounds.append(r)
        print(f"{r.actor_depth:>4}/{r.critic_depth:<4} {r.path:<7} {r.envs:>4} x {r.steps:<3} beta {r.beta:g}: "
              f"{r.rows_per_s:8.1f} rows/s ({100 * r.share:.0f}% of bound), first {r.first_call_s:.0f} s, "
              f"{r.stages}", flush=True)

    doc = dict(previous) if previous is not None and "rounds" not in parts else {}
    with tempfile.TemporaryDirectory(prefix="deep-labelling-") as tmp:
        bench = Bench(envs, steps, peak, Path(tmp))
        if "rounds" in parts:
            note(bench.time("physics", None))
            for depths in teachers:
                teacher = random_teacher(*depths)
                note(bench.time("after", teacher, beta=1.0))
                note(bench.time("after", teacher, beta=0.0))
                note(bench.time("before", teacher, beta=1.0))
                del teacher
            if not args.quick:
                small = Bench(args.small_envs, args.small_steps, peak, Path(tmp), name_prefix="small_")
                teacher = random_teacher(*DEEP)
                note(small.time("after", teacher, beta=1.0))
                note(small.time("before", teacher, beta=1.0))
                del teacher
            doc.update({"rounds": [asdict(r) for r in rounds],
                        "row_gflop": {f"{a}/{c}": row_gflop(CRLArch(OBS, GOAL, ACT, a, c, WIDTH))
                                      for a, c in teachers}})
        if "ddp" in parts:
            if args.quick:
                doc["ddp_fitting"] = {"skipped": "--quick"}
            else:
                dataset = Path(tmp) / f"after_random_a{DEEP[0]}_c{DEEP[1]}_1.0.h5"
                if not dataset.is_file():  # --parts ddp alone: collect the deep teacher's rows first
                    bench.time("after", random_teacher(*DEEP), beta=1.0)
                doc["ddp_fitting"] = ddp_fitting(dataset, (1, 2), epochs=args.ddp_epochs)
    if "scaling" in parts:
        depths = tuple(int(x) for x in args.scaling_depths.split(",")) if not args.quick else (8, 8)
        doc["device_scaling"] = device_scaling(args.devices, args.scaling_envs, args.scaling_steps, depths, peak,
                                               args.scaling_timeout)
        print(f"devices: {doc['device_scaling']}", flush=True)

    doc.update({"created": datetime.now(UTC).isoformat(timespec="seconds"), "jax": jax.__version__,
                "context": run_context(device, load_start), "training_running_at_start": busy,
                "quick": args.quick, "peak_gflops": round(peak, 1), "parts_measured_last": sorted(parts)})
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(RESULTS / f"{stem}.json", json.dumps(doc, indent=1))
    write_text_atomic(RESULTS / f"{stem}.md", render(doc))
    print(render(doc))
    print(f"wrote {RESULTS / stem}.json and .md")


if __name__ == "__main__":
    main()
