"""Importing real scaling-crl checkpoints: fidelity to the original modules, safety, errors, info.

The fixtures are real pickles written by scaling-crl's own modules (one by jax 0.4.23 + numpy 1,
one by current jax + numpy 2) with what those modules returned for 16 inputs; they live in
`tests/fixtures/scaling_crl` (its README says where they came from).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import json
import os
import pickle
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from distill.cli import main
from distill.envs import make_env
from distill.errors import DistillError
from distill.hashing import sha256_file
from distill.teachers import checkpoint, load_teacher, networks
from distill.teachers.importer import SCALING_CRL_ENV_DIMS, import_scaling_crl, read_checkpoint
from distill.teachers.info import describe, param_counts
from distill.teachers.safe_unpickle import safe_loads

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "scaling_crl"
CASES = {
    "humanoid_d8_w64_jax0423": "humanoid_u_maze",
    "ant_d12_w32_jax010": "ant",
}
OUTPUTS = ("actor_mean", "actor_log_std", "deterministic_action", "sa_repr", "g_repr", "energy")


def rel_err(got, want) -> float:
    """Largest deviation relative to the array's scale (element-wise ratios blow up near zero)."""
    want = np.asarray(want, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


@pytest.fixture(scope="module")
def fixtures_dir() -> Path:
    if not (FIXTURES / "README.md").is_file():
        pytest.fail(
            f"scaling-crl fixtures not found at {FIXTURES}: restore tests/fixtures/scaling_crl from git "
            "(the .pkl, .expected.npz and .json files)",
            pytrace=False,
        )
    return FIXTURES


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """DISTILL_ROOT in a temp folder, so imports never write into the repository's teachers/."""
    path = tmp_path_factory.mktemp("distill_root")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_ROOT", str(path))
        yield path


@pytest.fixture(scope="module")
def imported(root, fixtures_dir):
    """Both fixtures imported through the CLI, as a user would."""
    for stem, env in CASES.items():
        assert (
            main(
                [
                    "teacher",
                    "import",
                    str(fixtures_dir / f"{stem}.pkl"),
                    "--name",
                    stem,
                    "--env",
                    env,
                ]
            )
            == 0
        )
    return {stem: load_teacher(stem) for stem in CASES}


@pytest.mark.parametrize("stem", CASES)
def test_imported_teacher_reproduces_original_modules(stem, imported, fixtures_dir):
    teacher = imported[stem]
    expected = np.load(fixtures_dir / f"{stem}.expected.npz")
    obs, action = expected["obs"], expected["action"]
    o = teacher.arch.obs_dim
    mean, log_std = teacher.actor_dist(obs)
    sa, g = jax.jit(networks.critic_reprs)(teacher.critic_params, obs[:, :o], action, obs[:, o:])
    got = {
        "actor_mean": mean,
        "actor_log_std": log_std,
        "deterministic_action": teacher.act(obs),
        "sa_repr": sa,
        "g_repr": g,
        "energy": teacher.critic(obs[:, :o], action, obs[:, o:]),
    }
    for key in OUTPUTS:
        assert np.shape(got[key]) == expected[key].shape, key
        assert rel_err(got[key], expected[key]) < 1e-5, (key, rel_err(got[key], expected[key]))


@pytest.mark.parametrize("stem", CASES)
def test_toml_records_architecture_and_provenance(stem, imported, fixtures_dir, root):
    meta = json.loads((fixtures_dir / f"{stem}.json").read_text())
    doc = checkpoint.read_toml(root / "teachers" / stem)
    assert doc["env"] == CASES[stem]
    arch = doc["arch"]
    assert (arch["obs_dim"], arch["goal_dim"], arch["action_dim"]) == (
        meta["obs_dim"],
        meta["goal_dim"],
        meta["action_size"],
    )
    assert (arch["actor_depth"], arch["critic_depth"]) == (
        meta["actor_depth"],
        meta["critic_depth"],
    )
    assert (arch["width"], arch["repr_dim"]) == (meta["width"], meta["repr_dim"])
    prov = doc["provenance"]
    pkl = fixtures_dir / f"{stem}.pkl"
    assert prov["source_file"] == pkl.name
    assert prov["source_sha256"] == hashlib.sha256(pkl.read_bytes()).hexdigest()
    assert prov["format"] == "scaling-crl pickle"
    assert prov["distill_version"] and prov["imported_at"]
    assert imported[stem].weights_identity == doc["weights"]["sha256"] == sha256_file(root / "teachers" / stem / checkpoint.WEIGHTS_NAME)
    assert not (REPO / "teachers" / stem).exists()


def test_blocks_are_stacked_for_scan(imported):
    actor = imported["ant_d12_w32_jax010"].actor_params
    critic = imported["ant_d12_w32_jax010"].critic_params
    assert actor["trunk"]["blocks"]["dense"]["kernel"].shape == (3, 4, 32, 32)
    assert critic["sa_encoder"]["trunk"]["blocks"]["norm"]["scale"].shape == (4, 4, 32)
    assert critic["g_encoder"]["trunk"]["input"]["dense"]["kernel"].shape == (2, 32)


def test_refuses_to_overwrite_without_force(imported, fixtures_dir, root, capsys):
    stem = "ant_d12_w32_jax010"
    toml = root / "teachers" / stem / checkpoint.TOML_NAME
    before = toml.read_text()
    argv = ["teacher", "import", str(fixtures_dir / f"{stem}.pkl"), "--name", stem, "--env", "ant"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and err.count("\n") == 1
    assert toml.read_text() == before
    assert main(argv + ["--force"]) == 0
    assert checkpoint.read_toml(toml.parent)["provenance"][
        "source_sha256"
    ] == sha256_file(fixtures_dir / f"{stem}.pkl")


def test_dims_from_flags_and_mismatches(root, fixtures_dir):
    pkl = fixtures_dir / "humanoid_d8_w64_jax0423.pkl"
    directory = import_scaling_crl(pkl, "h_flags", obs_dim=268, goal_dim=3)
    assert checkpoint.read_toml(directory)["env"] == "unknown"
    with pytest.raises(DistillError, match=r"obs_dim 29 but the checkpoint has 268") as exc:
        import_scaling_crl(pkl, "h_bad_env", env="ant")
    assert "\n" not in str(exc.value)
    with pytest.raises(DistillError, match=r"goal_dim 2 but the checkpoint has 3"):
        import_scaling_crl(pkl, "h_bad_goal", obs_dim=268, goal_dim=2)
    with pytest.raises(DistillError, match="contradicts --env"):
        import_scaling_crl(pkl, "h_contra", env="humanoid", obs_dim=200)
    with pytest.raises(DistillError, match="unknown env"):
        import_scaling_crl(pkl, "h_no_env", env="moon_walker")
    with pytest.raises(DistillError, match="path separators"):
        import_scaling_crl(pkl, "../escape")
    for name in ("h_bad_env", "h_bad_goal", "h_contra", "h_no_env"):
        assert not (root / "teachers" / name).exists()


# --- safety: a pickle that names anything but the array reconstructors is refused unrun ---


class _Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


class _Eval:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return eval, (f"open({str(self.path)!r}, 'w').write('pwned')",)


class _RecordImports(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name, path=None, target=None):
        self.names.append(name)


@pytest.mark.parametrize("payload, refused", [(_Touch, "system"), (_Eval, "builtins.eval")])
def test_malicious_pickle_is_refused_and_never_runs(payload, refused, tmp_path, root):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    # Hidden inside a tuple that looks like a checkpoint.
    evil.write_bytes(pickle.dumps(({"log_alpha": np.zeros(())}, {"params": payload(marker)}, {})))
    with pytest.raises(DistillError, match=refused) as exc:
        import_scaling_crl(evil, "evil")
    assert "\n" not in str(exc.value) and "refused" in str(exc.value)
    assert not marker.exists()
    assert not (root / "teachers" / "evil").exists()


def test_refused_globals_are_not_even_imported():
    module = b"distill_never_imported_evil"
    # PROTO 4; SHORT_BINUNICODE module; SHORT_BINUNICODE "run"; STACK_GLOBAL; EMPTY_TUPLE; REDUCE; STOP
    data = b"\x80\x04\x8c" + bytes([len(module)]) + module + b"\x8c\x03run\x93)R."
    recorder = _RecordImports()
    sys.meta_path.insert(0, recorder)
    try:
        with pytest.raises(ModuleNotFoundError):
            pickle.loads(data)  # plain pickle would import (and then call) it ...
        assert "distill_never_imported_evil" in recorder.names
        recorder.names.clear()
        with pytest.raises(DistillError, match="distill_never_imported_evil.run"):
            safe_loads(data, "crafted.pkl")  # ... the allow-list unpickler never looks it up
        assert recorder.names == []
    finally:
        sys.meta_path.remove(recorder)


def test_numpy_pickles_of_both_layouts_load(fixtures_dir):
    """numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) jax-array pickles, plus plain ndarrays."""
    raw = {stem: (fixtures_dir / f"{stem}.pkl").read_bytes() for stem in CASES}
    assert b"numpy.core.multiarray" in raw["humanoid_d8_w64_jax0423"]
    assert b"numpy._core.multiarray" in raw["ant_d12_w32_jax010"]
    for stem in CASES:
        ckpt = read_checkpoint(fixtures_dir / f"{stem}.pkl")
        kernel = ckpt.actor["params"]["Dense_0"]["kernel"]
        assert kernel.dtype == np.float32 and kernel.flags.c_contiguous and kernel.flags.writeable
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(
        safe_loads(pickle.dumps({"a": arr, "f": np.asfortranarray(arr)}))["f"], arr
    )


# --- malformed files: one line each, nothing written ---


def _resave(tmp_path: Path, fixtures_dir: Path, edit) -> Path:
    ckpt = read_checkpoint(fixtures_dir / "ant_d12_w32_jax010.pkl")
    tree = [ckpt.alpha, ckpt.actor, ckpt.critic]
    edit(tree)
    out = tmp_path / "edited.pkl"
    out.write_bytes(pickle.dumps(tuple(tree)))
    return out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda good: good[: len(good) // 2], "not a readable checkpoint"),
        (lambda good: b"step,reward\n0,1.0\n", "not a readable checkpoint"),
        (lambda good: b"", "not a readable checkpoint"),
        (lambda good: pickle.dumps({"params": np.zeros(3)}), "not a scaling-crl checkpoint"),
        (lambda good: pickle.dumps(("a", "b", "c")), "not a parameter tree"),
    ],
    ids=["truncated", "text", "empty", "dict", "strings"],
)
def test_malformed_files_give_one_line_errors(make, message, tmp_path, fixtures_dir, root):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(make((fixtures_dir / "ant_d12_w32_jax010.pkl").read_bytes()))
    with pytest.raises(DistillError, match=message) as exc:
        import_scaling_crl(bad, "bad")
    assert "\n" not in str(exc.value)
    assert not (root / "teachers" / "bad").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t[1]["params"].pop("Dense_5"), "not numbered"),
        (lambda t: t[1]["params"].pop("LayerNorm_12"), "do not form a scaling-crl network"),
        (lambda t: t[2].pop("g_encoder"), "no 'g_encoder'"),
        (
            lambda t: t[2]["sa_encoder"]["params"]["Dense_3"].update(
                kernel=np.zeros((32, 31), np.float32)
            ),
            r"Dense_3/kernel has shape \(32, 31\), expected \(32, 32\)",
        ),
        (lambda t: t[1]["params"]["LayerNorm_2"].pop("scale"), "no 'scale'"),
    ],
)
def test_wrong_trees_give_one_line_errors(edit, message, tmp_path, fixtures_dir):
    bad = _resave(tmp_path, fixtures_dir, edit)
    with pytest.raises(DistillError, match=message) as exc:
        import_scaling_crl(bad, "bad_tree")
    assert "\n" not in str(exc.value)


def test_missing_file(root):
    with pytest.raises(DistillError, match="no such checkpoint"):
        import_scaling_crl(root / "nope.pkl", "nope")


# --- env dims without building envs, and info ---


@pytest.mark.parametrize("env", sorted(SCALING_CRL_ENV_DIMS))
def test_env_dims_table_matches_our_envs(env):
    """The dims an import checks against are those of the envs teachers will run in."""
    from distill.envs import ENV_FACTORIES

    assert env in ENV_FACTORIES
    try:
        spec = make_env(env).spec
    except DistillError as exc:  # an env whose module is not written yet
        pytest.skip(str(exc))
    assert SCALING_CRL_ENV_DIMS[env] == (spec.obs_dim, spec.goal_dim, spec.action_dim)


def test_info_on_imported_teacher(imported, capsys):
    teacher = imported["humanoid_d8_w64_jax0423"]
    assert main(["teacher", "info", "humanoid_d8_w64_jax0423"]) == 0
    out = capsys.readouterr().out
    assert "env: humanoid_u_maze" in out and "actor 8, critic 8" in out and "width 64" in out
    assert f"actor:      {networks.count_params(teacher.actor_params):,}" in out
    assert f"sa_encoder: {networks.count_params(teacher.critic_params['sa_encoder']):,}" in out
    total = networks.count_params(teacher.actor_params) + networks.count_params(
        teacher.critic_params
    )
    assert f"total:      {total:,}" in out
    assert "source_file: humanoid_d8_w64_jax0423.pkl" in out and "WARNING" not in out


def test_humanoid_1024_architecture_without_weights(capsys):
    directory = REPO / "teachers" / "humanoid_1024"
    assert not (directory / checkpoint.WEIGHTS_NAME).exists()
    with pytest.raises(
        DistillError,
        match=r"distill teacher import ckpt\.pkl --name humanoid_1024 --env humanoid_u_maze --force",
    ):
        load_teacher(directory)

    lines = describe(directory, random_init=True)
    assert "meaningless" in lines[0]
    text = "\n".join(lines)
    counts = param_counts(checkpoint.arch_from_toml(checkpoint.read_toml(directory), directory))
    assert (
        67e6 < counts.sa_encoder < 69e6
        and 67e6 < counts.g_encoder < 69e6
        and 33e6 < counts.actor < 35e6
    )
    assert (
        f"sa_encoder: {counts.sa_encoder:,} (68.0 M)" in text
        and f"actor:      {counts.actor:,} (34.0 M)" in text
    )
    assert "actor 512, critic 1024" in text

    assert main(["teacher", "info", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "MISSING" in out and "distill teacher import ckpt.pkl" in out and "--random-init" in out
    assert "meaningless" not in out


def _flax_trunk(rng, in_dim: int, width: int, depth: int, heads: tuple[int, ...]) -> dict:
    """A flax-named parameter dict as scaling-crl's modules lay it out (numbering in creation order)."""
    params = {}
    for k in range(depth + 1):
        fan_in = in_dim if k == 0 else width
        params[f"Dense_{k}"] = {
            "kernel": rng.standard_normal((fan_in, width)).astype(np.float32),
            "bias": rng.standard_normal(width).astype(np.float32),
        }
        params[f"LayerNorm_{k}"] = {
            "scale": rng.standard_normal(width).astype(np.float32),
            "bias": rng.standard_normal(width).astype(np.float32),
        }
    for h, out in enumerate(heads):
        params[f"Dense_{depth + 1 + h}"] = {
            "kernel": rng.standard_normal((width, out)).astype(np.float32),
            "bias": rng.standard_normal(out).astype(np.float32),
        }
    return {"params": params}


def _synthetic(path: Path, actor_depth: int, critic_depth: int, width: int = 4) -> dict:
    rng = np.random.default_rng(0)
    obs, goal, act = 5, 2, 3
    trees = (
        {"log_alpha": np.zeros((), np.float32)},
        _flax_trunk(rng, obs + goal, width, actor_depth, (act, act)),
        {
            "sa_encoder": _flax_trunk(rng, obs + act, width, critic_depth, (8,)),
            "g_encoder": _flax_trunk(rng, goal, width, critic_depth, (8,)),
        },
    )
    path.write_bytes(pickle.dumps(trees))
    return {"actor": trees[1]["params"], "sa": trees[2]["sa_encoder"]["params"]}


def test_depth_1024_import_stacks_layers_in_flax_order(tmp_path, root):
    """Layer k of block b is Dense_{1 + 4b + k}; at 1,024 layers names like Dense_1000 sort before
    Dense_2 as strings, so the mapping must go by number."""
    src = _synthetic(tmp_path / "deep.pkl", actor_depth=16, critic_depth=1024)
    teacher = load_teacher(import_scaling_crl(tmp_path / "deep.pkl", "deep", obs_dim=5, goal_dim=2))
    assert (teacher.arch.actor_depth, teacher.arch.critic_depth, teacher.arch.width) == (
        16,
        1024,
        4,
    )
    blocks = teacher.critic_params["sa_encoder"]["trunk"]["blocks"]
    assert blocks["dense"]["kernel"].shape == (256, 4, 4, 4)
    for b, k in [(0, 0), (2, 3), (249, 3), (255, 3)]:
        np.testing.assert_array_equal(
            blocks["dense"]["kernel"][b, k], src["sa"][f"Dense_{1 + 4 * b + k}"]["kernel"]
        )
        np.testing.assert_array_equal(
            blocks["norm"]["scale"][b, k], src["sa"][f"LayerNorm_{1 + 4 * b + k}"]["scale"]
        )
    np.testing.assert_array_equal(
        teacher.critic_params["sa_encoder"]["out"]["kernel"], src["sa"]["Dense_1025"]["kernel"]
    )
    np.testing.assert_array_equal(
        teacher.actor_params["mean"]["bias"], src["actor"]["Dense_17"]["bias"]
    )
    np.testing.assert_array_equal(
        teacher.actor_params["log_std"]["kernel"], src["actor"]["Dense_18"]["kernel"]
    )
    assert np.isfinite(
        np.asarray(teacher.critic(np.ones((2, 5)), np.zeros((2, 3)), np.ones((2, 2))))
    ).all()


def test_deeper_than_1024_is_refused(tmp_path):
    _synthetic(tmp_path / "too_deep.pkl", actor_depth=4, critic_depth=1028, width=2)
    with pytest.raises(DistillError, match="exceeds the 1,024 layers") as exc:
        import_scaling_crl(tmp_path / "too_deep.pkl", "too_deep")
    assert "\n" not in str(exc.value)
