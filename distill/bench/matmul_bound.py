"""A throughput bound measured, not assumed: the matmul-only time of a piece of work at its own shapes.

Peak FLOP/s (one big square matmul) flatters small, thin layers: on 2 CPU cores a 2048³ float32
product runs at ~200 GFLOP/s, a 256 × 128 × 128 one well below that. So a benchmark lists the
matrix products its work needs (`Gemm`: m × k times k × n, `count` of them), times each distinct
shape alone in the same run (`time_gemms`), and reports its measured time against the sum
(`Bound.seconds`): the share is what the rest of the program (normalisation, activations,
optimiser, physics, data movement, dispatch) leaves of the arithmetic's own speed.

What a CRL sgd step needs (`sgd_step_gemms`), per Dense layer k → n at batch B, in units of one
forward product 2·B·k·n:
  actor        forward, dW, dX (not for its first layer: the observation needs no gradient)  3 (2)
  φ(s, a)      actor loss: forward and dX down to the action; critic loss: forward, dW, dX    5 (4)
  ψ(g)         forward (the same for both losses), dW, dX (not for the first layer)          3 (2)
  logits       B × B distances of 64-dim representations, forward and both gradients         3 products
Labelling (`forward_gemms`) needs the forward products only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from distill.teachers.networks import CRLArch


@dataclass(frozen=True)
class Gemm:
    """`count` products of an m × k matrix with a k × n one."""

    m: int
    k: int
    n: int
    count: int = 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.m, self.k, self.n)

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n * self.count


def merge(gemms: Iterable[Gemm]) -> tuple[Gemm, ...]:
    """One entry per distinct shape, counts summed (sorted: largest FLOPs first)."""
    counts: dict[tuple[int, int, int], int] = {}
    for g in gemms:
        counts[g.shape] = counts.get(g.shape, 0) + g.count
    merged = (Gemm(m, k, n, c) for (m, k, n), c in counts.items() if c > 0)
    return tuple(sorted(merged, key=lambda g: (-g.flops, g.shape)))


def total_flops(gemms: Iterable[Gemm]) -> float:
    return sum(g.flops for g in gemms)


def trunk_layers(in_dim: int, width: int, depth: int) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of a CRL trunk: the input Dense, then `depth` width × width Dense layers."""
    return [(in_dim, width)] + [(width, width)] * depth


def _network(batch: int, layers: list[tuple[int, int]], per_layer: int, first_layer: int) -> list[Gemm]:
    """`per_layer` products (forward, dX, dW) per Dense layer, `first_layer` for the first."""
    return [Gemm(batch, k, n, first_layer if i == 0 else per_layer) for i, (k, n) in enumerate(layers)]


def actor_layers(arch: CRLArch) -> list[tuple[int, int]]:
    return trunk_layers(arch.obs_dim + arch.goal_dim, arch.width, arch.actor_depth) + \
        [(arch.width, arch.action_dim)] * 2  # the mean and log-std heads


def sa_layers(arch: CRLArch) -> list[tuple[int, int]]:
    return trunk_layers(arch.obs_dim + arch.action_dim, arch.width, arch.critic_depth) + [(arch.width, arch.repr_dim)]


def g_layers(arch: CRLArch) -> list[tuple[int, int]]:
    return trunk_layers(arch.goal_dim, arch.width, arch.critic_depth) + [(arch.width, arch.repr_dim)]


def sgd_step_gemms(arch: CRLArch, batch: int) -> tuple[Gemm, ...]:
    """The products one CRL update (actor, alpha, critic) needs; see the module docstring.

    The heads' dX counts as a product even where its fan-out is 2 (the actor's): it is one."""
    return merge([
        *_network(batch, actor_layers(arch), 3, 2),
        *_network(batch, sa_layers(arch), 5, 4),
        *_network(batch, g_layers(arch), 3, 2),
        Gemm(batch, arch.repr_dim, batch, 3),  # logits: forward, and the gradient to each side
    ])


def forward_gemms(rows: int, layers: list[tuple[int, int]], times: int = 1) -> tuple[Gemm, ...]:
    """A network's forward pass over `rows` rows, `times` times (e.g. once per rollout step)."""
    return merge(Gemm(rows, k, n, times) for k, n in layers)


@dataclass(frozen=True)
class GemmTiming:
    """One shape timed alone: seconds per product (median of repeated calls)."""

    m: int
    k: int
    n: int
    seconds: float

    @property
    def gflops(self) -> float:
        return 2.0 * self.m * self.k * self.n / self.seconds / 1e9


@dataclass(frozen=True)
class Bound:
    """The matmul-only seconds of some work, from per-shape timings of the same run."""

    gemms: tuple[Gemm, ...]
    timings: tuple[GemmTiming, ...]

    @property
    def flops(self) -> float:
        return total_flops(self.gemms)

    @property
    def seconds(self) -> float:
        per = {(t.m, t.k, t.n): t.seconds for t in self.timings}
        missing = [g.shape for g in self.gemms if g.shape not in per]
        if missing:
            raise ValueError(f"no timing for product shapes {missing}")
        return sum(g.count * per[g.shape] for g in self.gemms)

    @property
    def gflops(self) -> float:
        """The matmul-only rate of this mix of shapes."""
        return self.flops / self.seconds / 1e9

    def share(self, measured_s: float) -> float:
        """The fraction of the matmul-only speed the real work reaches: bound seconds ÷ measured."""
        if measured_s <= 0:
            raise ValueError(f"measured time {measured_s} s must be positive")
        return self.seconds / measured_s


def _reps(gemm_flops: float, target_flops: float, max_reps: int) -> int:
    return int(max(4, min(max_reps, target_flops // max(gemm_flops, 1.0))))


def time_gemm(m: int, k: int, n: int, budget_s: float = 0.3, target_flops: float = 2e9, max_reps: int = 256,
              max_bytes: float = 256e6) -> GemmTiming:
    """Seconds per m × k @ k × n float32 product in jax on the default device.

    A jitted scan multiplies `reps` different left operands by one right operand and sums them (a
    loop-invariant product would be hoisted out of the loop; the sum adds m·n flops, 1/(2k) of the
    product's); calls repeat for `budget_s` after a warm-up, and the median call is divided by `reps`."""
    reps = _reps(2.0 * m * k * n, target_flops, max_reps)
    reps = max(1, min(reps, int(max_bytes // (4 * m * k))))
    k_a, k_b = jax.random.split(jax.random.PRNGKey(m * 7919 + k * 31 + n))
    a = jax.random.normal(k_a, (reps, m, k), jnp.float32) / jnp.sqrt(k)
    b = jax.random.normal(k_b, (k, n), jnp.float32)

    @jax.jit
    def products(a, b):
        def body(acc, a_i):
            return acc + a_i @ b, None

        return jax.lax.scan(body, jnp.zeros((m, n), jnp.float32), a)[0]

    products(a, b).block_until_ready()
    times: list[float] = []
    while len(times) < 3 or sum(times) < budget_s:
        t0 = time.perf_counter()
        products(a, b).block_until_ready()
        times.append(time.perf_counter() - t0)
    return GemmTiming(m, k, n, statistics.median(times) / reps)


def time_gemms(shapes: Iterable[tuple[int, int, int]], budget_s: float = 0.3) -> tuple[GemmTiming, ...]:
    """Each distinct shape once."""
    return tuple(time_gemm(m, k, n, budget_s) for m, k, n in sorted(set(shapes)))


def measure_bound(gemms: Iterable[Gemm], budget_s: float = 0.3,
                  known: Iterable[GemmTiming] = ()) -> Bound:
    """Times the shapes `known` lacks (pass earlier timings of the same run to reuse them)."""
    gemms = merge(gemms)
    have = {(t.m, t.k, t.n): t for t in known}
    new = time_gemms((g.shape for g in gemms if g.shape not in have), budget_s)
    have.update({(t.m, t.k, t.n): t for t in new})
    return Bound(gemms, tuple(have[g.shape] for g in gemms))


def peak_matmul_gflops(n: int = 2048, repeats: int = 7) -> float:
    """Best of `repeats` float32 n × n @ n × n products in jax, GFLOP/s: the machine's peak, for
    context (shares are taken against the bound at the work's own shapes)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    mm(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9
