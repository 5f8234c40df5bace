"""`distill teacher {train,baseline,import,info,list}`."""

from __future__ import annotations

import argparse

from distill.commands import format_table
from distill.config import TRAINING_CONFIG_TABLE


def _train(args: argparse.Namespace) -> int:
    from distill.runlog import run_log
    from distill.teachers.train_cli import train_command, training_run_dir

    with run_log(training_run_dir(args.name), args.command_line):
        return train_command(args)


def _baseline(args: argparse.Namespace) -> int:
    from distill.teachers.baseline import baseline_command

    return baseline_command(args)


def _import(args: argparse.Namespace) -> int:
    from distill.teachers.importer import import_command

    return import_command(args)


def _info(args: argparse.Namespace) -> int:
    from distill.teachers.info import info_command

    return info_command(args)


def _recorded_success(metrics) -> str:
    if metrics is None:
        return "-"
    text = f"{metrics.success:.3f}"
    if metrics.time_at_goal is not None and metrics.episode_length is not None:
        text += f", {metrics.time_at_goal:.1f}/{metrics.episode_length} steps at goal"
    return text


def _list(args: argparse.Namespace) -> int:
    from distill.paths import teachers_dir
    from distill.teachers.zoo import zoo_entries

    entries = zoo_entries()
    if not entries:
        print(f"no teachers in {teachers_dir()} (import one with `distill teacher import`)")
        return 0
    rows = [(e.name, e.env, e.backend, e.arch.actor_depth, e.arch.critic_depth, e.arch.width,
             e.arch.activation, "yes" if e.has_weights else "no", _recorded_success(e.metrics)) for e in entries]
    print(format_table(("teacher", "env", "backend", "actor depth", "critic depth", "width", "activation",
                        "weights", "recorded success"), rows))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("teacher", help="train, import, inspect and list CRL teachers")
    tsub = group.add_subparsers(dest="teacher_command", metavar="ACTION", required=True)

    train = tsub.add_parser("train", help=f"train a CRL teacher from its teacher.toml [{TRAINING_CONFIG_TABLE}] table",
                            description="Checkpoints, curve and run.log go to runs/teachers/NAME; "
                                        "the trained teacher to teachers/NAME.")
    train.add_argument("--name", required=True, help="zoo name: teachers/NAME/teacher.toml")
    train.add_argument("--config", help=f"TOML file whose [{TRAINING_CONFIG_TABLE}] table replaces the teacher's "
                                        "(default: the one in teachers/NAME/teacher.toml)")
    train.add_argument("--out", help="output folder (default: teachers/NAME)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.set_defaults(func=_train)

    base = tsub.add_parser("baseline", help="evaluate a uniform random policy on a recipe's evaluation goals")
    base.add_argument("--name", required=True, help="zoo name: teachers/NAME/teacher.toml")
    base.add_argument("--config", help=f"TOML file whose [{TRAINING_CONFIG_TABLE}] table replaces the teacher's "
                                       "(default: the one in teachers/NAME/teacher.toml)")
    base.add_argument("--out", help="output folder (default: teachers/NAME)")
    base.set_defaults(func=_baseline)

    imp = tsub.add_parser(
        "import", help="import a scaling-crl run folder or a scaling-crl / JaxGCRL pickle safely",
        description="PATH is a scaling-crl run folder (runs/<env>_<seed>_<time>/ with final.pkl or step_N.pkl "
                    "and args.pkl: env, backend, depths, widths and activation are read from args.pkl, "
                    "as plain data) or a bare checkpoint pickle (then give --env and, if not the env's "
                    "default, --backend). Nothing in either file is executed.",
    )
    imp.add_argument("path", help="a scaling-crl run folder, or a checkpoint pickle written by scaling-crl or JaxGCRL")
    imp.add_argument("--name", required=True, help="zoo name to write teachers/NAME/")
    imp.add_argument("--step", type=int, default=None,
                     help="run folder: import step_N.pkl instead of final.pkl (default: final.pkl)")
    imp.add_argument("--env", help="env name the teacher was trained on (default: args.pkl's env_id for a run "
                                   "folder; none for a bare pickle, recorded as 'unknown')")
    imp.add_argument("--backend", default=None,
                     help="physics backend the teacher was trained in (default: scaling-crl's for the env, "
                          "spring for the ant and humanoid tasks)")
    imp.add_argument("--activation", choices=("swish", "relu"), default=None,
                     help="bare pickle: the networks' activation (default: swish; a run folder's args.pkl "
                          "says it with use_relu)")
    imp.add_argument("--obs-dim", type=int, help="state dims (default: from --env)")
    imp.add_argument("--goal-dim", type=int, help="goal dims (default: from --env)")
    imp.add_argument("--force", action="store_true", help="overwrite an existing teacher folder")
    imp.set_defaults(func=_import)

    info = tsub.add_parser("info", help="print a teacher's env, dims, depths, parameters, provenance")
    info.add_argument("name", help="zoo name or teacher folder")
    info.add_argument("--random-init", action="store_true", help="build with random weights if none")
    info.set_defaults(func=_info)

    zoo = tsub.add_parser("list", help="the teacher zoo: env, depths, width, weights present, recorded success")
    zoo.set_defaults(func=_list)
