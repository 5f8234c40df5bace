"""Whole episodes of chosen columns from a rollout HDF5 file, in bounded memory.

Students with memory learn from sequences, so they need each episode's rows in step order. A
round's rows are stored time-major (row = t * envs + env), so an episode's rows are spread over its
round: they are found through the `episode` and `t` columns, never through the row layout.

- Index: one pass over `episode` and `t` sorts every committed row (of the chosen rounds) by
  (episode, t); an optional predicate on the episode ids keeps some episodes (the train /
  validation split of `distill.data.split`). It keeps 8 bytes per row and 16 per episode.
- Chunks: episodes, in the order of their first row, are grouped into chunks of at most
  `chunk_rows` rows (what the memory cap leaves for them); chunks are dealt to DDP ranks
  round-robin, so each rank owns a fixed, disjoint shard of whole episodes.
- Reading a chunk passes over the file span its episodes occupy in blocks aligned to the widest
  column's HDF5 chunks, skipping blocks that hold none of its rows, and places each row at its
  episode's place in the chunk buffer: episode e is then rows [start_e, start_e + length_e) of it,
  in step order.

Memory (`EpisodePlan`): the index, the chunk buffer (rows of the selected columns plus 24 bytes per
row of bookkeeping), one block of scratch, what the consumer says it needs per chunk row and per
batch (`consumer_row_bytes`, `consumer_bytes`), and HDF5's reserve (as `distill.data.stream`).
A chunk must hold the longest episode; a cap too small for that is refused, naming what it needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import h5py
import numpy as np

from distill.data.reader import RolloutReader
from distill.data.schema import check_column_names
from distill.data.stream import HDF5_READ_CHUNKS, MIN_BLOCK_ROWS, UNCHUNKED_BLOCK_ROWS, ColumnInfo
from distill.errors import DistillError

EpisodeFilter = Callable[[np.ndarray], np.ndarray]
"""episode ids -> bool mask of the episodes to keep."""

INDEX_BUILD_BYTES_PER_ROW = 48
"""Peak while the index is built: episode id (8) and step (4) per row, their sort order (8), the
sorted ids (8), the file row of each (8), the sorted file rows kept (8), and slack."""
INDEX_BYTES_PER_EPISODE = 40
CHUNK_BOOKKEEPING_PER_ROW = 24
"""Per chunk row beside the data: its file row, the order that sorts them, the sorted copy."""


@dataclass(frozen=True)
class EpisodePlan:
    chunk_rows: int
    block_rows: int
    row_bytes: int
    array_bytes: int
    """Upper bound on the numpy arrays the stream (and its consumer, as declared) allocate at once."""
    hdf5_bytes: int
    cache_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.array_bytes + self.hdf5_bytes


@dataclass(frozen=True)
class Chunk:
    """Episodes read together: their ids, lengths and where each starts in the chunk buffer."""

    episodes: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.lengths.sum())


class EpisodeStream:
    """Committed episodes of `columns` (of some rounds, passing `episode_filter`, of one rank's
    shard), a chunk at a time."""

    def __init__(
        self,
        path: str | os.PathLike,
        columns: Iterable[str],
        *,
        max_memory_mb: float,
        rounds: Iterable[int] | None = None,
        episode_filter: EpisodeFilter | None = None,
        rank: int = 0,
        world_size: int = 1,
        consumer_row_bytes: int = 0,
        consumer_bytes: int | Callable[[int, int], int] = 0,
    ) -> None:
        if not (isinstance(world_size, int) and isinstance(rank, int) and 0 <= rank < world_size):
            raise DistillError(f"rank {rank!r} of world_size {world_size!r}: need 0 <= rank < world_size")
        if isinstance(max_memory_mb, bool) or not isinstance(max_memory_mb, (int, float)) or not max_memory_mb > 0:
            raise DistillError(f"max_memory_mb must be a positive number, got {max_memory_mb!r}")
        reader = RolloutReader(path)
        self.path, self.meta = reader.path, reader.meta
        self.columns = check_column_names(columns, self.path)
        self.rank, self.world_size = rank, world_size
        spans = [slice(0, reader.committed_rows)] if rounds is None else [reader.round_rows(r) for r in rounds]
        self._spans = [s for s in spans if s.stop > s.start]
        with h5py.File(self.path, "r") as f:
            self.info = {c: ColumnInfo(c, f[c].dtype, f[c].shape[1:], (f[c].chunks or (UNCHUNKED_BLOCK_ROWS,))[0])
                         for c in (*self.columns, "episode", "t")}
        rows = sum(s.stop - s.start for s in self._spans)
        cap = int(max_memory_mb * 2**20)
        self._build_index(episode_filter, rows)
        self.plan = self._plan(cap, rows, consumer_row_bytes, consumer_bytes)
        self.chunks = self._chunk(self.plan.chunk_rows)

    # --- the index ------------------------------------------------------------------------------
    def _build_index(self, keep: EpisodeFilter | None, rows: int) -> None:
        ids = np.empty(rows, np.int64)
        steps = np.empty(rows, np.int32)
        at = 0
        with h5py.File(self.path, "r") as f:
            for s in self._spans:
                n = s.stop - s.start
                f["episode"].read_direct(ids, np.s_[s.start : s.stop], np.s_[at : at + n])
                f["t"].read_direct(steps, np.s_[s.start : s.stop], np.s_[at : at + n])
                at += n
        order = np.lexsort((steps, ids))
        del steps
        sorted_ids = ids[order]
        del ids
        file_rows = np.concatenate([np.arange(s.start, s.stop) for s in self._spans]) if self._spans \
            else np.zeros(0, np.int64)
        order = file_rows[order]
        del file_rows
        if len(sorted_ids):
            first = np.flatnonzero(np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]]))
        else:
            first = np.zeros(0, np.int64)
        episodes = sorted_ids[first]
        lengths = np.diff(np.append(first, len(sorted_ids)))
        del sorted_ids
        if keep is not None:
            mask = np.asarray(keep(episodes), bool)
            if mask.shape != episodes.shape:
                raise DistillError(f"{self.path}: episode filter returned shape {mask.shape} for {episodes.shape} ids")
            order = order[np.repeat(mask, lengths)]
            episodes, lengths = episodes[mask], lengths[mask]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        # episodes in the order their first row appears in the file, so a chunk spans few blocks
        by_first_row = np.argsort(order[offsets], kind="stable") if len(offsets) else offsets
        self._order = order
        self.episode_ids = episodes[by_first_row]
        self.episode_lengths = lengths[by_first_row].astype(np.int64)
        self._offsets = offsets[by_first_row]

    def _plan(self, cap: int, rows: int, consumer_row_bytes: int,
              consumer_bytes: int | Callable[[int, int], int]) -> EpisodePlan:
        longest = int(self.episode_lengths.max()) if len(self.episode_lengths) else 0
        cols = [self.info[c] for c in self.columns]
        row_bytes = sum(c.row_bytes for c in cols)
        if callable(consumer_bytes):
            consumer_bytes = int(consumer_bytes(longest, row_bytes))
        widest = max(cols, key=lambda c: c.row_bytes)
        largest_chunk = max(c.chunk_bytes for c in self.info.values())
        hdf5 = (len(self.info) + HDF5_READ_CHUNKS) * largest_chunk
        block_rows = max(MIN_BLOCK_ROWS, widest.chunk_rows)
        index = max(rows * INDEX_BUILD_BYTES_PER_ROW, 8 * len(self._order)) \
            + INDEX_BYTES_PER_EPISODE * len(self.episode_ids)
        fixed = index + block_rows * row_bytes + consumer_bytes
        per_row = row_bytes + CHUNK_BOOKKEEPING_PER_ROW + consumer_row_bytes
        total = int(self.episode_lengths.sum())
        chunk_rows = max(0, cap - hdf5 - fixed) // per_row
        # at most a rank's share, so every rank gets chunks; never less than the longest episode
        chunk_rows = min(chunk_rows, max(longest, -(-total // self.world_size)))
        if chunk_rows < max(longest, 1):
            need = hdf5 + fixed + max(longest, 1) * per_row
            raise DistillError(f"max_memory_mb = {cap / 2**20:g} is too small to hold whole episodes of up to "
                               f"{longest} rows of {row_bytes} bytes; raise it to at least {math.ceil(need / 2**20)}")
        return EpisodePlan(int(chunk_rows), block_rows, row_bytes, int(fixed + chunk_rows * per_row), int(hdf5),
                           int(largest_chunk))

    def _chunk(self, chunk_rows: int) -> list[Chunk]:
        chunks, start = [], 0
        lengths = self.episode_lengths
        n = len(lengths)
        while start < n:
            stop, rows = start, 0
            while stop < n and rows + lengths[stop] <= chunk_rows:
                rows += lengths[stop]
                stop += 1
            lens = lengths[start:stop]
            chunks.append(Chunk(np.arange(start, stop), np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64),
                                lens))
            start = stop
        return chunks

    # --- sizes ----------------------------------------------------------------------------------
    def rank_chunks(self, rank: int) -> list[int]:
        return list(range(rank, len(self.chunks), self.world_size))

    @property
    def total_rows(self) -> int:
        """Rows over all ranks."""
        return int(self.episode_lengths.sum())

    def rank_rows(self, rank: int) -> int:
        return sum(self.chunks[c].rows for c in self.rank_chunks(rank))

    @property
    def rows(self) -> int:
        return self.rank_rows(self.rank)

    @property
    def episodes(self) -> int:
        return len(self.episode_ids)

    # --- reading ----------------------------------------------------------------------------------
    def _open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r", rdcc_nbytes=self.plan.cache_bytes)
        except OSError as exc:
            raise DistillError(f"{self.path}: cannot reopen the dataset to stream it ({exc}); "
                               "was it moved or is a writer appending?") from None

    def _arrays(self, rows: int) -> dict[str, np.ndarray]:
        return {c: np.empty((rows, *self.info[c].row_shape), self.info[c].dtype) for c in self.columns}

    def read_chunk(self, f: h5py.File, index: int, buffers: dict[str, np.ndarray],
                   scratch: dict[str, np.ndarray]) -> tuple[Chunk, dict[str, np.ndarray]]:
        """The chunk's rows of every column into `buffers` (chunk_rows long), episode by episode in
        step order, through `scratch` (block_rows long)."""
        chunk = self.chunks[index]
        file_rows = np.concatenate([self._order[o : o + n] for o, n in
                                    zip(self._offsets[chunk.episodes], self.episode_lengths[chunk.episodes])])
        n = len(file_rows)
        perm = np.argsort(file_rows, kind="stable")
        ordered = file_rows[perm]
        del file_rows
        block = self.plan.block_rows
        start = int(ordered[0]) // block * block if n else 0
        while n and start <= ordered[-1]:
            stop = start + block
            lo, hi = np.searchsorted(ordered, [start, stop])
            if hi > lo:
                a, b = int(ordered[lo]), int(ordered[hi - 1]) + 1
                for name in self.columns:
                    try:
                        f[name].read_direct(scratch[name], np.s_[a:b], np.s_[: b - a])
                    except OSError as exc:
                        raise DistillError(f"{self.path}: column {name!r} cannot be read at rows {a}-{b} ({exc}); "
                                           "the file is damaged, regenerate it") from None
                    buffers[name][perm[lo:hi]] = scratch[name][ordered[lo:hi] - a]
                start = stop
            else:
                start = int(ordered[lo]) // block * block if lo < n else stop
        return chunk, {name: arr[:n] for name, arr in buffers.items()}

    def chunk_order(self, epoch: int, seed: int) -> list[int]:
        """This rank's chunks in a seeded order (the same (seed, epoch, rank) gives the same order)."""
        mine = self.rank_chunks(self.rank)
        return [mine[i] for i in np.random.default_rng([seed, epoch, self.rank]).permutation(len(mine))]

    def iterate(self, order: list[int] | None = None) -> Iterator[tuple[Chunk, dict[str, np.ndarray]]]:
        """Chunks (default: this rank's, in file order) with their columns. The arrays are reused
        for the next chunk: use (or copy) them before asking for it."""
        order = self.rank_chunks(self.rank) if order is None else order
        with self._open() as f:
            buffers, scratch = self._arrays(self.plan.chunk_rows), self._arrays(self.plan.block_rows)
            for index in order:
                yield self.read_chunk(f, index, buffers, scratch)


def read_sequences(path: str | os.PathLike, rounds: Iterable[int] | None = None,
                   max_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The student observations of whole episodes of some rounds, in memory: obs [N, D] episode after
    episode in step order, and starts [N] (an episode's first row); at most `max_rows` rows (the last
    episode cut short). For calibration and replay sets, not for fitting (which streams)."""
    data = RolloutReader(path).read(("obs", "episode", "t"), rounds=rounds)
    order = np.lexsort((data["t"], data["episode"]))
    if max_rows is not None:
        order = order[:max_rows]
    ids = data["episode"][order]
    starts = np.concatenate([[True], ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, bool)
    return data["obs"][order], starts
