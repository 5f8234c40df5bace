"""`distill run`: the whole flow for one teacher (what `make distill` calls)."""

from __future__ import annotations

import argparse

from distill.config import DISTILL_TABLE


def default_run_name(teacher: str, preset: str, random_init: bool) -> str:
    """<teacher>-<preset>, with -random for random teacher weights; the teacher's name is the one
    in its teacher.toml, which may differ from the folder passed."""
    from distill.teachers import checkpoint
    from distill.teachers.teacher import resolve_teacher_dir

    directory = resolve_teacher_dir(teacher)
    name = checkpoint.read_toml(directory).get("name", directory.name)
    return f"{name}-{preset}{'-random' if random_init else ''}"


def _run(args: argparse.Namespace) -> int:
    from distill.paths import students_dir
    from distill.pipeline import check_run_name, run_command
    from distill.runlog import run_log
    from distill.students.presets import default_preset_name

    args.preset = args.preset or default_preset_name()
    args.run = check_run_name(args.run or default_run_name(args.teacher, args.preset, args.random_init))
    with run_log(students_dir() / args.run, args.command_line):
        return run_command(args)


def _default_preset() -> str | None:
    """The presets file's `default`, shown in --help; None if the file cannot be read (the run then
    fails with the file's own one-line error)."""
    from distill.errors import DistillError
    from distill.students.presets import default_preset_name

    try:
        return default_preset_name()
    except DistillError:
        return None


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="rollouts -> DAgger -> student -> ONNX -> benchmark report",
                         description="The whole flow for one teacher; writes students/RUN/report.md, "
                                     "report.json and run.log. Rerun the same command to resume.")
    run.add_argument("--teacher", required=True, help="zoo name (teachers/NAME) or teacher folder")
    run.add_argument("--run", help="run name: output in students/RUN and datasets/RUN "
                                   "(default: <teacher>-<preset>, plus -random with --random-init)")
    run.add_argument("--config", help=f"TOML file with a [{DISTILL_TABLE}] table of DAgger settings "
                                      "(default: none, the built-in settings listed in the README)")
    run.add_argument("--preset", default=_default_preset(),
                     help="student preset from students/presets.toml (see `distill preset list`)")
    run.add_argument("--env", help="env to distil in (default: the teacher's); its teacher observation must be "
                     "the teacher's, its student observation may differ")
    run.add_argument("--backend", default=None,
                     help="physics backend (default: the one the teacher's teacher.toml says it was trained in, "
                          "else the env's own: spring for the paper's ant and humanoid tasks)")
    run.add_argument("--random-init", action="store_true",
                     help="random teacher weights: systems benchmarks only, success is meaningless")
    run.add_argument("--force", action="store_true",
                     help="distil even when the teacher does far worse here than its teacher.toml records "
                          "(default: stop before collecting and say why)")
    run.set_defaults(func=_run)
