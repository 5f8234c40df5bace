"""Progress bars that appear only where someone watches them.

A bar redraws many times a second; written into a file or a CI log it is kilobytes of frames, so
one is shown only when stderr is a terminal and the `distill` logger's INFO messages reach that
terminal (the command line's handler, which `--quiet` raises to WARNING). Library callers who
configure no logging get no bars.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

from distill.runlog import logger

T = TypeVar("T")


def _on_terminal(stream: Any) -> bool:
    return bool(stream is not None and getattr(stream, "isatty", None) and stream.isatty())


def info_reaches_terminal() -> bool:
    """Some handler on the `distill` logger's path (itself, then its ancestors while records
    propagate) writes INFO records to a terminal."""
    log: logging.Logger | None = logger()
    if not log.isEnabledFor(logging.INFO):
        return False
    while log is not None:
        for handler in log.handlers:
            if handler.level <= logging.INFO and _on_terminal(getattr(handler, "stream", None)):
                return True
        log = log.parent if log.propagate else None
    return False


def bars_wanted() -> bool:
    return _on_terminal(sys.stderr) and info_reaches_terminal()


def progress_bar(iterable: Iterable[T], desc: str, enabled: bool = True, **tqdm_kwargs: Any) -> tqdm:
    """`tqdm(iterable)`, disabled unless the caller asks for it (`enabled`) and `bars_wanted()`;
    a disabled bar still takes `set_postfix`, so call sites need no branch."""
    return tqdm(iterable, desc=desc, disable=not (enabled and bars_wanted()), **tqdm_kwargs)
