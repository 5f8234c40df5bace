"""The goal curriculum: ring goals within reach, episodes counted when they end, the ring widening
only past the threshold, and its state surviving a checkpoint."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distill.errors import DistillError
from distill.teachers import crl
from distill.teachers import curriculum as cur

CFG = cur.CurriculumConfig(inner=0.6, radius=0.8, max_radius=1.2, step=0.2, threshold=0.5, window=4)


def test_ring_offsets_lie_in_the_ring_uniform_by_area():
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    d = np.linalg.norm(np.asarray(jax.vmap(lambda k: cur.ring_offset(k, 0.6, 1.4))(keys)), axis=-1)
    assert d.min() >= 0.6 - 1e-6 and d.max() <= 1.4 + 1e-6
    assert np.median(d) == pytest.approx(np.sqrt((0.6**2 + 1.4**2) / 2), abs=0.03)  # area median, not 1.0
    circle = np.linalg.norm(np.asarray(cur.ring_offset(keys[0], 0.8, 0.5)))  # outer below inner: the circle
    assert circle == pytest.approx(0.8)


def test_episodes_count_when_they_end_as_success_if_any_step_reached():
    state = cur.initial(CFG, 3)
    # env 0: reaches at t=1, ends at t=2 (success); env 1: ends at t=1 without reaching, then reaches
    # at t=3 in its next episode (still running); env 2: never ends.
    done = np.zeros((4, 3), bool)
    done[2, 0] = done[1, 1] = True
    success = np.zeros((4, 3), np.float32)
    success[1, 0] = success[3, 1] = success[0, 2] = 1.0
    state = cur.count_episodes(state, jnp.asarray(done), jnp.asarray(success))
    assert int(state.episodes) == 2 and int(state.successes) == 1
    np.testing.assert_array_equal(np.asarray(state.reached), [False, True, True])
    # env 1's running episode counts as a success when it ends later, even without reaching again
    done2 = np.zeros((2, 3), bool)
    done2[1, 1] = True
    state = cur.count_episodes(state, jnp.asarray(done2), jnp.zeros((2, 3), jnp.float32))
    assert int(state.episodes) == 3 and int(state.successes) == 2 and not bool(state.reached[1])


def _window(episodes: int, successes: int, radius: float = 0.8) -> cur.Curriculum:
    return cur.initial(CFG, 2).replace(episodes=jnp.asarray(episodes, jnp.int32),
                                       successes=jnp.asarray(successes, jnp.int32),
                                       radius=jnp.asarray(radius, jnp.float32))


def test_the_ring_widens_only_when_a_full_window_passes_the_threshold():
    open_window = cur.advance(_window(3, 3), CFG)  # 3 < window 4: no decision yet
    assert float(open_window.radius) == pytest.approx(0.8) and int(open_window.episodes) == 3
    assert float(open_window.last_rate) == -1.0

    passed = cur.advance(_window(4, 2), CFG)  # 50% >= 50%
    assert float(passed.radius) == pytest.approx(1.0) and int(passed.widenings) == 1
    assert int(passed.episodes) == 0 and int(passed.successes) == 0 and float(passed.last_rate) == 0.5

    failed = cur.advance(_window(5, 2), CFG)  # 40%: same ring, a new window
    assert float(failed.radius) == pytest.approx(0.8) and int(failed.widenings) == 0
    assert int(failed.episodes) == 0 and float(failed.last_rate) == pytest.approx(0.4)

    capped = cur.advance(_window(4, 4, radius=1.1), CFG)
    assert float(capped.radius) == pytest.approx(1.2)
    at_max = cur.advance(_window(4, 4, radius=1.2), CFG)
    assert float(at_max.radius) == pytest.approx(1.2) and int(at_max.widenings) == 0


def test_a_redrawn_goal_is_in_the_ring_and_in_the_observation(reacher):
    from conftest import SMALL_ENVS

    from distill.rollouts import batched_reset

    states = batched_reset(reacher)(jax.random.split(jax.random.PRNGKey(3), SMALL_ENVS))  # the shared compile
    state = jax.tree_util.tree_map(lambda x: x[0], states)
    fresh = cur.redraw_goal(reacher, state, 0.05, 0.1)
    offset = np.asarray(fresh.goal - reacher.achieved_goal(state.data))
    assert 0.05 - 1e-6 <= np.linalg.norm(offset) <= 0.1 + 1e-6
    np.testing.assert_allclose(np.asarray(fresh.obs[-reacher.spec.goal_dim:]), np.asarray(fresh.goal))
    np.testing.assert_array_equal(np.asarray(fresh.obs[:reacher.spec.obs_dim]),
                                  np.asarray(state.obs[:reacher.spec.obs_dim]))
    assert float(fresh.dist) == float(state.dist) and bool(fresh.done) == bool(state.done)


def test_curriculum_keys_are_checked():
    cfg = crl.CRLConfig.from_dict({"env": "go2", "goal_curriculum": True, "curriculum_radius": 1.0})
    assert cfg.curriculum_config.radius == 1.0 and cfg.curriculum_config.inner == 0.6
    with pytest.raises(DistillError, match=r"curriculum_inner <= curriculum_radius"):
        crl.CRLConfig.from_dict({"goal_curriculum": True, "curriculum_radius": 0.5})
    with pytest.raises(DistillError, match=r"curriculum_threshold in \(0, 1\]"):
        crl.CRLConfig.from_dict({"goal_curriculum": True, "curriculum_threshold": 1.5})


def test_a_checkpoint_without_curriculum_state_loads(tmp_path, reacher):
    """Runs checkpointed before the curriculum existed resume with a fresh ring."""
    from safetensors.numpy import load, save

    from distill.teachers.trainer import STATE_FILE, load_state, save_state

    cfg = crl.CRLConfig(env="reacher", actor_depth=4, critic_depth=4, width=16, num_envs=4, unroll_length=5,
                        batch_size=16, env_steps_per_sgd_step=10, total_env_steps=80, max_replay_size=50,
                        min_replay_size=5, alpha_lr=3e-3, eval_every=1000, checkpoint_every=1000)
    ts = crl.init_state(cfg, reacher)
    save_state(tmp_path, ts, cfg, {})
    flat = load((tmp_path / STATE_FILE).read_bytes())
    assert any(k.startswith(".curriculum") for k in flat)
    (tmp_path / STATE_FILE).write_bytes(save({k: v for k, v in flat.items() if not k.startswith(".curriculum")}))
    restored = load_state(tmp_path, ts)
    assert float(restored.curriculum.radius) == pytest.approx(cfg.curriculum_radius)
    np.testing.assert_array_equal(np.asarray(restored.actor["mean"]["kernel"]), np.asarray(ts.actor["mean"]["kernel"]))


@pytest.mark.slow
def test_curriculum_iterations_command_ring_goals_and_resume_identically(tmp_path, reacher):
    """With the ring on, every episode's goal lies in the ring around where it started, and a
    resumed run continues exactly (the ring's state included)."""
    from distill.rollouts import rollout
    from distill.teachers.trainer import load_state, save_state

    cfg = crl.CRLConfig(env="reacher", actor_depth=4, critic_depth=4, width=16, num_envs=4, unroll_length=30,
                        batch_size=16, env_steps_per_sgd_step=60, total_env_steps=480, max_replay_size=120,
                        min_replay_size=30, goal_curriculum=True, curriculum_inner=0.02, curriculum_radius=0.05,
                        curriculum_max_radius=0.2, curriculum_step=0.05, curriculum_threshold=0.01,
                        curriculum_window=2, eval_every=1000, checkpoint_every=1000)
    ts = crl.init_state(cfg, reacher)
    ring = cur.RingGoals(reacher, cfg.curriculum_inner, ts.curriculum.radius)
    _, steps = rollout(ring, crl.stochastic_actor, 120, ts.actor, ts.env_state, jax.random.PRNGKey(5))
    start = np.asarray(steps.t) == 0
    assert start.sum() >= 8  # 50-step episodes: every env started at least twice
    achieved = np.asarray(steps.obs)[..., list(reacher.spec.goal_indices)]
    offset = np.linalg.norm(np.asarray(steps.goal) - achieved, axis=-1)[start]
    assert np.all(offset >= 0.02 - 1e-5) and np.all(offset <= 0.05 + 1e-5)

    for _ in range(2):
        ts, _ = crl.iteration(cfg, reacher, ts)
    save_state(tmp_path, ts, cfg, {})
    for _ in range(2):
        ts, metrics = crl.iteration(cfg, reacher, ts)
    assert float(ts.curriculum.last_rate) >= 0  # windows of counted episodes closed
    assert float(metrics["goal_radius"]) == float(ts.curriculum.radius)
    resumed = load_state(tmp_path, crl.init_state(cfg, reacher))
    for _ in range(2):
        resumed, _ = crl.iteration(cfg, reacher, resumed)
    for a, b in zip(jax.tree_util.tree_leaves(ts), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
