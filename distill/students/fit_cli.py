"""`distill fit`: a student fitted on a rollout dataset, in one process or data-parallel.

    distill fit --dataset datasets/RUN/rollouts.h5 --preset mlp_2x256 --out students/RUN-fit
    torchrun --nproc_per_node 2 -m distill.cli fit --dataset ... --preset ... --out ...

Under torchrun every rank streams its own shard of the rows and DDP averages the gradients
(gloo on CPU, NCCL on GPUs); `batch_size` is the batch over all ranks. Rank 0 writes the student
(`save_student`) and the logs (`OUT/logs/fit.csv`, `fit.json`, TensorBoard events when installed).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from distill.atomic import write_text_atomic
from distill.data.reader import RolloutReader
from distill.data.schema import open_file
from distill.students.checkpoint import save_student
from distill.students.distributed import SINGLE, DistContext, distributed_from_env
from distill.students.fit import FitResult
from distill.students.presets import get_preset, load_train_config, read_train_overrides
from distill.students.round_fit import fit_round

LOG_DIR = "logs"
RESULT_NAME = "fit.json"


def _dims(dataset: Path) -> tuple[int, int]:
    """(obs width, action dims): what the student reads and writes."""
    with open_file(dataset, "r") as f:
        return int(f["obs"].shape[1]), int(f["teacher_action"].shape[1])


def _history_fields(env_name: str) -> tuple[int, ...] | None:
    """The student observation's field sizes of the dataset's env, which a history student stacks
    by (as `distill run` does); None (one field) for an env this distill does not know."""
    from distill.envs import ENV_FACTORIES, make_env
    from distill.observation import field_sizes

    return field_sizes(make_env(env_name)) if env_name in ENV_FACTORIES else None


def fit_dataset(
    dataset: str | os.PathLike,
    preset: str | None,
    out: str | os.PathLike,
    seed: int = 0,
    train_config: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    threads: int | None = 1,
    dist: DistContext = SINGLE,
) -> FitResult:
    """Fits a fresh student of `preset` (None: the default) on every committed round of `dataset`,
    with the preset's [train] config (fields of `train_config`'s [train] table over it), and saves
    it into `out` (rank 0)."""
    dataset, out = Path(dataset), Path(out)
    preset_obj = get_preset(preset)
    cfg = load_train_config(preset_obj.name)
    if train_config is not None:
        cfg = read_train_overrides(train_config, cfg)
    meta = RolloutReader(dataset).meta
    input_dim, action_dim = _dims(dataset)
    fields = _history_fields(meta.env_name) if preset_obj.family == "history" else None
    student, result = fit_round(dataset, preset_obj, cfg, input_dim, action_dim, seed, out / LOG_DIR,
                                progress=progress, threads=threads, dist=dist, fields=fields)
    if dist.is_main:
        save_student(student, out, metadata={
            "preset": preset_obj.name, "dataset": str(dataset), "env": meta.env_name, "teacher": meta.teacher_name,
            "teacher_sha256": meta.teacher_sha256, "seed": seed, "loss": cfg.loss, "rows": result.rows,
            "val_rows": result.val_rows, "best_epoch": result.best_epoch, "loss_final": result.loss_final,
            "world_size": dist.world_size,
        })
        write_text_atomic(out / LOG_DIR / RESULT_NAME, json.dumps(asdict(result), indent=1))
    return result


def summary(result: FitResult, out: Path) -> str:
    val = "no validation split" if result.val_loss_final is None else (
        f"val {result.val_loss_start:.4g} -> {result.val_loss_final:.4g}")
    stop = f", stopped early at epoch {result.epochs}" if result.stopped_early else ""
    events = ("TensorBoard events beside it" if result.tensorboard
              else "no TensorBoard events: install `tensorboard` to get them")
    return "\n".join([
        f"student   {out} ({result.rows} training rows, {result.val_rows} validation rows)",
        f"loss      {result.loss}: train {result.loss_start:.4g} -> {result.loss_final:.4g}, {val}",
        f"epochs    best {result.best_epoch} of {result.epochs}{stop}; {result.steps} steps of {result.batch_size} rows",
        f"ranks     {result.world_size}: {result.samples_per_second:,.0f} samples/s in training epochs",
        f"logs      {out / LOG_DIR / 'fit.csv'} ({events})",
    ])


def fit_command(args: argparse.Namespace) -> int:
    with distributed_from_env() as dist:
        result = fit_dataset(args.dataset, args.preset, args.out, args.seed, args.train_config,
                             progress=not args.quiet, dist=dist)
        if dist.is_main:
            print(summary(result, Path(args.out)))
    return 0
