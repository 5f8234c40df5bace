"""The `distill` command's conventions, run in-process through the real CLI: --version, the list
commands, defaults in every --help, help texts that name what the code reads, progress bars and
--quiet, `distill eval` (reproducing a finished run's report exactly) and run.log."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import distill
from distill.cli import build_parser, main
from distill.config import DISTILL_TABLE, TRAINING_CONFIG_TABLE
from distill.errors import DistillError
from distill.progress import bars_wanted, progress_bar
from distill.runlog import console_logging, run_log
from distill.versions import git_state


def _help(capsys, *argv: str) -> str:
    """`distill ... --help` with whitespace collapsed (argparse wraps lines)."""
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _table(out: str) -> dict[str, list[str]]:
    """Rows of a `list` command's table by first cell (cells are separated by 2+ spaces)."""
    lines = [line for line in out.splitlines() if line.strip()]
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in lines[1:])}


# --- version, help -------------------------------------------------------------------------------
def test_version_names_distill_and_its_stack(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"distill {distill.__version__} (")
    for name in ("jax", "torch", "mujoco"):
        assert f"{name} {metadata.version(name)}" in out


def test_every_option_shows_its_default(capsys):
    parsers = list(_parsers(build_parser()))
    assert {p for p, _ in parsers} >= {("run",), ("eval",), ("teacher", "train"), ("teacher", "list"),
                                       ("env", "list"), ("preset", "list")}
    missing = []
    for path, parser in parsers:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if (not action.option_strings or action.required
                    or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
                continue
            if "(default" not in formatter._expand_help(action):
                missing.append(f"distill {' '.join(path)} {action.option_strings[-1]}")
    assert not missing, f"options whose --help hides the default: {missing}"

    from distill.students.presets import default_preset_name

    assert f"(default: {default_preset_name()})" in _help(capsys, "run")


def test_help_names_the_tables_the_code_reads(capsys, tmp_path):
    from distill.commands.eval import EVAL_ENVS, EVAL_EPISODES
    from distill.dagger import DaggerConfig
    from distill.pipeline import load_dagger_config
    from distill.teachers.train_cli import config_for

    train_help = _help(capsys, "teacher", "train")
    assert f"[{TRAINING_CONFIG_TABLE}]" in train_help and "[train]" not in train_help
    path = tmp_path / "teacher.toml"
    path.write_text(f'[{TRAINING_CONFIG_TABLE}]\nenv = "reacher"\nactor_depth = 4\n')
    assert config_for("any", str(path)).actor_depth == 4
    path.write_text('[train]\nenv = "reacher"\n')
    with pytest.raises(DistillError, match=re.escape(f"no [{TRAINING_CONFIG_TABLE}] table")):
        config_for("any", str(path))

    assert f"[{DISTILL_TABLE}]" in _help(capsys, "run")
    path.write_text(f"[{DISTILL_TABLE}]\nrounds = 3\n")
    assert load_dagger_config(str(path)).rounds == 3

    assert EVAL_EPISODES == DaggerConfig().eval_episodes and EVAL_ENVS == DaggerConfig().envs
    assert f"(default: {EVAL_EPISODES})" in _help(capsys, "eval") and f"(default: {EVAL_ENVS})" in _help(capsys, "eval")


# --- list commands -------------------------------------------------------------------------------
def test_env_list_gives_every_env_with_its_dims(capsys):
    from distill.envs import ENV_FACTORIES, make_env

    assert main(["env", "list"]) == 0
    rows = _table(capsys.readouterr().out)
    assert set(rows) == set(ENV_FACTORIES)
    for name, cells in rows.items():
        spec = make_env(name).spec
        assert cells[2:7] == [str(spec.obs_dim), str(spec.goal_dim), str(spec.action_dim),
                              str(spec.student_input_dim), str(spec.episode_length)]
    assert rows["reacher"][1:7] == ["mjx", "10", "3", "2", "13", "50"]
    assert rows["reacher_egocentric"][1:7] == ["mjx", "10", "3", "2", "8", "50"]  # the student sees less
    assert rows["humanoid"][1] == "spring, mjx" and rows["humanoid"][7] == "0.03 s spring, 0.015 s mjx"
    assert rows["humanoid_u_maze"][7] == "0.015 s" and rows["ant"][7] == "0.05 s"


def test_teacher_list_reads_the_zoo(capsys, tmp_path, monkeypatch):
    repo_zoo = Path(__file__).resolve().parent.parent / "teachers"
    monkeypatch.setenv("DISTILL_ROOT", str(tmp_path))
    assert main(["teacher", "list"]) == 0
    assert "no teachers in" in capsys.readouterr().out

    shutil.copytree(repo_zoo / "reacher_8", tmp_path / "teachers" / "reacher_8")
    shutil.copytree(repo_zoo / "humanoid_1024", tmp_path / "teachers" / "humanoid_1024")
    assert main(["teacher", "list"]) == 0
    rows = _table(capsys.readouterr().out)
    assert rows["humanoid_1024"][1:8] == ["humanoid_u_maze", "spring", "512", "1024", "256", "swish", "no"]
    assert rows["humanoid_1024"][8] == "-"
    assert rows["reacher_8"][1:8] == ["reacher", "mjx", "8", "8", "128", "swish", "yes"]
    assert rows["reacher_8"][8].startswith("1.000, 40.7/50")

    (tmp_path / "teachers" / "reacher_8" / "weights.safetensors").unlink()
    assert main(["teacher", "list"]) == 0
    assert _table(capsys.readouterr().out)["reacher_8"][7] == "no"


def test_preset_list_marks_the_default_and_counts_parameters(capsys):
    from distill.students.memory import build_student
    from distill.students.presets import default_preset_name, load_presets

    assert main(["preset", "list"]) == 0
    rows = _table(capsys.readouterr().out)
    default = default_preset_name()
    assert f"{default} (default)" in rows
    assert sum("(default)" in name for name in rows) == 1

    assert main(["preset", "list", "--env", "reacher"]) == 0
    by_env = capsys.readouterr().out
    assert main(["preset", "list", "--input-dim", "13", "--action-dim", "2"]) == 0
    assert capsys.readouterr().out == by_env
    rows = _table(by_env)
    for name, preset in load_presets().items():
        label = f"{name} (default)" if name == default else name
        assert rows[label][-1] == f"{build_student(preset, 13, 2).num_params():,}"

    assert main(["preset", "list", "--input-dim", "13"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--action-dim" in err


# --- progress bars, --quiet, logs ------------------------------------------------------------------
def test_progress_bars_only_on_a_terminal_that_shows_info(monkeypatch):
    leader, follower = os.openpty()
    terminal = os.fdopen(follower, "w")
    try:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert not bars_wanted()  # a library caller who configured no logging
        with console_logging(quiet=False, stream=terminal):
            assert bars_wanted()
            assert not progress_bar(range(3), "shown").disable
            assert progress_bar(range(3), "caller said no", enabled=False).disable
        with console_logging(quiet=True, stream=terminal):
            assert not bars_wanted()
    finally:
        terminal.close()
        os.close(leader)
    monkeypatch.undo()
    with console_logging(quiet=False):  # pytest's captured stderr: a file, not a terminal
        assert not bars_wanted()
        assert progress_bar(range(3), "hidden").disable


def test_console_lines_are_not_repeated_by_a_root_handler():
    """A library that configures the root logger mid-run must not make every status line print twice."""
    import io

    root_stream, out = io.StringIO(), io.StringIO()
    root_handler = logging.StreamHandler(root_stream)
    logging.getLogger().addHandler(root_handler)
    try:
        with console_logging(quiet=False, stream=out):
            logging.getLogger("distill.somewhere").info("status line")
        assert out.getvalue().count("status line") == 1
        assert "status line" not in root_stream.getvalue()
        logging.getLogger("distill.somewhere").warning("outside the CLI")  # a library caller's setup again
        assert "outside the CLI" in root_stream.getvalue()
    finally:
        logging.getLogger().removeHandler(root_handler)


def test_run_log_keeps_the_distill_loggers_records_and_the_outcome(tmp_path):
    with run_log(tmp_path, ["distill", "first"]):
        logging.getLogger("distill.somewhere").info("inside the run")
        logging.getLogger("elsewhere").warning("another library's record")
    logging.getLogger("distill").warning("after the run")
    with pytest.raises(DistillError), run_log(tmp_path, ["distill", "second"]):
        raise DistillError("bad input")
    text = (tmp_path / "run.log").read_text()
    assert "inside the run" in text
    assert "another library's record" not in text and "after the run" not in text
    assert text.count("=== started") == 2  # appended, as a resumed run would
    assert "command  distill first" in text and "command  distill second" in text
    assert re.search(r"=== finished .* ok$", text, re.MULTILINE)
    assert "failed: DistillError: bad input" in text


def test_git_state_only_for_the_checkout_itself(tmp_path):
    assert git_state(tmp_path) is None  # not a git work tree
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "inner").mkdir()
    assert git_state(tmp_path / "inner") is None  # inside a repository, but not its top


# --- one finished run: run.log, eval ---------------------------------------------------------------
def _report(run) -> dict:
    assert run.exit_code == 0, run.stderr
    return json.loads((run.folder / "report.json").read_text())


def test_run_writes_run_log_beside_its_report(tiny_run):
    _report(tiny_run)
    text = (tiny_run.folder / "run.log").read_text()
    assert f"command  {shlex.join(['distill', *tiny_run.argv])}" in text
    assert f"distill  {distill.__version__}" in text
    for name in ("jax", "torch", "mujoco", "numpy"):
        assert f"{name} {metadata.version(name)}" in text
    git = git_state()
    assert (git.commit if git else "not a git checkout") in text
    assert re.search(r"=== finished .* ok$", text, re.MULTILINE)


def test_report_records_paths_relative_to_the_project_root(tiny_run):
    report = _report(tiny_run)
    recorded = [*report["artifacts"].values(), *(v["path"] for v in report["variants"])]
    assert report["artifacts"]["dataset"] == "datasets/tiny/rollouts.h5"
    assert all(not os.path.isabs(p) for p in recorded), recorded
    assert all((tiny_run.root / p).exists() for p in recorded)


def test_a_sweep_reuses_a_run_finished_with_its_config(tiny_run, monkeypatch):
    from dataclasses import replace

    from distill.sweep.run import finished_run

    monkeypatch.setenv("DISTILL_ROOT", str(tiny_run.root))
    cfg = tiny_run.config
    assert finished_run("tiny", cfg).student_success.as_dict() == _report(tiny_run)["success"]["student"]
    assert finished_run("tiny", replace(cfg, seed=1)) is None  # another config: run it again
    assert finished_run("no_such_run", cfg) is None


def _figures(m: dict) -> list[str]:
    """A metrics record as the eval table prints it."""
    return [f"{m['success']:.3f}", f"{m['time_at_goal']:.1f} / {m['episode_length']}",
            f"{m['final_success']:.3f}", f"{m['final_distance']:.4f}", str(m["episodes"])]


def test_eval_run_reproduces_the_reports_figures(tiny_run, capsys, monkeypatch):
    report = _report(tiny_run)
    monkeypatch.setenv("DISTILL_ROOT", str(tiny_run.root))
    assert main(["eval", "--run", "tiny"]) == 0
    captured = capsys.readouterr()
    assert "re-evaluating run" in captured.err
    rows = _table(captured.out)
    recorded = [report["success"]["student"]] + [v["success"] for v in report["variants"]]
    assert len(rows) == len(recorded) >= 4
    for cells, figures in zip(rows.values(), recorded):
        assert cells[1:-1] == _figures(figures)
        assert cells[-1] == "same"  # exact equality of every figure, float for float


def test_eval_run_says_when_a_figure_differs(tiny_run, tmp_path, capsys):
    report = _report(tiny_run)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.folder / "student", copy / "student")
    shutil.copy(tiny_run.folder / "dagger_state.json", copy)
    report["success"]["student"]["time_at_goal"] += 1.0
    report["variants"] = []  # the student alone is enough here
    (copy / "report.json").write_text(json.dumps(report))
    assert main(["eval", "--run", str(copy)]) == 1
    captured = capsys.readouterr()
    assert _table(captured.out)["student (JAX mirror)"][-1].startswith("differs")
    assert "differ from the run's report" in captured.err


def test_eval_of_a_student_folder_or_onnx_file_on_a_runs_goals(tiny_run, capsys):
    from distill.policy_eval import evaluate_saved

    report = _report(tiny_run)
    episodes, envs = report["success"]["student"]["episodes"], tiny_run.config.envs
    student = evaluate_saved(tiny_run.folder / "student", "reacher", episodes, seed=0, envs=envs)
    assert student.metrics.as_dict() == report["success"]["student"]  # seed 0: the run's goals
    other = evaluate_saved(tiny_run.folder / "student", "reacher", episodes, seed=1, envs=envs)
    assert other.metrics.as_dict() != student.metrics.as_dict()

    fp32 = next(v for v in report["variants"] if v["precision"] == "fp32")
    onnx_path = tiny_run.folder / os.path.basename(fp32["path"])
    assert main(["eval", str(onnx_path), "--env", "reacher", "--episodes", str(episodes), "--envs", str(envs)]) == 0
    captured = capsys.readouterr()
    assert _table(captured.out)[f"{onnx_path.name} (ONNX Runtime)"][1:] == _figures(fp32["success"])
    assert "evaluating" in captured.err

    assert main(["--quiet", "eval", str(tiny_run.folder / "student"), "--env", "reacher",
                 "--episodes", str(episodes), "--envs", str(envs)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert _table(captured.out)["student (JAX mirror)"][1:] == _figures(report["success"]["student"])


def test_sim2sim_of_a_shipped_reacher_student_agrees_with_mjx(tiny_run, tmp_path, capsys):
    import tarfile

    from distill.ship.bundle import build_bundle

    report = _report(tiny_run)
    fp32 = next(v for v in report["variants"] if v["precision"] == "fp32")
    (run_sim,) = report["sim2sim"]  # the run's own: fp32 in both engines, clean (it has no perturbations)
    assert not run_sim["perturbed"] and run_sim["mjx"] == fp32["success"]
    shipped = build_bundle(tiny_run.folder, precision="fp32", force=True, out=tmp_path / "bundle.tar.gz")
    with tarfile.open(shipped.archive) as tar:
        tar.extractall(tmp_path / "robot", filter="data")
    onnx_file = tmp_path / "robot" / shipped.bundle / "student.onnx"
    episodes = fp32["success"]["episodes"]
    assert main(["eval", str(onnx_file), "--env", "reacher", "--engine", "mujoco", "--episodes", str(episodes),
                 "--envs", str(tiny_run.config.envs)]) == 0
    rows = _table(capsys.readouterr().out)
    assert rows["MJX, clean"][1:6] == _figures(fp32["success"])  # the run's goals, in MJX as the run scored them
    assert "within 3 SE" in rows["MuJoCo (C), clean"][-1]
    # the shipped file in plain MuJoCo scores what the run's own sim2sim recorded, on the same goals
    assert rows["MuJoCo (C), clean"][1:6] == _figures(run_sim["mujoco"])
    assert run_sim["mujoco"]["time_at_goal"] > 10  # a trained student: the agreement is about success, not zeros


@pytest.mark.parametrize("argv, message", [
    ([], "give PATH"),
    (["{onnx}"], "give PATH"),
    (["{onnx}", "--env", "ant"], "31 inputs and takes 8 actions"),
    (["{folder}", "--env", "reacher"], "neither a student folder"),
    (["{onnx}", "--env", "reacher", "--episodes", "0"], "--episodes"),
    (["{onnx}", "--env", "reacher", "--envs", "0"], "--envs"),
    (["{student}", "--env", "reacher", "--engine", "mujoco"], "runs an exported .onnx"),
    (["{onnx}", "--env", "reacher", "--config", "{onnx}"], "goes with --engine mujoco"),
    (["--run", "no_such_run"], "no_such_run"),
    (["--run", "{folder}", "--env", "reacher"], "without PATH or --env"),
])
def test_eval_bad_input_is_a_one_line_error(tiny_run, capsys, argv, message):
    subs = {"onnx": str(tiny_run.folder / "student.onnx"), "folder": str(tiny_run.root),
            "student": str(tiny_run.folder / "student")}
    assert main(["eval", *(a.format(**subs) for a in argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


TINY_TRAINING = f"""[{TRAINING_CONFIG_TABLE}]
env = "reacher"
actor_depth = 4
critic_depth = 4
width = 16
num_envs = 32
unroll_length = 5
batch_size = 16
env_steps_per_sgd_step = 80
total_env_steps = 640
max_replay_size = 50
min_replay_size = 5
alpha_lr = 3e-3
eval_every = 1000
checkpoint_every = 1000
"""
"""tests/test_crl.py's tiny config, so the two share the compiled CRL iteration."""


@pytest.mark.slow  # a CRL compile and a 256-episode evaluation compile: ~2 min on 2 cores
def test_teacher_train_writes_run_log_beside_its_checkpoints(tmp_path, monkeypatch, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TRAINING)
    monkeypatch.setenv("DISTILL_ROOT", str(tmp_path))
    argv = ["teacher", "train", "--name", "tiny", "--config", str(config), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    assert (tmp_path / "out" / "teacher.toml").is_file()
    err = capsys.readouterr().err
    assert "training tiny: env reacher" in err and "tiny: success" in err
    text = (tmp_path / "runs" / "teachers" / "tiny" / "run.log").read_text()
    assert f"command  {shlex.join(['distill', *argv])}" in text
    assert "training tiny: env reacher" in text and "tiny: success" in text
    assert re.search(r"=== finished .* ok$", text, re.MULTILINE)
