"""`distill teacher {train,import,info}`."""

from __future__ import annotations

import argparse


def _train(args: argparse.Namespace) -> int:
    from distill.teachers.train_cli import train_command

    return train_command(args)


def _import(args: argparse.Namespace) -> int:
    from distill.teachers.importer import import_command

    return import_command(args)


def _info(args: argparse.Namespace) -> int:
    from distill.teachers.info import info_command

    return info_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("teacher", help="train, import and inspect CRL teachers")
    tsub = group.add_subparsers(dest="teacher_command", metavar="ACTION", required=True)

    train = tsub.add_parser("train", help="train a CRL teacher from its teacher.toml [train] table")
    train.add_argument("--name", required=True, help="zoo name: teachers/NAME/teacher.toml")
    train.add_argument("--config", help="TOML with [train] overrides (default: the teacher's own)")
    train.add_argument("--out", help="output folder (default teachers/NAME)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.set_defaults(func=_train)

    imp = tsub.add_parser("import", help="import a scaling-crl / JaxGCRL pickle safely")
    imp.add_argument("path", help="the checkpoint file written by scaling-crl or JaxGCRL")
    imp.add_argument("--name", required=True, help="zoo name to write teachers/NAME/")
    imp.add_argument("--env", help="env name the teacher was trained on")
    imp.add_argument("--obs-dim", type=int, help="state dims (inferred from --env when given)")
    imp.add_argument("--goal-dim", type=int, help="goal dims (inferred from --env when given)")
    imp.add_argument("--force", action="store_true", help="overwrite an existing teacher folder")
    imp.set_defaults(func=_import)

    info = tsub.add_parser("info", help="print a teacher's env, dims, depths, parameters, provenance")
    info.add_argument("name", help="zoo name or teacher folder")
    info.add_argument("--random-init", action="store_true", help="build with random weights if none")
    info.set_defaults(func=_info)
