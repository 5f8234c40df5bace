"""The `distill` command. Each subcommand group lives in distill/commands/<group>.py."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from distill.errors import DistillError

COMMAND_MODULES = (
    "distill.commands.run",
    "distill.commands.teacher",
    "distill.commands.env",
    "distill.commands.ship",
    "distill.commands.bench",
    "distill.commands.engine",
    "distill.commands.sweep",
    "distill.commands.dataset",
    "distill.commands.fit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distill",
        description="Distil a frozen deep CRL teacher into a shallow student that fits a robot's budget.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except DistillError as exc:
        print(f"distill: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distill: interrupted; rerun the same command to resume from the last committed step",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
