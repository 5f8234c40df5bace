"""`distill dataset info` and `distill dataset validate`: the report of `validate.validate_dataset`
as text."""

from __future__ import annotations

import argparse
import json

from distill.data.validate import SCAN_MEMORY_MB, DatasetReport, validate_dataset


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _compression(report: DatasetReport) -> str:
    kinds = sorted({c.compression if c.compression_level is None else f"{c.compression} level {c.compression_level}"
                    for c in report.columns}, key=str)
    text = ", ".join(str(k) for k in kinds)
    if any(c.compression == "lzf" for c in report.columns):
        text += " (lzf needs the LZF plugin outside h5py: h5dump prints no data without it)"
    return text


def _checks(report: DatasetReport) -> str:
    done = ["schema", "commit marker", f"finite {', '.join(report.finite_columns)}", "round spans"]
    if report.teacher is not None:
        t = report.teacher
        done.append(f"teacher {t.name} dims ({t.input_dim} in, {t.action_dim} out)")
    return "ok: " + "; ".join(done)


def describe(report: DatasetReport) -> str:
    """The text `distill dataset info` prints."""
    m = report.meta
    raw = sum(c.stored_bytes for c in report.columns)
    rounds = ", ".join(f"{s.round}: rows {s.start}-{s.stop}" for s in report.rounds) or "none committed"
    lines = [
        f"dataset     {report.path} ({_size(report.file_bytes)}, columns {_size(raw)} compressed)",
        f"format      distill.rollouts schema {m.schema_version}, written by distill {m.distill_version} on {m.created}",
        f"env         {m.env_name} (control dt {m.control_dt:g} s)",
        f"teacher     {m.teacher_name} (weights sha256 {m.teacher_sha256[:12]}…)",
        f"rows        {report.rows} committed" + (f" ({report.stored_rows} stored: the rest is a crashed "
                                                   "append's leftovers, not data)" if report.stored_rows > report.rows else ""),
        f"rounds      {len(report.rounds)}: {rounds}",
        f"episodes    {report.episodes}",
        f"dims        obs {m.obs_dim + m.goal_dim} = {m.obs_dim} state + {m.goal_dim} goal, action {m.action_dim}",
        f"obs names   {', '.join(m.obs_names)}",
        *([(f"teacher obs {m.teacher_input_dim} = {m.teacher_input_dim - m.teacher_goal_dim} state + "
           f"{m.teacher_goal_dim} goal (privileged: the `teacher_obs` column): {', '.join(m.teacher_obs_names)}")]
          if m.asymmetric else []),
        f"actions     {', '.join(m.action_names)}",
        f"compression {_compression(report)}",
        "columns",
        *(f"  {c.name:<16} {c.dtype + (str(list(c.row_shape)) if c.row_shape else ''):<14} "
          f"chunks of {c.chunk_rows} rows, {_size(c.stored_bytes)}" for c in report.columns),
        f"env config  {json.dumps(dict(m.env_config), sort_keys=True)}",
        f"lineage     {json.dumps(dict(m.lineage), sort_keys=True)}",
        f"checks      {_checks(report)}",
    ]
    if report.teacher is not None and not report.teacher.labelled_this_dataset:
        lines.append(f"note        teacher {report.teacher.name}'s weights are not the ones that labelled these rows")
    return "\n".join(lines)


def _validate(args: argparse.Namespace) -> DatasetReport:
    memory = SCAN_MEMORY_MB if args.max_memory_mb is None else args.max_memory_mb
    return validate_dataset(args.path, teacher=args.teacher, max_memory_mb=memory)


def info_command(args: argparse.Namespace) -> int:
    print(describe(_validate(args)))
    return 0


def validate_command(args: argparse.Namespace) -> int:
    report = _validate(args)
    print(f"{report.path}: {report.rows} rows, {len(report.rounds)} rounds, {report.episodes} episodes; "
          f"{_checks(report)}")
    return 0
