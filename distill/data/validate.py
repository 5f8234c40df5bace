"""Checks a rollout dataset end to end and says what it holds (`distill dataset info / validate`).

Checks, in order: the file opens (a truncated copy is named as such); the schema (root attributes,
every column's dtype and shape: `schema.read_meta`); the commit marker (rounds in append order,
the last committed round ending at `committed_rows`, every column long enough, the `round` column
matching the spans); optionally the teacher's input and action dims; then a scan of the committed
rows in bounded memory for NaN or inf in the observations and labels. Each problem is a one-line
`DistillError` naming the file and the field. The file is only ever opened read-only.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from distill.data.schema import (
    COLUMN_BY_NAME,
    COLUMNS,
    COMMITTED_ROUNDS,
    COMMITTED_ROWS,
    DatasetMeta,
    open_file,
    read_commit,
    read_meta,
)
from distill.data.stream import RowStream
from distill.errors import DistillError
from distill.hashing import sha256_file

FINITE_COLUMNS = ("obs", "teacher_obs", "teacher_action", "teacher_mean", "teacher_log_std")
"""Float columns the student or teacher reads: a NaN or inf in one of them poisons a fit."""
TEACHER_OBS = "teacher_obs"
"""Schema v2's privileged observation column; where a file has it, the teacher reads it, not `obs`."""
SCAN_MEMORY_MB = 256.0
_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


@dataclass(frozen=True)
class RoundSpan:
    round: int
    start: int
    stop: int


@dataclass(frozen=True)
class ColumnSummary:
    name: str
    dtype: str
    row_shape: tuple[int, ...]
    stored_rows: int
    compression: str | None
    """HDF5 filter: "gzip" reads everywhere; "lzf" needs a plugin outside h5py."""
    compression_level: int | None
    chunk_rows: int | None
    stored_bytes: int


@dataclass(frozen=True)
class TeacherCheck:
    name: str
    input_dim: int
    action_dim: int
    labelled_this_dataset: bool
    """Its weights' sha256 is the dataset's `teacher_sha256`."""


@dataclass(frozen=True)
class DatasetReport:
    path: Path
    file_bytes: int
    meta: DatasetMeta
    rows: int
    """Committed rows: what readers see."""
    stored_rows: int
    """Rows in the file; more than `rows` after a crashed append (they are not data)."""
    rounds: tuple[RoundSpan, ...]
    episodes: int
    columns: tuple[ColumnSummary, ...]
    finite_columns: tuple[str, ...]
    """Columns scanned and found free of NaN and inf."""
    teacher: TeacherCheck | None


def _open(path: Path) -> h5py.File:
    """Read-only; a file shorter than HDF5's recorded end is called truncated."""
    if path.is_file():
        try:
            return h5py.File(path, "r")
        except OSError as exc:
            cut = _TRUNCATED.search(str(exc))
            if cut:
                raise DistillError(
                    f"{path}: file is truncated ({cut[1]} of {cut[2]} bytes); it was cut short while being "
                    "copied or written: copy it again or regenerate it"
                ) from None
    return open_file(path, "r")


def _summaries(f: h5py.File) -> tuple[ColumnSummary, ...]:
    names = [c.name for c in COLUMNS if c.name in f]
    if TEACHER_OBS in f and TEACHER_OBS not in names:
        names.append(TEACHER_OBS)
    out = []
    for name in names:
        ds = f[name]
        level = ds.compression_opts if isinstance(ds.compression_opts, int) else None
        out.append(ColumnSummary(name, str(ds.dtype), tuple(ds.shape[1:]), ds.shape[0], ds.compression, level,
                                 None if ds.chunks is None else ds.chunks[0], ds.id.get_storage_size()))
    return tuple(out)


def _check_commit(f: h5py.File, path: Path, committed: int) -> None:
    """The marker agrees with the rounds it lists (read_commit already checked the column lengths)."""
    raw = f.attrs[COMMITTED_ROUNDS]
    listed = [(int(r), int(end)) for r, end in json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))]
    rounds = [r for r, _ in listed]
    if len(set(rounds)) != len(rounds):
        raise DistillError(f"{path}: attribute {COMMITTED_ROUNDS!r} lists a round twice ({rounds}); regenerate the file")
    ends = [end for _, end in listed]
    if any(b <= a for a, b in zip([0, *ends], ends)):
        raise DistillError(f"{path}: attribute {COMMITTED_ROUNDS!r} has row ends {ends} that do not increase; "
                           "regenerate the file")
    counted = [end for end in ends if end <= committed]
    if (counted[-1] if counted else 0) != committed:
        raise DistillError(f"{path}: attribute {COMMITTED_ROWS!r} is {committed} but the committed rounds end at "
                           f"row {counted[-1] if counted else 0}; the commit marker is damaged, regenerate the file")


def _teacher_check(name: str, path: Path, meta: DatasetMeta, f: h5py.File) -> TeacherCheck:
    from distill.teachers.manifest import read_manifest
    from distill.teachers.teacher import resolve_teacher_dir

    manifest = read_manifest(resolve_teacher_dir(name))
    arch, name = manifest.arch, manifest.name
    field = TEACHER_OBS if TEACHER_OBS in f else "obs"
    width = int(f[field].shape[1])
    if width != arch.obs_dim + arch.goal_dim:
        raise DistillError(
            f"{path}: column {field!r} has {width} dims but teacher {name} reads {arch.obs_dim + arch.goal_dim} "
            f"({arch.obs_dim} state + {arch.goal_dim} goal); this dataset is not for this teacher"
        )
    if meta.action_dim != arch.action_dim:
        raise DistillError(f"{path}: action_dim is {meta.action_dim} but teacher {name} acts in {arch.action_dim} "
                           "dims; this dataset is not for this teacher")
    # the weights file itself, hashed here: a random-init dataset ("random-init:<seed>") or one
    # labelled by other weights never matches
    sha = sha256_file(manifest.weights_path) if manifest.weights_path.is_file() else None
    return TeacherCheck(name, width, arch.action_dim, sha == meta.teacher_sha256)


def _scan(path: Path, spans: list[RoundSpan], finite: tuple[str, ...], max_memory_mb: float) -> int:
    """Streams the committed rows: finite floats, `round` matching the spans; returns the episode count."""
    stream = RowStream(path, (*finite, "episode", "round"), batch_size=1, max_memory_mb=max_memory_mb)
    ends = np.array([s.stop for s in spans], np.int64)
    expected = np.array([s.round for s in spans], np.int32)
    episodes = np.empty(0, np.int64)
    offset = 0
    for block in stream.blocks():
        n = len(block["round"])
        for name in finite:
            bad = ~np.isfinite(block[name].reshape(n, -1)).all(axis=1)
            if bad.any():
                raise DistillError(
                    f"{path}: column {name!r} holds NaN or inf in {int(bad.sum())} row(s) from row "
                    f"{offset + int(np.argmax(bad))}; the labels are corrupt, regenerate the dataset"
                )
        want = expected[np.searchsorted(ends, np.arange(offset, offset + n), side="right")]
        wrong = block["round"] != want
        if wrong.any():
            row = offset + int(np.argmax(wrong))
            raise DistillError(f"{path}: column 'round' is {int(block['round'][row - offset])} at row {row}, inside "
                               f"round {int(want[row - offset])}'s committed rows; regenerate the file")
        episodes = np.union1d(episodes, block["episode"])
        offset += n
    return len(episodes)


def validate_dataset(
    path: str | os.PathLike, teacher: str | None = None, max_memory_mb: float = SCAN_MEMORY_MB
) -> DatasetReport:
    """Every check in the module doc; the report of a dataset that passed them all."""
    path = Path(path)
    with _open(path) as f:
        meta = read_meta(f, path)
        committed, counted = read_commit(f, path)
        _check_commit(f, path, committed)
        columns = _summaries(f)
        teacher_check = None if teacher is None else _teacher_check(teacher, path, meta, f)
        present = tuple(c for c in FINITE_COLUMNS if c in f and c in COLUMN_BY_NAME)
    starts = [0] + [end for _, end in counted[:-1]]
    spans = [RoundSpan(r, start, end) for (r, end), start in zip(counted, starts)]
    episodes = _scan(path, spans, present, max_memory_mb) if committed else 0
    return DatasetReport(
        path=path, file_bytes=path.stat().st_size, meta=meta, rows=committed,
        stored_rows=max(c.stored_rows for c in columns), rounds=tuple(spans), episodes=episodes,
        columns=columns, finite_columns=present, teacher=teacher_check,
    )
