"""Progress bars that appear only where someone watches them.

A bar redraws many times a second; written into a file or a CI log it is kilobytes of frames, so
one is shown only when stderr is a terminal and the `distill` logger would print INFO messages
(the command line sets that logger to WARNING under `--quiet`). Library callers who configure no
logging get no bars.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

LOGGER_NAME = "distill"

T = TypeVar("T")


def bars_wanted() -> bool:
    stream = sys.stderr
    on_terminal = bool(getattr(stream, "isatty", None) and stream.isatty())
    return on_terminal and logging.getLogger(LOGGER_NAME).isEnabledFor(logging.INFO)


def progress_bar(iterable: Iterable[T], desc: str, enabled: bool = True, **tqdm_kwargs: Any) -> tqdm:
    """`tqdm(iterable)`, disabled unless the caller asks for it (`enabled`) and `bars_wanted()`;
    a disabled bar still takes `set_postfix`, so call sites need no branch."""
    return tqdm(iterable, desc=desc, disable=not (enabled and bars_wanted()), **tqdm_kwargs)
