"""Contrastive RL (scaling-crl's recipe) as pure functions over one `TrainState` pytree.

One jit'd `iteration` collects `unroll_length` steps from every env with the stochastic actor,
appends them to a per-env ring buffer, then (once the buffer holds `min_replay_size` steps) runs
`sgd_steps` updates, each on a fresh batch whose goals are relabelled from future states of the
same episode (offset ~ truncated geometric with the discount). Losses as scaling-crl:
  critic: forward InfoNCE over the batch, energy -||phi(s,a) - psi(g)||, + 0.1 * logsumexp^2;
  actor:  SAC-style, E[alpha * log pi(a|s,g) - Q(s,a,g)];
  alpha:  learned, target entropy -entropy_param * |A|.
Everything lives in the state (including the PRNG key, buffer, env states and the goal
curriculum), so a checkpoint of it resumes with an identical continuation. With `goal_curriculum`
the commanded goals come from a ring around each episode's start that widens with success
(`distill.teachers.curriculum`); relabelling is unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax

from distill.config import from_table
from distill.envs.base import EnvState, GoalEnv
from distill.rollouts import batched_reset, rollout
from distill.teachers import curriculum, networks
from distill.teachers.networks import CRLArch


@dataclass(frozen=True)
class CRLConfig:
    """Hyper-parameters; defaults are the paper's (scaling-crl train.py)."""

    env: str = "reacher"
    actor_depth: int = 4
    critic_depth: int = 4
    width: int = 256
    num_envs: int = 512
    unroll_length: int = 62
    batch_size: int = 512
    env_steps_per_sgd_step: int = 40
    """Update-to-data ratio 1:40: sgd steps per iteration = num_envs * unroll_length / this."""
    total_env_steps: int = 50_000_000
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    logsumexp_penalty: float = 0.1
    entropy_param: float = 0.5
    max_replay_size: int = 10_000
    """Buffer capacity in steps per env."""
    min_replay_size: int = 1_000
    """Steps per env collected before the first update."""
    eval_every: int = 10
    """Iterations between evaluations (and CSV rows)."""
    eval_episodes: int = 256
    checkpoint_every: int = 10
    """Iterations between resumable checkpoints."""
    remat: bool = False
    """Rematerialise residual blocks in the backward pass (memory for compute, deep nets)."""
    seed: int = 0
    actor_head_scale: float = 1.0
    """Multiplies the initial kernels of the actor's mean and log-std heads (1.0: the paper's init).
    The trunk's residual stream grows with depth (rms ~0.9 at depth 4, 2.5 at 32, 4.3 at 64, width
    128), and the heads' outputs with it: at 1.0 a depth-64 actor can start saturated (seed 0: half
    its log-stds at the minimum, half its actions at +-1), its entropy far below the target, so alpha
    climbs while the tanh gradients vanish. 0.1 starts every depth near log-std -1.5, actions near 0."""
    goal_curriculum: bool = False
    """Command goals from a ring around each episode's start that widens with success, instead of
    the env's own goals (open ground: a maze's walls are not checked). Evaluation keeps the env's."""
    curriculum_inner: float = 0.6
    """Inner radius of the ring, m: beyond the success radius, so no episode succeeds standing still."""
    curriculum_radius: float = 0.8
    """Outer radius at the start, m: within reach of exploration (the Go2's success radius 0.5 plus
    the ~0.3 m a random base strays in an episode)."""
    curriculum_max_radius: float = 3.0
    """The outer radius stops here (the Go2 env's own goals lie 1-3 m away)."""
    curriculum_step: float = 0.2
    """How far the outer radius moves out when a window's success passes the threshold, m."""
    curriculum_threshold: float = 0.5
    """Fraction of a window's collection episodes (stochastic actor) that must reach their goal."""
    curriculum_window: int = 256
    """Collection episodes per decision."""

    def __post_init__(self) -> None:
        if self.actor_head_scale <= 0:
            raise ValueError(f"actor_head_scale must be > 0, got {self.actor_head_scale}")
        if self.goal_curriculum:
            if not 0 <= self.curriculum_inner <= self.curriculum_radius <= self.curriculum_max_radius:
                raise ValueError("the curriculum needs 0 <= curriculum_inner <= curriculum_radius <= "
                                 f"curriculum_max_radius, got {self.curriculum_inner}, {self.curriculum_radius}, "
                                 f"{self.curriculum_max_radius}")
            if self.curriculum_step <= 0 or not 0 < self.curriculum_threshold <= 1 or self.curriculum_window < 1:
                raise ValueError("curriculum_step must be > 0, curriculum_threshold in (0, 1] and "
                                 "curriculum_window >= 1")

    @property
    def curriculum_config(self) -> curriculum.CurriculumConfig:
        return curriculum.CurriculumConfig(
            inner=self.curriculum_inner, radius=self.curriculum_radius, max_radius=self.curriculum_max_radius,
            step=self.curriculum_step, threshold=self.curriculum_threshold, window=self.curriculum_window,
        )

    @property
    def sgd_steps(self) -> int:
        return max(1, self.num_envs * self.unroll_length // self.env_steps_per_sgd_step)

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.unroll_length

    @property
    def iterations(self) -> int:
        return -(-self.total_env_steps // self.env_steps_per_iteration)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "[training.config]") -> CRLConfig:
        return from_table(cls, d, where)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Buffer:
    """Ring buffer of per-env trajectories: rows are time, columns are envs."""

    state: jax.Array  # [cap, N, obs_dim]
    action: jax.Array  # [cap, N, A]
    t: jax.Array  # [cap, N]
    episode: jax.Array  # [cap, N]
    step_id: jax.Array  # [cap] global collection step of each row
    ptr: jax.Array
    size: jax.Array
    total: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TrainState:
    actor: Any
    critic: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    buffer: Buffer
    env_state: EnvState
    key: jax.Array
    env_steps: jax.Array
    sgd_steps: jax.Array
    iteration: jax.Array
    curriculum: curriculum.Curriculum
    """The goal ring's state (kept, unused, without `goal_curriculum`)."""


@dataclass(frozen=True)
class Optimizers:
    actor: optax.GradientTransformation
    critic: optax.GradientTransformation
    alpha: optax.GradientTransformation


def make_optimizers(cfg: CRLConfig) -> Optimizers:
    return Optimizers(optax.adam(cfg.actor_lr), optax.adam(cfg.critic_lr), optax.adam(cfg.alpha_lr))


def arch_for(cfg: CRLConfig, env: GoalEnv) -> CRLArch:
    s = env.spec
    return CRLArch(
        obs_dim=s.obs_dim, goal_dim=s.goal_dim, action_dim=s.action_dim,
        actor_depth=cfg.actor_depth, critic_depth=cfg.critic_depth, width=cfg.width,
    )


def scale_heads(actor: Any, scale: float) -> Any:
    """The actor with its heads' initial kernels multiplied by `scale` (biases start at zero)."""
    if scale == 1.0:
        return actor
    return {**actor, **{h: {**actor[h], "kernel": actor[h]["kernel"] * scale} for h in ("mean", "log_std")}}


@partial(jax.jit, static_argnums=(0, 1))
def _init_learner(cfg: CRLConfig, arch: CRLArch, k_actor: jax.Array, k_critic: jax.Array) -> tuple[Any, ...]:
    """Networks, temperature and optimiser states in one compiled program: run op by op, a deep
    init is hundreds of tiny compiles."""
    opts = make_optimizers(cfg)
    actor = scale_heads(networks.init_actor(k_actor, arch), cfg.actor_head_scale)
    critic = networks.init_critic(k_critic, arch)
    log_alpha = jnp.zeros((), jnp.float32)  # a float32 array, not a weak-typed scalar: one compile
    return actor, critic, log_alpha, opts.actor.init(actor), opts.critic.init(critic), opts.alpha.init(log_alpha)


def init_state(cfg: CRLConfig, env: GoalEnv) -> TrainState:
    arch = arch_for(cfg, env)
    key = jax.random.PRNGKey(cfg.seed)
    key, k_actor, k_critic, k_env = jax.random.split(key, 4)
    actor, critic, log_alpha, actor_opt, critic_opt, alpha_opt = _init_learner(cfg, arch, k_actor, k_critic)
    cap, n = cfg.max_replay_size, cfg.num_envs
    buffer = Buffer(
        state=jnp.zeros((cap, n, arch.obs_dim), jnp.float32),
        action=jnp.zeros((cap, n, arch.action_dim), jnp.float32),
        t=jnp.zeros((cap, n), jnp.int32),
        episode=jnp.zeros((cap, n), jnp.int32),
        step_id=jnp.zeros((cap,), jnp.int32),
        ptr=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
        total=jnp.zeros((), jnp.int32),
    )
    env_state = batched_reset(env)(jax.random.split(k_env, n))
    ring = curriculum.initial(cfg.curriculum_config, n)
    if cfg.goal_curriculum:
        env_state = jax.jit(jax.vmap(curriculum.RingGoals(env, cfg.curriculum_inner, ring.radius).start))(env_state)
    zero = jnp.zeros((), jnp.int32)
    ts = TrainState(
        actor=actor, critic=critic, log_alpha=log_alpha, actor_opt=actor_opt, critic_opt=critic_opt,
        alpha_opt=alpha_opt, buffer=buffer, env_state=env_state, key=key,
        env_steps=zero, sgd_steps=zero, iteration=zero, curriculum=ring,
    )
    return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), ts)  # distinct buffers to donate


def stochastic_actor(params, obs, key):
    """Exploration policy: tanh of a Gaussian sample, as scaling-crl collects data; reads the
    teacher's observation (privileged, where the env has one)."""
    mean, log_std = networks.actor_dist(params, obs.teacher)
    action = jnp.tanh(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape))
    return action, {}


def insert(buffer: Buffer, state: jax.Array, action: jax.Array, t: jax.Array, episode: jax.Array) -> Buffer:
    """Appends T rows (each [N, ...]) at the ring pointer."""
    cap = buffer.state.shape[0]
    T = state.shape[0]
    rows = (buffer.ptr + jnp.arange(T)) % cap
    return Buffer(
        state=buffer.state.at[rows].set(state),
        action=buffer.action.at[rows].set(action),
        t=buffer.t.at[rows].set(t),
        episode=buffer.episode.at[rows].set(episode),
        step_id=buffer.step_id.at[rows].set(buffer.total + jnp.arange(T, dtype=jnp.int32)),
        ptr=(buffer.ptr + T) % cap,
        size=jnp.minimum(buffer.size + T, cap),
        total=buffer.total + T,
    )


def sample_batch(
    buffer: Buffer, key: jax.Array, batch_size: int, goal_indices: tuple[int, ...],
    episode_length: int, gamma: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(state, action, goal): goal = achieved goal of a future state of the same episode.

    The offset k >= 1 follows P(k) ∝ gamma^(k-1), truncated to the steps left in the episode that
    have been collected; the last step of an episode (nothing after it) uses its own state.
    """
    cap, n = buffer.t.shape
    k_env, k_row, k_off = jax.random.split(key, 3)
    e = jax.random.randint(k_env, (batch_size,), 0, n)
    i = jax.random.randint(k_row, (batch_size,), 0, buffer.size)
    t_i = buffer.t[i, e]
    written_after = buffer.total - 1 - buffer.step_id[i]
    horizon = jnp.minimum(episode_length - 1 - t_i, written_after)
    u = jax.random.uniform(k_off, (batch_size,))
    mass = 1.0 - gamma ** horizon.astype(jnp.float32)
    k = 1 + jnp.floor(jnp.log1p(-u * mass) / jnp.log(gamma)).astype(jnp.int32)
    k = jnp.where(horizon > 0, jnp.clip(k, 1, jnp.maximum(horizon, 1)), 0)
    j = (i + k) % cap
    same_episode = buffer.episode[j, e] == buffer.episode[i, e]  # early termination ends episodes
    j = jnp.where(same_episode, j, i)
    goal = buffer.state[j, e][:, jnp.asarray(goal_indices)]
    return buffer.state[i, e], buffer.action[i, e], goal


def critic_loss(critic, state, action, goal, penalty: float, remat: bool):
    sa, g = networks.critic_reprs(critic, state, action, goal, remat)
    logits = -jnp.sqrt(jnp.sum(jnp.square(sa[:, None, :] - g[None, :, :]), axis=-1))
    lse = jax.nn.logsumexp(logits, axis=1)
    loss = -jnp.mean(jnp.diag(logits) - lse) + penalty * jnp.mean(jnp.square(lse))
    accuracy = jnp.mean(jnp.argmax(logits, axis=1) == jnp.arange(logits.shape[0]))
    return loss, accuracy


def actor_loss(actor, critic, log_alpha, state, goal, key, remat: bool):
    obs = jnp.concatenate([state, goal], axis=-1)
    mean, log_std = networks.actor_dist(actor, obs, remat)
    std = jnp.exp(log_std)
    x = mean + std * jax.random.normal(key, mean.shape)
    action = jnp.tanh(x)
    log_prob = jax.scipy.stats.norm.logpdf(x, mean, std) - jnp.log(1.0 - jnp.square(action) + 1e-6)
    log_prob = log_prob.sum(-1)
    q = networks.energy(*networks.critic_reprs(critic, state, action, goal, remat))
    return jnp.mean(jnp.exp(log_alpha) * log_prob - q), log_prob


def sgd_step(cfg: CRLConfig, opts: Optimizers, spec, ts: TrainState, key: jax.Array):
    k_batch, k_actor = jax.random.split(key)
    state, action, goal = sample_batch(
        ts.buffer, k_batch, cfg.batch_size, spec.goal_indices, spec.episode_length, cfg.gamma
    )
    (a_loss, log_prob), a_grad = jax.value_and_grad(actor_loss, has_aux=True)(
        ts.actor, ts.critic, ts.log_alpha, state, goal, k_actor, cfg.remat
    )
    a_upd, actor_opt = opts.actor.update(a_grad, ts.actor_opt, ts.actor)
    actor = optax.apply_updates(ts.actor, a_upd)

    target_entropy = -cfg.entropy_param * spec.action_dim
    alpha_grad = jax.grad(lambda la: jnp.exp(la) * jnp.mean(jax.lax.stop_gradient(-log_prob - target_entropy)))(
        ts.log_alpha
    )
    al_upd, alpha_opt = opts.alpha.update(alpha_grad, ts.alpha_opt, ts.log_alpha)
    log_alpha = optax.apply_updates(ts.log_alpha, al_upd)

    (c_loss, acc), c_grad = jax.value_and_grad(critic_loss, has_aux=True)(
        ts.critic, state, action, goal, cfg.logsumexp_penalty, cfg.remat
    )
    c_upd, critic_opt = opts.critic.update(c_grad, ts.critic_opt, ts.critic)
    critic = optax.apply_updates(ts.critic, c_upd)

    ts = dataclasses.replace(
        ts, actor=actor, critic=critic, log_alpha=log_alpha, actor_opt=actor_opt, critic_opt=critic_opt,
        alpha_opt=alpha_opt, sgd_steps=ts.sgd_steps + 1,
    )
    metrics = {
        "actor_loss": a_loss, "critic_loss": c_loss, "critic_accuracy": acc,
        "entropy": -jnp.mean(log_prob), "alpha": jnp.exp(log_alpha),
    }
    return ts, metrics


@partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2,))
def iteration(cfg: CRLConfig, env: GoalEnv, ts: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
    """Collect one unroll from every env, then update if the buffer is warm."""
    opts = make_optimizers(cfg)
    key, k_roll, k_sgd = jax.random.split(ts.key, 3)
    collect_env = (curriculum.RingGoals(env, cfg.curriculum_inner, ts.curriculum.radius)
                   if cfg.goal_curriculum else env)
    env_state, steps = rollout(collect_env, stochastic_actor, cfg.unroll_length, ts.actor, ts.env_state, k_roll)
    obs_dim = env.spec.obs_dim
    buffer = insert(ts.buffer, steps.obs[..., :obs_dim], steps.action, steps.t, steps.episode)
    ring = ts.curriculum
    if cfg.goal_curriculum:
        ring = curriculum.advance(curriculum.count_episodes(ring, steps.done, steps.success), cfg.curriculum_config)
    ts = dataclasses.replace(
        ts, buffer=buffer, env_state=env_state, key=key, env_steps=ts.env_steps + cfg.env_steps_per_iteration,
        iteration=ts.iteration + 1, curriculum=ring,
    )

    def train(ts):
        def body(carry, k):
            return sgd_step(cfg, opts, env.spec, carry, k)

        ts, metrics = jax.lax.scan(body, ts, jax.random.split(k_sgd, cfg.sgd_steps))
        return ts, jax.tree_util.tree_map(jnp.mean, metrics)

    def skip(ts):
        zeros = {k: jnp.zeros((), jnp.float32) for k in
                 ("actor_loss", "critic_loss", "critic_accuracy", "entropy", "alpha")}
        return ts, zeros

    warm = buffer.size >= min(cfg.min_replay_size, cfg.max_replay_size)
    ts, metrics = jax.lax.cond(warm, train, skip, ts)
    metrics["collect_success"] = jnp.mean(steps.success)
    metrics["goal_radius"] = ring.radius
    metrics["ring_success"] = ring.last_rate
    return ts, metrics
