"""Progress bars on a terminal only: logs and CI get no bar frames."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm


def progress(iterable: Iterable, desc: str = "", **kwargs) -> Iterable:
    """`tqdm(iterable)` when stderr is a terminal and the `distill` logger shows INFO, else the
    iterable itself."""
    show = sys.stderr.isatty() and logging.getLogger("distill").isEnabledFor(logging.INFO)
    return tqdm(iterable, desc=desc, leave=False, **kwargs) if show else iterable
