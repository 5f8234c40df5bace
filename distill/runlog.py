"""Where the `distill` logger's records go: the terminal while a command runs, and `run.log` beside a
run's report, headed by what ran and on what software, so a result can be traced to its cause."""

from __future__ import annotations

import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import distill
from distill.versions import git_state, host_line, stack_versions

LOGGER_NAME = "distill"
LOG_FILE = "run.log"
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


def logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


@contextmanager
def console_logging(quiet: bool = False, stream=None) -> Iterator[logging.Handler]:
    """INFO and above to stderr (WARNING and above when `quiet`) while the block runs. The quiet
    switch sits on this handler, not on the logger, so run.log stays complete under --quiet."""
    log = logger()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous, propagated = log.level, log.propagate
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    # a library that configures the root logger mid-run (seen during `distill sweep`) would print every
    # line a second time as "INFO:distill...."
    log.propagate = False
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
        log.propagate = propagated


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _git_line() -> str:
    git = git_state()
    if git is None:
        return "not a git checkout"
    return git.commit + (" (uncommitted changes)" if git.dirty else "")


def header_lines(argv: Sequence[str]) -> list[str]:
    stack = ", ".join(f"{name} {version}" for name, version in stack_versions().items())
    return [
        f"command  {shlex.join(argv)}",
        f"cwd      {os.getcwd()}",
        f"distill  {distill.__version__} ({Path(distill.__file__).resolve().parent})",
        f"git      {_git_line()}",
        f"python   {platform.python_version()} ({sys.executable})",
        f"stack    {stack}",
        f"host     {host_line()}",
    ]


@contextmanager
def run_log(directory: str | os.PathLike, argv: Sequence[str]) -> Iterator[Path]:
    """Appends to `directory/run.log` everything the `distill` logger records while the block runs,
    after a header (command line, versions, git commit, host, start time) and before a footer
    (end time, outcome). Appending keeps the history of a resumed run in one file."""
    path = Path(directory) / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    log = logger()
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT))

    def note(message: str, level: int = logging.INFO) -> None:
        """Straight to the file: the header is no news for the terminal."""
        handler.handle(log.makeRecord(LOGGER_NAME, level, __file__, 0, message, None, None))

    start = time.time()
    note(f"=== started {_utc(start)}")
    for line in header_lines(argv):
        note(line)
    previous = log.level
    if not log.isEnabledFor(logging.INFO):
        log.setLevel(logging.INFO)
    log.addHandler(handler)
    outcome = "ok"
    try:
        yield path
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    except BaseException as exc:
        outcome = f"failed: {type(exc).__name__}: {exc}"
        raise
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
        end = time.time()
        note(f"=== finished {_utc(end)} after {end - start:.1f} s: {outcome}",
             logging.INFO if outcome == "ok" else logging.ERROR)
        handler.close()
