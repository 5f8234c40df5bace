"""Shuffled minibatches of chosen columns from a rollout HDF5 file, in bounded memory.

`RolloutReader.read` loads every committed row, and a humanoid dataset passes the RAM of the
machines here at about 10 M rows, so fitting streams instead:

- rows are cut into *blocks* on a grid aligned to the HDF5 chunks of the widest selected column
  (the one that dominates the bytes), and spanning whole chunks of the narrower ones where memory
  allows, so a block read decompresses few chunk bytes it does not use (`plan_memory`);
- blocks are dealt to DDP ranks round-robin (block i to rank i mod world_size): each rank reads a
  fixed, disjoint shard of the rows;
- an epoch visits the rank's blocks in a seeded random order, `buffer_blocks` blocks at a time;
  the rows of those blocks (plus fewer than a batch carried over from the last group) are
  permuted and cut into batches, so every row of the shard is yielded once per epoch;
- an optional per-row predicate on the `episode` column keeps only some rows (the train /
  validation split); it is applied as each block is read.

Memory (`plan_memory`): the cap is spent on the shuffle buffer (`buffer_blocks` blocks and its
permutation), the scratch one block needs (the episode ids and the predicate's work, and the
copy that drops filtered rows), the two newest batches and the rows carried between groups, and a
reserve for HDF5 itself (its chunk cache, set to one chunk per column, and the buffers its
decompression uses). Every numpy array the stream allocates is inside the first four; the tests
measure that with `tracemalloc`, which sees numpy's allocations but not HDF5's C-level ones,
which is why those are reserved by arithmetic. Sequential passes (`blocks`: normaliser,
evaluation, validation) hold one block, which leaves at least one more block's bytes of the cap
to whoever consumes them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from distill.data.reader import RolloutReader
from distill.data.schema import check_column_names
from distill.data.split import SCRATCH_BYTES_PER_ROW
from distill.errors import DistillError

RowFilter = Callable[[np.ndarray], np.ndarray]
"""episode ids of a block -> bool mask of the rows to keep."""

MIN_BUFFER_BLOCKS = 2
"""Fewest blocks the shuffle buffer holds: below two, a sequential pass could not leave the
consumer a block's worth of room under the same cap."""
PREFERRED_BUFFER_BLOCKS = 4
"""Blocks shrink (to whole chunks of the widest column, then below) until at least this many fit,
so rows mix across blocks."""
MIN_BLOCK_ROWS = 256
"""Smallest block unless the data itself is smaller: each block read costs a chunk decompression
per column, however few of its rows it uses."""
HDF5_READ_CHUNKS = 2
"""Beside one cached chunk per open column, HDF5 holds the compressed and decompressed buffers of
the one read in flight."""
LIVE_BATCHES = 3
"""Batch-sized arrays alive at once: the batch being built, the one the consumer holds, and the
rows carried over to the next group while they move."""
FILTER_COLUMN = "episode"
UNCHUNKED_BLOCK_ROWS = 4096
"""Grid step for a column stored without chunks (distill always chunks; other writers may not)."""


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    dtype: np.dtype
    row_shape: tuple[int, ...]
    chunk_rows: int

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * math.prod(self.row_shape)

    @property
    def chunk_bytes(self) -> int:
        return self.row_bytes * self.chunk_rows


@dataclass(frozen=True)
class StreamPlan:
    """How a stream spends its memory cap."""

    block_rows: int
    buffer_blocks: int
    batch_size: int
    row_bytes: int
    """Bytes of one row of the selected columns."""
    array_bytes: int
    """Upper bound on the numpy arrays the stream allocates at once."""
    hdf5_bytes: int
    """Reserved for HDF5's chunk cache and decompression buffers."""
    cache_bytes: int
    """HDF5 chunk cache per column (one chunk of the largest)."""

    @property
    def total_bytes(self) -> int:
        return self.array_bytes + self.hdf5_bytes


def plan_memory(
    columns: Iterable[ColumnInfo], batch_size: int, max_memory_mb: float, filtered: bool, rows: int,
    world_size: int = 1,
) -> StreamPlan:
    """Block size and buffer depth that keep a stream of `rows` rows within `max_memory_mb`.

    Blocks are whole chunks of every selected column where memory allows (else whole chunks of
    the widest), never under MIN_BLOCK_ROWS, and small enough that each of `world_size` ranks gets
    PREFERRED_BUFFER_BLOCKS of them when the data is small."""
    cols = tuple(columns)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DistillError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(max_memory_mb, bool) or not isinstance(max_memory_mb, (int, float)) or not max_memory_mb > 0:
        raise DistillError(f"max_memory_mb must be a positive number, got {max_memory_mb!r}")
    cap = int(max_memory_mb * 2**20)
    row_bytes = sum(c.row_bytes for c in cols)
    widest = max(cols, key=lambda c: c.row_bytes)
    align = widest.chunk_rows
    largest_chunk = max(c.chunk_bytes for c in cols)
    hdf5 = (len(cols) + filtered + HDF5_READ_CHUNKS) * largest_chunk
    buffer_row = row_bytes + 8  # the rows, and their place in the permutation
    scratch_row = widest.row_bytes + ((8 + SCRATCH_BYTES_PER_ROW) if filtered else 0)
    fixed = batch_size * buffer_row + LIVE_BATCHES * batch_size * row_bytes
    budget = cap - hdf5 - fixed
    whole_chunks = align * -(-max(c.chunk_rows for c in cols) // align)
    fit_rows = max(budget, 0) // (PREFERRED_BUFFER_BLOCKS * buffer_row + scratch_row)
    spread = max(1, -(-rows // (world_size * PREFERRED_BUFFER_BLOCKS)))
    block_rows = max(min(MIN_BLOCK_ROWS, spread), min(whole_chunks, fit_rows, spread))
    if block_rows >= align:
        block_rows -= block_rows % align
    depth = (budget - block_rows * scratch_row) // (block_rows * buffer_row) if budget > 0 else 0
    if depth < MIN_BUFFER_BLOCKS:
        need = hdf5 + fixed + block_rows * (MIN_BUFFER_BLOCKS * buffer_row + scratch_row)
        raise DistillError(
            f"max_memory_mb = {max_memory_mb:g} is too small for batches of {batch_size} rows of "
            f"{row_bytes} bytes in blocks of {block_rows} rows; raise it to at least {math.ceil(need / 2**20)}"
        )
    arrays = depth * block_rows * buffer_row + block_rows * scratch_row + fixed
    return StreamPlan(block_rows, int(depth), batch_size, row_bytes, int(arrays), int(hdf5), int(largest_chunk))


def _grid(spans: Iterable[slice], block_rows: int) -> np.ndarray:
    """[start, stop) of every block: the rows of each span cut on the absolute grid of block_rows."""
    out = []
    for s in spans:
        for k in range(s.start // block_rows, -(-s.stop // block_rows)):
            start, stop = max(s.start, k * block_rows), min(s.stop, (k + 1) * block_rows)
            if start < stop:
                out.append((start, stop))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


class RowStream:
    """Committed rows of `columns` (of some rounds, passing `row_filter`, of one rank's shard)
    as shuffled numpy batches (`batches`) or in file order (`blocks`)."""

    def __init__(
        self,
        path: str | os.PathLike,
        columns: Iterable[str],
        *,
        batch_size: int,
        max_memory_mb: float,
        rounds: Iterable[int] | None = None,
        row_filter: RowFilter | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not (isinstance(world_size, int) and isinstance(rank, int) and 0 <= rank < world_size):
            raise DistillError(f"rank {rank!r} of world_size {world_size!r}: need 0 <= rank < world_size")
        reader = RolloutReader(path)
        self.path = reader.path
        self.meta = reader.meta
        self.columns = check_column_names(columns, self.path)
        self.rank, self.world_size = rank, world_size
        self._filter = row_filter
        spans = (
            [slice(0, reader.committed_rows)] if rounds is None else [reader.round_rows(r) for r in rounds]
        )
        with h5py.File(self.path, "r") as f:
            self.info = {
                c: ColumnInfo(c, f[c].dtype, f[c].shape[1:], (f[c].chunks or (UNCHUNKED_BLOCK_ROWS,))[0])
                for c in self.columns
            }
        rows = sum(s.stop - s.start for s in spans)
        self.plan = plan_memory(self.info.values(), batch_size, max_memory_mb, row_filter is not None, rows, world_size)
        self._blocks = _grid(spans, self.plan.block_rows)
        self.block_counts = self._count_rows()
        """Rows each block yields after the filter (all ranks' blocks)."""

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    def rank_rows(self, rank: int) -> int:
        return int(self.block_counts[rank :: self.world_size].sum())

    @property
    def rows(self) -> int:
        """Rows in this rank's shard."""
        return self.rank_rows(self.rank)

    @property
    def total_rows(self) -> int:
        """Rows over all ranks."""
        return int(self.block_counts.sum())

    def _open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r", rdcc_nbytes=self.plan.cache_bytes)
        except OSError as exc:
            raise DistillError(f"{self.path}: cannot reopen the dataset to stream it ({exc}); "
                               "was it moved or is a writer appending?") from None

    def _mask(self, f: h5py.File, start: int, stop: int, episode: np.ndarray) -> np.ndarray | None:
        if self._filter is None:
            return None
        ids = episode[: stop - start]
        self._read(f, FILTER_COLUMN, ids, start, stop, np.s_[:])
        mask = np.asarray(self._filter(ids), dtype=bool)
        if mask.shape != ids.shape:
            raise DistillError(f"{self.path}: row filter returned shape {mask.shape} for {ids.shape} episode ids")
        return mask

    def _count_rows(self) -> np.ndarray:
        sizes = self._blocks[:, 1] - self._blocks[:, 0]
        if self._filter is None:
            return sizes
        counts = np.empty(len(self._blocks), np.int64)
        episode = np.empty(self.plan.block_rows, np.int64)
        with self._open() as f:
            for i, (start, stop) in enumerate(self._blocks):
                counts[i] = int(np.count_nonzero(self._mask(f, start, stop, episode)))
        return counts

    def _read(self, f: h5py.File, name: str, dest: np.ndarray, start: int, stop: int, at: slice) -> None:
        """Rows [start, stop) of a column straight into `dest[at]` (no intermediate array)."""
        try:
            f[name].read_direct(dest, np.s_[start:stop], at)
        except OSError as exc:
            raise DistillError(f"{self.path}: column {name!r} cannot be read at rows {start}-{stop} "
                               f"({exc}); the file is damaged, regenerate it") from None

    def _read_block(self, f: h5py.File, index: int, into: dict[str, np.ndarray], at: int, episode: np.ndarray) -> int:
        """Reads block `index` into rows [at, ...) of `into`, drops the rows the filter refuses;
        returns the rows kept."""
        start, stop = (int(v) for v in self._blocks[index])
        n = stop - start
        mask = self._mask(f, start, stop, episode)
        kept = n if mask is None else int(np.count_nonzero(mask))
        for name, arr in into.items():
            self._read(f, name, arr, start, stop, np.s_[at : at + n])
            if kept < n:
                arr[at : at + kept] = arr[at : at + n][mask]
        return kept

    def _buffers(self, rows: int) -> dict[str, np.ndarray]:
        return {c.name: np.empty((rows, *c.row_shape), c.dtype) for c in self.info.values()}

    def batches(
        self, epoch: int, seed: int, steps: int | None = None, drop_last: bool = False
    ) -> Iterator[dict[str, np.ndarray]]:
        """One epoch over this rank's shard: batches of `batch_size` rows (the last one shorter
        unless `drop_last`), at most `steps` of them. The same (seed, epoch, rank) gives the same
        batches."""
        plan = self.plan
        batch, depth = plan.batch_size, plan.buffer_blocks
        rng = np.random.default_rng([seed, epoch, self.rank])
        order = rng.permutation(np.arange(self.rank, self.num_blocks, self.world_size))
        mine = self._blocks[order]
        yielded = 0
        with self._open() as f:
            buf = self._buffers(min(depth * plan.block_rows, int((mine[:, 1] - mine[:, 0]).sum())) + batch)
            episode = np.empty(plan.block_rows if self._filter else 0, np.int64)
            fill = 0
            for g in range(0, len(order), depth):
                for b in order[g : g + depth]:
                    fill += self._read_block(f, int(b), buf, fill, episode)
                perm = rng.permutation(fill)
                full = fill - fill % batch
                for i in range(0, full, batch):
                    if steps is not None and yielded >= steps:
                        return
                    yield {name: arr[perm[i : i + batch]] for name, arr in buf.items()}
                    yielded += 1
                rest = perm[full:fill]
                for arr in buf.values():
                    arr[: len(rest)] = arr[rest]
                fill = len(rest)
                del perm, rest
            if fill and not drop_last and (steps is None or yielded < steps):
                yield {name: arr[:fill].copy() for name, arr in buf.items()}

    def blocks(self) -> Iterator[dict[str, np.ndarray]]:
        """This rank's rows in file order, a block at a time. The arrays are reused for the next
        block: use (or copy) them before asking for it."""
        with self._open() as f:
            buf = self._buffers(self.plan.block_rows)
            episode = np.empty(self.plan.block_rows if self._filter else 0, np.int64)
            for b in range(self.rank, self.num_blocks, self.world_size):
                kept = self._read_block(f, b, buf, 0, episode)
                if kept:
                    yield {name: arr[:kept] for name, arr in buf.items()}


def stream_columns(path: str | Path, columns: Iterable[str], max_memory_mb: float) -> RowStream:
    """All committed rows of `columns`, for sequential scans (validation, statistics)."""
    return RowStream(path, columns, batch_size=1, max_memory_mb=max_memory_mb)
