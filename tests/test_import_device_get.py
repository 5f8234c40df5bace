"""Checkpoints saved after `jax.device_get` (numpy arrays and numpy scalars, any pickle protocol)
import exactly as the same tree of jax arrays does, and the allow-list still refuses code."""

from __future__ import annotations

import _codecs
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distill.errors import DistillError
from distill.teachers import load_teacher
from distill.teachers.importer import import_scaling_crl, read_checkpoint
from distill.teachers.safe_unpickle import safe_loads

OBS, GOAL, ACT, WIDTH, DEPTH, REPR = 5, 2, 3, 8, 4, 6


def _flax_net(rng: np.random.Generator, in_dim: int, heads: tuple[int, ...]) -> dict:
    """scaling-crl's flax layout: Dense_0…Dense_{D+heads}, LayerNorm_0…LayerNorm_D."""
    params = {}
    for k in range(DEPTH + 1):
        params[f"Dense_{k}"] = {"kernel": rng.standard_normal((in_dim if k == 0 else WIDTH, WIDTH)).astype(np.float32),
                                "bias": rng.standard_normal(WIDTH).astype(np.float32)}
        params[f"LayerNorm_{k}"] = {"scale": rng.standard_normal(WIDTH).astype(np.float32),
                                    "bias": rng.standard_normal(WIDTH).astype(np.float32)}
    for h, out in enumerate(heads):
        params[f"Dense_{DEPTH + 1 + h}"] = {"kernel": rng.standard_normal((WIDTH, out)).astype(np.float32),
                                           "bias": rng.standard_normal(out).astype(np.float32)}
    return {"params": params}


def _device_get_tree() -> tuple[dict, dict, dict]:
    """(alpha, actor, critic) as `jax.device_get` returns a scaling-crl state: numpy arrays, and a
    numpy scalar where the trainer held a scalar."""
    rng = np.random.default_rng(0)
    alpha = {"log_alpha": np.float32(-1.25), "step": np.int64(4096)}
    actor = _flax_net(rng, OBS + GOAL, (ACT, ACT))
    critic = {"sa_encoder": _flax_net(rng, OBS + ACT, (REPR,)), "g_encoder": _flax_net(rng, GOAL, (REPR,))}
    return alpha, actor, critic


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_ROOT", str(tmp_path / "root"))
    return tmp_path / "root"


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_device_get_checkpoint_imports_like_jax_arrays(protocol, root, tmp_path):
    tree = _device_get_tree()
    assert isinstance(tree[0]["log_alpha"], np.generic)
    numpy_pkl, jax_pkl = tmp_path / "numpy.pkl", tmp_path / "jax.pkl"
    numpy_pkl.write_bytes(pickle.dumps(tree, protocol=protocol))
    jax_pkl.write_bytes(pickle.dumps(jax.tree_util.tree_map(jnp.asarray, tree)))
    assert b"_reconstruct_array" in jax_pkl.read_bytes() and b"_reconstruct_array" not in numpy_pkl.read_bytes()

    ckpt = read_checkpoint(numpy_pkl)
    assert ckpt.alpha["log_alpha"].shape == () and ckpt.alpha["log_alpha"] == np.float32(-1.25)
    assert ckpt.alpha["step"].dtype == np.int64 and int(ckpt.alpha["step"]) == 4096
    dense_5 = tree[1]["params"]["Dense_5"]["kernel"]
    np.testing.assert_array_equal(ckpt.actor["params"]["Dense_5"]["kernel"], dense_5)

    import_scaling_crl(numpy_pkl, "from_numpy", obs_dim=OBS, goal_dim=GOAL)
    import_scaling_crl(jax_pkl, "from_jax", obs_dim=OBS, goal_dim=GOAL)
    from_numpy, from_jax = load_teacher("from_numpy"), load_teacher("from_jax")
    assert from_numpy.weights_identity == from_jax.weights_identity
    assert from_numpy.manifest.provenance["log_alpha"] == -1.25
    blocks = np.asarray(from_numpy.actor_params["trunk"]["blocks"]["dense"]["kernel"])
    np.testing.assert_array_equal(blocks[0, 3], tree[1]["params"]["Dense_4"]["kernel"])
    obs = np.random.default_rng(1).standard_normal((4, OBS + GOAL)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(from_numpy.act(obs)), np.asarray(from_jax.act(obs)))


def test_fortran_and_strided_arrays_under_protocol_5():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = safe_loads(pickle.dumps({"f": np.asfortranarray(a), "s": a[:, ::2], "c": a}, protocol=5))
    for key, want in (("f", a), ("s", a[:, ::2]), ("c", a)):
        np.testing.assert_array_equal(got[key], want)
        assert got[key].flags.c_contiguous and got[key].flags.writeable


def _numpy_scalar():
    """numpy's scalar reconstructor (numpy 2 moved it from numpy.core to numpy._core)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:
        from numpy.core.multiarray import scalar
    return scalar


class _Reduce:
    """Pickles as `fn(*args)`: how a crafted file names any callable it likes."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("leaf, refused", [
    (lambda marker: _Reduce(os.system, f"touch {marker}"), "system"),
    (lambda marker: _Reduce(exec, f"open({str(marker)!r}, 'w')"), r"builtin\w*\.exec"),
    (lambda marker: _Reduce(_numpy_scalar(), np.dtype("O"), 1), "not a readable checkpoint"),
    (lambda marker: _Reduce(_codecs.encode, "x", "rot13"), "not a readable checkpoint"),
], ids=["os.system", "exec", "object-scalar", "codecs-other-than-latin1"])
def test_code_and_objects_inside_a_numpy_tree_are_refused(leaf, refused, protocol, tmp_path, root):
    alpha, actor, critic = _device_get_tree()
    marker = tmp_path / "pwned"
    actor["params"]["Dense_0"]["bias"] = leaf(marker)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps((alpha, actor, critic), protocol=protocol))
    with pytest.raises(DistillError, match=refused) as exc:
        import_scaling_crl(evil, "evil", obs_dim=OBS, goal_dim=GOAL)
    assert "\n" not in str(exc.value)
    assert not marker.exists() and not (root / "teachers" / "evil").exists()
