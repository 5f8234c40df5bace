"""Configuration errors are one-line errors and a non-zero exit, never a traceback or silence."""

from __future__ import annotations

import pytest

from distill.cli import main
from distill.dagger import DaggerConfig
from distill.errors import DistillError
from distill.pipeline import check_run_name, load_dagger_config
from distill.teachers.crl import CRLConfig


def _config(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,match", [
    ("[distil]\nrounds = 2\n", "no \\[distill\\] table"),
    ("rounds = 2\n", "no \\[distill\\] table"),
    ("[distill]\nrounds = 2.5\n", "rounds = 2.5 is float, expected an integer"),
    ("[distill]\nrounds = true\n", "rounds = True is bool, expected an integer"),
    ("[distill]\nbeta0 = \"half\"\n", "beta0 = 'half' is str, expected a number"),
    ("[distill]\ncritic_labels = 1\n", "critic_labels = 1 is int, expected a boolean"),
    ("[distill]\nroundz = 3\n", "unknown keys \\['roundz'\\]"),
    ("[distill]\nenvs = 0\n", "must be >= 1"),
    ("[distill]\nteacher_dtype = \"float16\"\n", "teacher_dtype 'float16': use one of float32, bfloat16"),
    ("[distill\nrounds = 2\n", "invalid TOML"),
])
def test_bad_configs_are_one_line_errors(tmp_path, text, match):
    with pytest.raises(DistillError, match=match) as err:
        load_dagger_config(_config(tmp_path, text))
    assert "\n" not in str(err.value) and str(tmp_path / "c.toml") in str(err.value)


def test_good_config_and_number_widening(tmp_path):
    cfg = load_dagger_config(_config(tmp_path, "[distill]\nrounds = 3\nbeta0 = 1\nenvs = 16\n"))
    assert cfg == DaggerConfig(rounds=3, beta0=1.0, envs=16) and isinstance(cfg.beta0, (int, float))
    assert load_dagger_config(None) == DaggerConfig()
    assert load_dagger_config(_config(tmp_path, '[distill]\nteacher_dtype = "bfloat16"\n')).teacher_dtype == "bfloat16"


def test_crl_config_types_checked():
    with pytest.raises(DistillError, match="width = 128.0 is float"):
        CRLConfig.from_dict({"width": 128.0})
    assert CRLConfig.from_dict({"actor_lr": 1}).actor_lr == 1


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "-x", "", "x" * 129, "a b"])
def test_run_names_cannot_escape_the_project(name):
    with pytest.raises(DistillError, match="run name"):
        check_run_name(name)


def test_cli_exits_2_with_one_line(tmp_path, capsys, project_elsewhere):
    bad = _config(tmp_path, "[distill]\nrounds = 2.5\n")
    assert main(["run", "--teacher", "reacher_8", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("distill: error:") and "rounds = 2.5" in err and len(err.splitlines()) == 1
    assert main(["run", "--teacher", "reacher_8", "--run", "../../x"]) == 2
    assert "run name" in capsys.readouterr().err
    assert (project_elsewhere / "students" / "reacher_8-mlp_2x256" / "run.log").is_file()  # the failed run's log


def test_ordinary_run_names_pass():
    assert check_run_name("reacher_8-mlp_2x256") == "reacher_8-mlp_2x256"
    assert check_run_name("a.b_c-1") == "a.b_c-1"
