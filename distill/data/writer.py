"""Crash-safe appends of DAgger rounds to one HDF5 file.

HDF5 cannot append by rename, so a commit marker does the job: a round's rows are written and
flushed first, and only then does the root attribute `committed_rows` move past them. A crash in
between leaves rows that readers never see and that the next append truncates and overwrites.
The file is opened only while a round is appended, so readers can open it between rounds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

from distill.atomic import atomic_path
from distill.data.schema import (
    COLUMN_BY_NAME,
    COMMITTED_ROUNDS,
    COMMITTED_ROWS,
    IDENTITY_FIELDS,
    DatasetMeta,
    columns_for,
    open_file,
    read_commit,
    read_meta,
)
from distill.errors import DistillError

CHUNK_BYTES = 256 * 1024
"""Target chunk size: big enough for lzf to pay off, small enough for HDF5's 1 MiB chunk cache."""


def _chunk_rows(row_shape: tuple[int, ...], dtype: np.dtype) -> int:
    row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    return int(np.clip(CHUNK_BYTES // row_bytes, 256, 65536))


class RolloutWriter:
    """Appends rounds to `datasets/<run>/rollouts.h5`; build it with `create` or `open`."""

    def __init__(self, path: Path, meta: DatasetMeta) -> None:
        self.path = path
        self.meta = meta
        self._closed = False

    @classmethod
    def create(cls, path: str | os.PathLike, meta: DatasetMeta) -> RolloutWriter:
        """Makes a new, empty dataset; an existing file is reopened only if its meta is the same."""
        path = Path(path)
        if path.exists():
            with open_file(path, "r") as f:
                existing = read_meta(f, path)
            diff = meta.differences(existing)
            if diff:
                raise DistillError(
                    f"{path} already exists with different metadata ({', '.join(diff)}); "
                    "choose a new run name, or delete the file to start over"
                )
            return cls.open(path)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs.update(meta.to_attrs())
            f.attrs[COMMITTED_ROUNDS] = "[]"
            f.attrs[COMMITTED_ROWS] = 0
            for col in columns_for(meta.dims):
                shape = col.shape(meta.dims)
                f.create_dataset(
                    col.name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=col.dtype,
                    chunks=(_chunk_rows(shape, col.dtype), *shape),
                    compression="lzf",
                )
        return cls(path, meta)

    @classmethod
    def open(cls, path: str | os.PathLike, expect_meta: DatasetMeta | None = None) -> RolloutWriter:
        """Reopens a dataset to append (resume); `expect_meta` must share env, teacher and dims."""
        path = Path(path)
        with open_file(path, "r") as f:
            meta = read_meta(f, path)
            read_commit(f, path)
        diff = [] if expect_meta is None else expect_meta.differences(meta, IDENTITY_FIELDS)
        if diff:
            name = diff[0]
            raise DistillError(
                f"{path}: {name} is {getattr(meta, name)!r} in the file but "
                f"{getattr(expect_meta, name)!r} for this run; use a new run name or the "
                "dataset's own env and teacher"
            )
        return cls(path, meta)

    @property
    def committed_rows(self) -> int:
        with open_file(self.path, "r") as f:
            return read_commit(f, self.path)[0]

    @property
    def committed_rounds(self) -> list[int]:
        with open_file(self.path, "r") as f:
            return [r for r, _ in read_commit(f, self.path)[1]]

    def append_round(self, round_index: int, columns: Mapping[str, Any]) -> int:
        """Writes one round's rows and commits them; returns the committed row count.

        Every schema column is required except `round`, which is filled with `round_index`.
        A round index that is already committed is refused, so a resumed run cannot append twice.
        """
        if self._closed:
            raise DistillError(f"{self.path}: writer is closed; reopen it with RolloutWriter.open")
        if (
            isinstance(round_index, bool)
            or not isinstance(round_index, (int, np.integer))
            or round_index < 0
        ):
            raise DistillError(
                f"{self.path}: round index must be a non-negative int, got {round_index!r}"
            )
        round_index = int(round_index)
        rows = self._validate(round_index, columns)
        with open_file(self.path, "r+") as f:
            committed, spans = read_commit(f, self.path)
            if any(r == round_index for r, _ in spans):
                raise DistillError(
                    f"{self.path}: round {round_index} is already committed; a resumed run must "
                    f"continue from round {max(r for r, _ in spans) + 1}"
                )
            self._write_rows(f, committed, rows)
            end = committed + len(rows["round"])
            self._commit(f, spans + [(round_index, end)])
        return end

    def _validate(self, round_index: int, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        where = f"{self.path}: round {round_index}"
        expected = [c.name for c in columns_for(self.meta.dims)]
        unknown = sorted(set(columns) - set(expected))
        missing = [name for name in expected if name not in columns and name != "round"]
        for problem, names in (("missing", missing), ("unknown", unknown)):
            if names:
                raise DistillError(
                    f"{where}: {problem} column(s) {', '.join(map(repr, names))}; "
                    f"expected columns: {', '.join(expected)}"
                )
        rows: dict[str, np.ndarray] = {}
        for name, value in columns.items():
            col = COLUMN_BY_NAME[name]
            arr = np.asarray(value)
            want = col.shape(self.meta.dims)
            if arr.ndim != len(want) + 1 or arr.shape[1:] != want:
                raise DistillError(
                    f"{where}: column {name!r} has shape {arr.shape}, "
                    f"expected (N, {', '.join(map(str, want))})"
                )
            if not np.can_cast(arr.dtype, col.dtype, casting="same_kind"):
                raise DistillError(
                    f"{where}: column {name!r} has dtype {arr.dtype}, expected {col.dtype}"
                )
            rows[name] = arr.astype(col.dtype, copy=False)
        counts = {name: len(arr) for name, arr in rows.items()}
        if len(set(counts.values())) != 1:
            raise DistillError(f"{where}: columns have different row counts {counts}")
        n = next(iter(counts.values()))
        if n == 0:
            raise DistillError(f"{where}: no rows to append")
        if "round" in rows and not np.all(rows["round"] == round_index):
            raise DistillError(f"{where}: column 'round' holds values other than {round_index}")
        rows["round"] = np.full(n, round_index, np.int32)
        return rows

    def _write_rows(self, f: h5py.File, start: int, rows: dict[str, np.ndarray]) -> None:
        """Drops rows past `start` (left by a crash), writes the new ones, and flushes them."""
        n = len(rows["round"])
        for name, arr in rows.items():
            ds = f[name]
            ds.resize(start, axis=0)
            ds.resize(start + n, axis=0)
            ds[start:] = arr
        f.flush()

    def _commit(self, f: h5py.File, spans: list[tuple[int, int]]) -> None:
        """Moves the marker last: a round listed past `committed_rows` does not count."""
        f.attrs[COMMITTED_ROUNDS] = json.dumps(spans)
        f.flush()
        f.attrs[COMMITTED_ROWS] = spans[-1][1]
        f.flush()

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
