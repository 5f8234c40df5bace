"""The CRL trainer: goal relabelling draws future states of the same episode, and a run resumed
from a checkpoint continues exactly as an uninterrupted one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distill.teachers import crl
from distill.teachers.trainer import load_state, save_state

CAP, N, OBS, EP = 40, 3, 5, 10


def _buffer(total_steps: int, episode_shift: int = 0) -> crl.Buffer:
    """Rows where the state's first entry is the global step, so a goal reveals its source row."""
    buf = crl.Buffer(
        state=jnp.zeros((CAP, N, OBS)), action=jnp.zeros((CAP, N, 2)), t=jnp.zeros((CAP, N), jnp.int32),
        episode=jnp.zeros((CAP, N), jnp.int32), step_id=jnp.zeros((CAP,), jnp.int32),
        ptr=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32), total=jnp.zeros((), jnp.int32),
    )
    steps = np.arange(total_steps)
    state = np.zeros((total_steps, N, OBS), np.float32)
    state[..., 0] = steps[:, None]
    state[..., 1] = np.arange(N)[None, :]
    t = np.broadcast_to((steps % EP)[:, None], (total_steps, N))
    episode = np.broadcast_to((steps // EP)[:, None] + episode_shift, (total_steps, N))
    return crl.insert(buf, jnp.asarray(state), jnp.zeros((total_steps, N, 2)), jnp.asarray(t, jnp.int32),
                      jnp.asarray(episode, jnp.int32))


@pytest.mark.parametrize("total", [25, 95])  # buffer partly filled, and wrapped around the ring
def test_relabelled_goals_come_from_the_future_of_the_same_episode(total):
    buf = _buffer(total)
    state, _, goal = crl.sample_batch(buf, jax.random.PRNGKey(0), 4096, (0, 1), EP, 0.7)
    src, dst = np.asarray(state[:, 0]), np.asarray(goal[:, 0])
    assert np.array_equal(np.asarray(state[:, 1]), np.asarray(goal[:, 1]))  # same env
    assert np.all(dst >= src) and np.all(dst < total)
    assert np.all(dst // EP == src // EP)  # same episode
    assert np.all(src >= total - CAP)  # only rows still in the ring
    last = src % EP == EP - 1
    assert np.all(dst[last] == src[last])  # nothing after the last step: its own state
    offsets = (dst - src)[~last & (src <= total - EP)].astype(np.int64)
    assert offsets.min() == 1
    # P(k) ∝ 0.7^(k-1): offset 1 is the most frequent, and more frequent than 3
    counts = np.bincount(offsets)
    assert counts[1] > counts[2] > counts[3]


def _tiny_cfg() -> crl.CRLConfig:
    """num_envs = SMALL_ENVS: the envs' reset is the one every reacher test compiled (disk cache)."""
    from conftest import SMALL_ENVS

    return crl.CRLConfig(env="reacher", actor_depth=4, critic_depth=4, width=16, num_envs=SMALL_ENVS,
                         unroll_length=5, batch_size=16, env_steps_per_sgd_step=80, total_env_steps=640,
                         max_replay_size=50, min_replay_size=5, alpha_lr=3e-3, eval_every=1000,
                         checkpoint_every=1000)


def test_resume_continues_identically(tmp_path, reacher):
    cfg = _tiny_cfg()
    ts = crl.init_state(cfg, reacher)
    for _ in range(2):
        ts, _ = crl.iteration(cfg, reacher, ts)
    save_state(tmp_path, ts, cfg, {})
    for _ in range(2):
        ts, m = crl.iteration(cfg, reacher, ts)
    assert int(ts.sgd_steps) == 4 * cfg.sgd_steps  # the buffer was warm from the first iteration
    assert np.isfinite(float(m["critic_loss"]))

    resumed = load_state(tmp_path, crl.init_state(cfg, reacher))
    assert int(resumed.iteration) == 2
    for _ in range(2):
        resumed, _ = crl.iteration(cfg, reacher, resumed)
    for a, b in zip(jax.tree_util.tree_leaves(ts), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_config_from_toml_table_has_paper_defaults_and_refuses_typos():
    from distill.dagger import DaggerConfig
    from distill.errors import DistillError

    cfg = crl.CRLConfig.from_dict({"env": "ant", "actor_depth": 16})
    assert (cfg.env, cfg.actor_depth, cfg.batch_size, cfg.num_envs, cfg.unroll_length) == ("ant", 16, 512, 512, 62)
    assert cfg.sgd_steps == 512 * 62 // 40  # the paper's update-to-data ratio of about 1:40
    with pytest.raises(DistillError, match=r"teacher\.toml.*unknown keys.*batchsize"):
        crl.CRLConfig.from_dict({"batchsize": 256}, "teachers/x/teacher.toml [training.config]")
    with pytest.raises(DistillError, match=r"\[distill\]: rounds = .three. is str, expected an integer"):
        DaggerConfig.from_dict({"rounds": "three"})


@pytest.mark.slow
def test_go2_teacher_trains_on_its_privileged_state():
    """On the Go2 the buffer holds the teacher's 50-dim state (not the student's 42), relabelled
    goals are stored base xy from the same env's future, and evaluation reads the teacher's view."""
    from distill.envs import make_env
    from distill.rollouts import rollout
    from distill.teachers.trainer import evaluate_actor

    env = make_env("go2")
    cfg = crl.CRLConfig(env="go2", actor_depth=4, critic_depth=4, width=16, num_envs=4, unroll_length=6,
                        batch_size=32, env_steps_per_sgd_step=12, total_env_steps=48, max_replay_size=20,
                        min_replay_size=6, eval_every=1000, checkpoint_every=1000)
    ts = crl.init_state(cfg, env)
    _, k_roll, _ = jax.random.split(ts.key, 3)
    _, steps = rollout(env, crl.stochastic_actor, cfg.unroll_length, ts.actor, ts.env_state, k_roll)
    ts, metrics = crl.iteration(cfg, env, ts)  # the same rollout, then one warm update

    assert int(ts.sgd_steps) == cfg.sgd_steps and np.isfinite(float(metrics["critic_loss"]))
    stored = np.asarray(ts.buffer.state[: cfg.unroll_length])
    teacher_obs, student_obs = np.asarray(steps.obs), np.asarray(steps.student_obs)
    assert stored.shape[-1] == env.spec.obs_dim == 50 and student_obs.shape[-1] == 44
    np.testing.assert_array_equal(stored, teacher_obs[..., :50])
    np.testing.assert_allclose(stored[0, :, 42:45], np.tile([0.0, 0.0, 0.28], (4, 1)), atol=1e-6)  # start pose

    state, _, goal = crl.sample_batch(ts.buffer, jax.random.PRNGKey(1), 256, env.spec.goal_indices,
                                      env.spec.episode_length, cfg.gamma)
    state, goal = np.asarray(state), np.asarray(goal)
    for s, g in zip(state, goal):
        t, e = np.argwhere(np.all(stored == s, axis=-1))[0]
        future_xy = stored[t:, e, 42:44]
        assert np.any(np.all(future_xy == g, axis=-1))
    assert np.abs(goal - state[:, 42:44]).max() > 0  # some goals come from later, moved states

    ev = evaluate_actor(env, ts.actor, jax.random.PRNGKey(2), 4)
    assert ev.episodes == 4 and np.isfinite(ev.final_distance)


def test_random_baseline_is_written_beside_the_curve(tmp_path, capsys):
    """`distill teacher baseline`: a uniform random arm on reacher_8's evaluation goals scores far
    below the trained teacher on time at goal and final-step success. Its recipe with 32 evaluation
    episodes (`--config`), so the test steps the batch every reacher test compiles."""
    import csv
    import tomllib

    import tomli_w
    from conftest import SMALL_ENVS

    from distill.cli import main
    from distill.paths import teachers_dir
    from distill.teachers.checkpoint import read_toml

    recipe = tomllib.loads((teachers_dir() / "reacher_8" / "teacher.toml").read_text())["training"]
    recipe["config"]["eval_episodes"] = SMALL_ENVS
    config = tmp_path / "recipe.toml"
    config.write_text(tomli_w.dumps({"training": recipe}))
    assert main(["teacher", "baseline", "--name", "reacher_8", "--config", str(config), "--out", str(tmp_path)]) == 0
    assert "random policy on reacher" in capsys.readouterr().out
    rows = {r["goals"]: r for r in csv.DictReader((tmp_path / "random_baseline.csv").read_text().splitlines())}
    assert set(rows) == {"curve", "final"}
    teacher = read_toml(teachers_dir() / "reacher_8")["metrics"]
    for r in rows.values():
        assert int(r["episodes"]) == SMALL_ENVS and int(r["episode_length"]) == 50
        assert float(r["time_at_goal"]) < 10 < teacher["time_at_goal"]
        assert float(r["final_success"]) < 0.3 < teacher["final_success"]
    assert rows["curve"]["final_distance"] != rows["final"]["final_distance"]  # other goals
    assert 0 < float(rows["curve"]["reach_mean"]) <= float(rows["curve"]["reach_p95"])


def test_reach_is_the_farthest_point_of_each_first_episode():
    from distill.rollouts import Steps
    from distill.teachers.baseline import reach

    T, n = 6, 2
    obs = np.zeros((T, n, 3), np.float32)
    obs[:, 0, 1] = [0, 1, 3, 2, 2, 2]  # env 0 walks to 3 along its goal index 1 and back to 2
    obs[:, 1, 1] = [0, 1, 1, 9, 9, 9]  # env 1's episode ends at step 2: the 9s are the next one's
    done = np.zeros((T, n), bool)
    done[2, 1] = True
    steps = Steps(obs=obs, student_obs=None, goal=np.zeros((T, n, 1)), action=np.zeros((T, n, 1)),
                  t=np.zeros((T, n)), episode=np.zeros((T, n)), done=done, success=np.zeros((T, n)),
                  dist=np.zeros((T, n)), extras={})
    r = reach(steps, (1,))
    assert r.mean == pytest.approx(2.0) and r.p95 == pytest.approx(2.9)


def test_first_episode_alive_keeps_the_done_step_and_drops_the_next_episode():
    from distill.rollouts import episode_metrics, first_episode_alive

    done = np.zeros((5, 3), bool)
    done[1, 0] = True  # env 0 ends at step 1; env 1 at step 3 and again at 4; env 2 never
    done[3, 1] = done[4, 1] = True
    np.testing.assert_array_equal(first_episode_alive(done),
                                  [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1], [0, 0, 1]])
    success = np.zeros((5, 3))
    success[2:, 0] = 1.0  # only after env 0's episode ended: not its own
    m = episode_metrics(done, success, np.ones((5, 3)), 5)
    assert m.success == 0.0 and m.time_at_goal == 0.0
