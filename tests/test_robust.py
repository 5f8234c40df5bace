"""The robot's imperfections during distillation: observation noise per field, stale observations and
action delay, the same rules in JAX and numpy, refused when misconfigured."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distill import robust
from distill.dagger import DaggerConfig
from distill.errors import DistillError

FIELDS = [("ball", 0, 2), ("ball_vel", 2, 4), ("goal", 4, 6)]
NAMES = ("ball_x", "ball_y", "ball_vx", "ball_vy", "goal_x", "goal_y")


def test_scales_resolve_per_field_or_entry():
    p = robust.Perturbation.resolve("gaussian", {"ball": 0.1, "goal_y": 0.3}, 2, 0.25, FIELDS, NAMES)
    assert p.scales == (0.1, 0.1, 0.0, 0.0, 0.0, 0.3) and p.delay == 2 and p.stale_prob == 0.25 and p.active
    assert "gaussian observation noise" in p.describe() and "action delay 2" in p.describe()
    with pytest.raises(DistillError, match=r"obs_noise_scale\.bal: no such field.*ball, ball_vel, goal"):
        robust.Perturbation.resolve("gaussian", {"bal": 0.1}, 0, 0.0, FIELDS, NAMES)
    assert not robust.Perturbation.resolve("none", {}, 0, 0.0, FIELDS, NAMES).active


@pytest.mark.parametrize("table, match", [
    ({"obs_noise": "laplace"}, "obs_noise = 'laplace'"),
    ({"obs_noise": "gaussian"}, "needs obs_noise_scale"),
    ({"obs_noise_scale": {"ball": 0.1}}, 'obs_noise = "none"'),
    ({"obs_noise": "uniform", "obs_noise_scale": {"ball": -1.0}}, "non-negative"),
    ({"action_delay": -1}, "action_delay = -1"),
    ({"stale_obs_prob": 1.0}, "stale_obs_prob = 1.0"),
])
def test_bad_distill_keys_are_refused(table, match):
    with pytest.raises(DistillError, match=match):
        DaggerConfig.from_dict(table)


def test_config_defaults_are_off_and_recorded():
    cfg = DaggerConfig()
    assert not cfg.perturbed and cfg.obs_noise == "none" and cfg.action_delay == 0
    noisy = DaggerConfig.from_dict({"obs_noise": "uniform", "obs_noise_scale": {"ball": 0.1}, "action_delay": 1})
    assert noisy.perturbed and hash(noisy) == hash(noisy)
    from dataclasses import asdict

    assert asdict(noisy)["obs_noise_scale"] == {"ball": 0.1} and asdict(noisy)["action_delay"] == 1


def _jax_run(p: robust.Perturbation, obs: np.ndarray, actions: np.ndarray, done: np.ndarray, seed: int = 0):
    state = robust.perturb_init(p, obs.shape[1], obs.shape[2], actions.shape[2])
    seen, executed = [], []
    for t, key in enumerate(jax.random.split(jax.random.PRNGKey(seed), len(obs))):
        s, state = robust.perceive(p, state, jnp.asarray(obs[t]), key)
        e, state = robust.actuate(p, state, jnp.asarray(actions[t]))
        state = robust.perturb_reset(p, state, jnp.asarray(done[t]))
        seen.append(np.asarray(s))
        executed.append(np.asarray(e))
    return np.stack(seen), np.stack(executed)


def _numpy_run(p: robust.Perturbation, obs, actions, done, seed: int = 0):
    r = robust.NumpyPerturbation(p, obs.shape[1], obs.shape[2], actions.shape[2], seed)
    seen, executed = [], []
    for t in range(len(obs)):
        seen.append(r.perceive(obs[t]))
        executed.append(r.actuate(actions[t]))
        r.reset(done[t])
    return np.stack(seen), np.stack(executed)


@pytest.mark.parametrize("run", [_jax_run, _numpy_run])
def test_delay_holds_actions_back_and_starts_each_episode_empty(run):
    T, B = 10, 2
    obs = np.zeros((T, B, 1), np.float32)
    actions = np.arange(1, T * B + 1, dtype=np.float32).reshape(T, B, 1)
    done = np.zeros((T, B), bool)
    done[4, 0] = True  # env 0's episode ends after step 4
    _, executed = run(robust.Perturbation(delay=2), obs, actions, done)
    env1 = executed[:, 1, 0]
    np.testing.assert_array_equal(env1, [0, 0, *actions[:-2, 1, 0]])
    env0 = executed[:, 0, 0]
    np.testing.assert_array_equal(env0[:5], [0, 0, actions[0, 0, 0], actions[1, 0, 0], actions[2, 0, 0]])
    np.testing.assert_array_equal(env0[5:], [0, 0, actions[5, 0, 0], actions[6, 0, 0], actions[7, 0, 0]])


@pytest.mark.parametrize("run", [_jax_run, _numpy_run])
def test_noise_lands_on_the_named_fields_only_with_its_scale(run):
    T, B = 400, 8
    obs = np.tile(np.arange(6, dtype=np.float32), (T, B, 1))
    p = robust.Perturbation("gaussian", (0.1, 0.1, 0, 0, 0, 0.3))
    seen, _ = run(p, obs, np.zeros((T, B, 2), np.float32), np.zeros((T, B), bool))
    noise = (seen - obs).reshape(-1, 6)
    np.testing.assert_array_equal(noise[:, 2:5], 0.0)
    np.testing.assert_allclose(noise.std(0)[[0, 1, 5]], [0.1, 0.1, 0.3], rtol=0.08)
    assert abs(noise.mean()) < 0.01
    uniform, _ = run(robust.Perturbation("uniform", (0.5,) * 6), obs, np.zeros((T, B, 2), np.float32),
                     np.zeros((T, B), bool))
    u = uniform - obs
    assert np.abs(u).max() <= 0.5 and np.abs(u).max() > 0.49


@pytest.mark.parametrize("run", [_jax_run, _numpy_run])
def test_stale_observations_repeat_the_last_one_never_at_an_episode_start(run):
    T, B = 300, 4
    obs = np.arange(T * B, dtype=np.float32).reshape(T, B, 1)
    done = np.zeros((T, B), bool)
    done[99::100] = True
    seen, _ = run(robust.Perturbation(stale_prob=0.3), obs, np.zeros((T, B, 1), np.float32), done)
    repeated = seen[1:] == seen[:-1]
    assert 0.2 < repeated.mean() < 0.4
    assert np.all(np.isin(seen, obs))  # only observations it was given
    np.testing.assert_array_equal(seen[[0, 100, 200]], obs[[0, 100, 200]])  # fresh at every start
    stale_or_fresh = (seen[1:] == obs[1:]) | repeated
    assert stale_or_fresh.all()
