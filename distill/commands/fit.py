"""`distill fit`: fit a student on a rollout dataset (one process, or DDP under torchrun)."""

from __future__ import annotations

import argparse


def _fit(args: argparse.Namespace) -> int:
    from distill.students.fit_cli import fit_command

    return fit_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    fit = sub.add_parser("fit", help="fit a student on a rollout dataset (torchrun for DDP)")
    fit.add_argument("--dataset", required=True, help="datasets/<run>/rollouts.h5")
    fit.add_argument("--preset", help="student preset from students/presets.toml (default: the file's default)")
    fit.add_argument("--out", required=True, help="folder for student.toml, weights and logs/")
    fit.add_argument("--seed", type=int, default=0, help="initial weights and row order")
    fit.add_argument("--train-config", help="TOML with a [train] table over the preset's fitting config (default: the preset's own)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(func=_fit)
