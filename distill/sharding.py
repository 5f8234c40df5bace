"""Collection over every device jax sees: envs split along the batch axis, teacher weights replicated.

One mesh axis, `envs`. The batched env state, the rollout's per-step records and each chunk of rows
to label are split along it; parameters and PRNG keys are copied to every device. The programs are
the single-device ones — XLA partitions them — so the rows are those of a single-device run with
the same seeds (up to float rounding where a matmul's batch per device changes; see
`tests/test_sharding.py`).

Several hosts: `initialize_distributed` starts `jax.distributed` when a launcher set its
environment (our `JAX_COORDINATOR_ADDRESS` / `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID`, SLURM's
`srun`, or Open MPI's `mpirun`); the mesh then spans every host's devices, and `gather` brings the
rows back to every process. Only process 0 writes files (`is_writer`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from distill.errors import DistillError

log = logging.getLogger(__name__)

ENV_AXIS = "envs"
COORDINATOR_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
SHUTDOWN_TIMEOUT_S = 24 * 3600
"""How long a process that has finished its share waits at exit for process 0, which goes on to fit,
export and report; a process that dies is noticed sooner, by the coordinator's heartbeats."""


def env_mesh(num_envs: int, devices: Sequence[jax.Device] | None = None) -> Mesh | None:
    """A mesh over `devices` (default: all of them, every host's) for `num_envs` envs, or None for
    one device (the plain single-device path)."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) <= 1:
        return None
    if num_envs % len(devices):
        raise DistillError(f"envs = {num_envs} does not divide over {len(devices)} devices; "
                           f"set [distill] envs to a multiple of {len(devices)}")
    return Mesh(np.array(devices), (ENV_AXIS,))


def rows(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the mesh."""
    return NamedSharding(mesh, P(ENV_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _put(tree: Any, target: NamedSharding) -> Any:
    """`jax.device_put`; across processes each one passes the whole value from the host, as a
    process-local device array cannot be placed on other hosts' devices."""
    if jax.process_count() > 1:
        tree = jax.tree_util.tree_map(
            lambda x: x if isinstance(x, jax.Array) and x.sharding == target else np.asarray(x), tree)
    return jax.device_put(tree, target)


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Every leaf copied to every device of the mesh (unchanged without a mesh)."""
    return tree if mesh is None else _put(tree, replicated(mesh))


def split_rows(tree: Any, mesh: Mesh | None) -> Any:
    """Arrays split along their first axis over the mesh (unchanged without a mesh)."""
    return tree if mesh is None else _put(tree, rows(mesh))


def gather(tree: Any) -> Any:
    """Device arrays back to host numpy, whole, on every process: arrays spread over several hosts
    are gathered (a collective: every process calls it), the others copied from this host."""
    from jax.experimental import multihost_utils

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return jax.device_get(x)

    return jax.tree_util.tree_map(get, tree)


@cache
def _reset_on(env, num_envs: int, out: NamedSharding):
    return jax.jit(lambda key: jax.vmap(env.reset)(jax.random.split(key, num_envs)), out_shardings=out)


def reset_split(env, key: jax.Array, num_envs: int, mesh: Mesh):
    """`rollouts.reset_batch` with each device resetting only its own envs."""
    return _reset_on(env, num_envs, rows(mesh))(replicate(key, mesh))


# --- several hosts --------------------------------------------------------------------------------
def launcher_environment() -> str | None:
    """Which launcher set up a multi-process run, if any: ours, SLURM's or Open MPI's variables."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return "jax"
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_NODELIST" in os.environ:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in os.environ and int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "openmpi"
    return None


def initialize_distributed() -> bool:
    """Starts `jax.distributed` when a launcher asked for several processes (before any JAX
    computation); True when this process is one of several."""
    launcher = launcher_environment()
    if launcher is None or jax.distributed.is_initialized():
        return jax.process_count() > 1
    args: dict[str, Any] = {}
    if launcher == "jax":
        missing = [v for v in COORDINATOR_VARS[1:] if not os.environ.get(v)]
        if missing:
            raise DistillError(f"JAX_COORDINATOR_ADDRESS is set but {', '.join(missing)} is not: set all of "
                               f"{', '.join(COORDINATOR_VARS)} on every process")
        try:
            args = {"coordinator_address": os.environ["JAX_COORDINATOR_ADDRESS"],
                    "num_processes": int(os.environ["JAX_NUM_PROCESSES"]),
                    "process_id": int(os.environ["JAX_PROCESS_ID"])}
        except ValueError:
            raise DistillError("JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers") from None
    try:
        jax.distributed.initialize(**args, shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
    except RuntimeError as exc:
        raise DistillError(f"jax.distributed.initialize failed ({' '.join(str(exc).split())[:200]}); "
                           "it must run before any JAX computation in the process") from None
    log.info("process %d of %d (%s launcher), %d local of %d devices", jax.process_index(), jax.process_count(),
             launcher, jax.local_device_count(), jax.device_count())
    return jax.process_count() > 1


def is_writer() -> bool:
    """Only process 0 writes the run's files."""
    return jax.process_index() == 0


@dataclass
class Channel:
    """Messages from process 0 to the others, in order, through `jax.distributed`'s key-value store.
    Not a collective: the others may wait for minutes while process 0 fits and evaluates, where a
    gloo collective on CPUs gives up after 30 s."""

    prefix: str = "distill/next"
    count: int = 0

    @staticmethod
    def _client():
        from jax._src import distributed  # the store behind jax.distributed; no public handle yet

        return distributed.global_state.client

    def send(self, message: bytes) -> None:
        self._client().key_value_set_bytes(f"{self.prefix}/{self.count}", message)
        self.count += 1

    def receive(self, timeout_s: float = 7 * 24 * 3600) -> bytes:
        message = self._client().blocking_key_value_get_bytes(f"{self.prefix}/{self.count}", int(timeout_s * 1000))
        self.count += 1
        return message
