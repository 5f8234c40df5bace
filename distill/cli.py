"""The `distill` command. Each subcommand group lives in distill/commands/<group>.py."""

from __future__ import annotations

import importlib
import os
import sys

from distill.commands import Parser
from distill.errors import DistillError

COMMAND_MODULES = (
    "distill.commands.run",
    "distill.commands.eval",
    "distill.commands.teacher",
    "distill.commands.env",
    "distill.commands.preset",
    "distill.commands.ship",
    "distill.commands.bench",
    "distill.commands.engine",
    "distill.commands.sweep",
    "distill.commands.dataset",
    "distill.commands.fit",
)


def build_parser() -> Parser:
    from distill.versions import version_line

    parser = Parser(
        prog="distill",
        description="Distil a frozen deep CRL teacher into a shallow student that fits a robot's budget.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings and errors on stderr, no progress bars (run.log still gets everything)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from distill.runlog import console_logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = ["distill", *argv]
    with console_logging(quiet=args.quiet):
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
