"""`distill dataset {info,validate}`."""

from __future__ import annotations

import argparse


def _info(args: argparse.Namespace) -> int:
    from distill.data.info import info_command

    return info_command(args)


def _validate(args: argparse.Namespace) -> int:
    from distill.data.info import validate_command

    return validate_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("dataset", help="inspect and validate rollout datasets (HDF5)")
    dsub = group.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("info", _info, "rows, rounds, episodes, dims, compression, lineage (after every check)"),
        ("validate", _validate, "schema, commit marker, finite labels, teacher dims; exit 2 on the first problem"),
    ):
        cmd = dsub.add_parser(name, help=text)
        cmd.add_argument("path", help="datasets/<run>/rollouts.h5")
        cmd.add_argument("--teacher", help="zoo name or folder: check its input and action dims against the data (default: no teacher check)")
        cmd.add_argument("--max-memory-mb", type=float, help="bound on the scan's buffers (default 256)")
        cmd.set_defaults(func=func)
