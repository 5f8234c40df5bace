"""Students with memory: presets of each family, the history layout, and one function in every runtime
— PyTorch, the JAX mirror, ONNX Runtime (through the host stepper) — held equal over a sequence with
a reset inside; checkpoints round-trip; the export keeps its state explicit and TensorRT-8.5-ready."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

from distill.errors import DistillError
from distill.export.onnx_export import export_onnx, onnx_io
from distill.export.precision import make_fp16, make_int8_qdq
from distill.export.stepper import OnnxPolicy
from distill.export.trt_readiness import check_tensorrt85
from distill.students.checkpoint import load_student, save_student
from distill.students.history import HistoryLayout, HistoryMLPStudent
from distill.students.jax_mirror import (
    memory_init,
    memory_reset,
    memory_step,
    student_params_to_jax,
)
from distill.students.memory import Recurrence, act_sequence, build_student
from distill.students.presets import StudentPreset, load_presets

DIM, ACT, FIELDS = 6, 2, (2, 3, 1)
T = 24
PRESETS = {
    "mlp": StudentPreset("m", 2, 32),
    "history": StudentPreset("h", 2, 32, family="history", history=3),
    "gru": StudentPreset("g", 1, 32, family="gru", hidden=16, layers=2),
}


def make(family: str, seed: int = 1):
    rng = np.random.default_rng(seed)
    return build_student(PRESETS[family], DIM, ACT, obs_mean=rng.normal(size=DIM), obs_std=rng.uniform(0.5, 2, DIM),
                         seed=seed, fields=FIELDS)


@pytest.fixture(scope="module")
def sequence() -> tuple[np.ndarray, np.ndarray]:
    """Observations of three episodes (a reset at steps 9 and 15), on the normaliser's scale."""
    obs = np.random.default_rng(7).normal(size=(T, DIM)).astype(np.float32) * 2
    starts = np.zeros(T, bool)
    starts[[0, 9, 15]] = True
    return obs, starts


# ---------------------------------------------------------------- presets
def test_presets_file_has_a_history_and_a_gru_preset():
    presets = load_presets()
    families = {p.family for p in presets.values()}
    assert families == {"mlp", "history", "gru"}
    h = presets["hist4_2x256"]
    assert (h.history, h.depth, h.width, h.hidden, h.layers, h.recurrent) == (4, 2, 256, 0, 0, True)
    g = presets["gru64_2x128"]
    assert (g.hidden, g.layers, g.depth, g.width, g.history) == (64, 1, 2, 128, 1) and g.recurrent
    assert not presets["mlp_2x256"].recurrent


@pytest.mark.parametrize("table, match", [
    ('family = "lstm"\ndepth = 1\nwidth = 32', "family = 'lstm'"),
    ('family = "history"\ndepth = 1\nwidth = 32', "missing `history`"),
    ('family = "gru"\nhidden = 16\ndepth = 1\nwidth = 32', "missing `layers`"),
    ('family = "gru"\nhidden = 16\nlayers = 1\nhistory = 3\ndepth = 1\nwidth = 32', "sets history"),
    ('history = 4\ndepth = 1\nwidth = 32', "sets history"),
    ('family = "history"\nhistory = 1\ndepth = 1\nwidth = 32', "history = 1"),
    ('family = "gru"\nhidden = 4\nlayers = 1\ndepth = 1\nwidth = 32', "hidden = 4"),
])
def test_bad_family_tables_name_file_and_field(tmp_path, table, match):
    path = tmp_path / "presets.toml"
    path.write_text(f'default = "x"\n[presets.x]\n{table}\n')
    with pytest.raises(DistillError, match=match) as info:
        load_presets(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- the history layout
def test_history_stacks_each_field_oldest_first():
    layout = HistoryLayout(3, (2, 1))
    window = np.arange(9).reshape(3, 3)  # step j holds [3j, 3j+1, 3j+2]; step 0 the oldest
    assert layout.stack(window).tolist() == [0, 1, 3, 4, 6, 7, 2, 5, 8]
    assert layout.field_slices() == ((0, 6), (6, 9)) and layout.input_dim == 9
    assert layout.tile(np.array([10.0, 11.0, 12.0])).tolist() == [10, 11] * 3 + [12] * 3
    # at an episode's first steps the slots before it hold the first observation
    obs = np.arange(8, dtype=np.float32).reshape(4, 2)
    windows = HistoryLayout(3, (2,)).windows(obs)
    assert windows[0].tolist() == [[0, 1]] * 3 and windows[1].tolist() == [[0, 1], [0, 1], [2, 3]]


def test_history_normaliser_is_the_per_step_one_tiled():
    mean, std = np.arange(DIM, dtype=np.float32), np.linspace(0.5, 2, DIM).astype(np.float32)
    student = build_student(PRESETS["history"], DIM, ACT, mean, std, fields=FIELDS)
    assert isinstance(student, HistoryMLPStudent) and student.input_dim == 3 * DIM
    np.testing.assert_array_equal(student.obs_mean.numpy(), student.layout.tile(mean))
    np.testing.assert_array_equal(student.obs_std.numpy(), student.layout.tile(std))


# ---------------------------------------------------------------- one function in every runtime
def _jax_sequence(student, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    rec, params = Recurrence.of(student), student_params_to_jax(student)
    step = jax.jit(lambda p, m, o: memory_step(rec, p, m, o))
    memory, out = memory_init(rec, 1), []
    for t in range(len(obs)):
        if t and starts[t]:
            memory = memory_reset(rec, memory, jnp.array([True]))
        action, memory = step(params, memory, jnp.asarray(obs[t : t + 1]))
        out.append(np.asarray(action[0]))
    return np.stack(out)


@pytest.mark.parametrize("family", ["mlp", "history", "gru"])
def test_pytorch_jax_and_onnx_agree_over_a_sequence_with_resets(family, sequence, tmp_path):
    obs, starts = sequence
    student = make(family)
    want = act_sequence(student, obs, starts)
    assert want.shape == (T, ACT) and np.abs(want).max() <= 1.0
    np.testing.assert_allclose(_jax_sequence(student, obs, starts), want, atol=1e-5)
    export = export_onnx(student, tmp_path / "student.onnx")
    np.testing.assert_allclose(OnnxPolicy(export.path).run_sequence(obs, starts), want, atol=1e-5)
    if family != "mlp":  # memory matters: without the resets the actions after them differ
        no_reset = act_sequence(student, obs, np.eye(1, T, 0, dtype=bool)[0])
        assert np.abs(no_reset[9:] - want[9:]).max() > 1e-3
        np.testing.assert_allclose(no_reset[:9], want[:9], atol=1e-6)


@pytest.mark.parametrize("family", ["history", "gru"])
def test_checkpoints_round_trip_each_family(family, sequence, tmp_path):
    obs, starts = sequence
    student = make(family)
    save_student(student, tmp_path / "s", metadata={"round": 0})
    loaded = load_student(tmp_path / "s")
    assert type(loaded) is type(student) and loaded.config() == student.config()
    np.testing.assert_array_equal(act_sequence(loaded, obs, starts), act_sequence(student, obs, starts))


# ---------------------------------------------------------------- export
@pytest.fixture(scope="module")
def gru_export(tmp_path_factory):
    return export_onnx(make("gru"), tmp_path_factory.mktemp("gru") / "student.onnx")


def test_gru_export_takes_and_returns_its_state_at_opset17(gru_export):
    export = gru_export
    model = onnx.load(str(export.path))
    io = onnx_io(model)
    assert io == {"opset": 17, "inputs": {"obs": [1, DIM], "h_in": [2, 1, 16]},
                  "outputs": {"action": [1, ACT], "h_out": [2, 1, 16]}}
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("GRU") == 2 and "Loop" not in ops and "Scan" not in ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["distill.family"] == "gru" and "zeros" in meta["distill.state"]
    assert check_tensorrt85(model).ok and export.max_abs_err < 1e-5


def test_history_export_takes_the_stacked_window(tmp_path):
    student = make("history")
    io = onnx_io(onnx.load(str(export_onnx(student, tmp_path / "h.onnx").path)))
    assert io["inputs"] == {"obs": [1, 3 * DIM]} and io["outputs"] == {"action": [1, ACT]}


def test_gru_variants_keep_the_gru_float_and_stay_close(gru_export, sequence, tmp_path):
    export = gru_export
    obs, starts = sequence
    fp16 = make_fp16(export.path, tmp_path / "g16.onnx", eval_obs=obs, eval_starts=starts)
    int8 = make_int8_qdq(export.path, tmp_path / "g8.onnx", calibration_obs=obs, calibration_starts=starts,
                         eval_obs=obs, eval_starts=starts)
    assert fp16.max_abs_err < 1e-2 and int8.max_abs_err < 0.2 and int8.qdq_nodes > 0
    model = onnx.load(str(int8.path))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    for node in (n for n in model.graph.node if n.op_type == "GRU"):
        assert all(producers.get(i) != "DequantizeLinear" for i in node.input)  # the GRU stays float
    gemm_inputs = [producers.get(n.input[0]) for n in model.graph.node if n.op_type == "Gemm"]
    assert gemm_inputs and all(p == "DequantizeLinear" for p in gemm_inputs)  # the head is int8
    assert check_tensorrt85(model).ok and check_tensorrt85(onnx.load(str(fp16.path))).ok


def test_unknown_family_in_a_checkpoint_is_refused(tmp_path):
    save_student(make("gru"), tmp_path / "s")
    toml = (tmp_path / "s" / "student.toml").read_text().replace('family = "gru"', 'family = "lstm"')
    (tmp_path / "s" / "student.toml").write_text(toml)
    with pytest.raises(DistillError, match="family 'lstm'"):
        load_student(tmp_path / "s")


# ---------------------------------------------------------------- in the MJX rollout
@pytest.mark.parametrize("family", ["history", "gru"])
def test_rollout_carries_memory_through_auto_resets_as_pytorch_does(family, reacher):
    """The student drives the reacher envs through 110 steps of 50-step episodes (two auto-resets
    each), on the physics step every reacher test shares: its actions are those of the PyTorch
    student stepping through each env's observations, its memory started afresh at each episode's
    first step."""
    from conftest import SMALL_ENVS

    from distill.carry import SEEN, CarryPolicy, rollout_carry
    from distill.rollouts import reset_batch

    student = build_student(PRESETS[family], 13, 2, obs_std=np.full(13, 0.5), seed=3)
    policy = CarryPolicy(Recurrence.of(student))
    state = reset_batch(reacher, jax.random.PRNGKey(0), SMALL_ENVS)
    _, _, steps = rollout_carry(reacher, policy, 110, {"student": student_params_to_jax(student)}, state,
                                policy.init(SMALL_ENVS), jax.random.PRNGKey(1))
    seen, t, actions = np.asarray(steps.extras[SEEN]), np.asarray(steps.t), np.asarray(steps.action)
    np.testing.assert_array_equal(seen, np.asarray(steps.obs))  # no perturbations: it reads the observation
    assert (t[[0, 50, 100]] == 0).all() and (t[49] == 49).all()
    for e in range(8):
        np.testing.assert_allclose(actions[:, e], act_sequence(student, seen[:, e], t[:, e] == 0), atol=2e-5)
