"""Scoped torch CPU thread count: small MLPs run many times faster on one thread than on
threads that contend with other processes for a few cores, but the setting is process-global,
so it is set for a block and put back after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Runs the block with `n` intra-op threads (None: leave the setting alone)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
