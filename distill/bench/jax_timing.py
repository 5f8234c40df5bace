"""Helpers shared by the JAX benchmarks: naming the device, timing an ahead-of-time compile."""

from __future__ import annotations

import re
import time

import jax


def device_name(device: jax.Device) -> str:
    """A file-name slug: `cpu`, or the GPU's kind (e.g. `nvidia_h100_80gb_hbm3`)."""
    if device.platform == "cpu":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "_", device.device_kind.lower()).strip("_")


def compile_timed(fn, *args) -> tuple[jax.stages.Compiled, float, float]:
    """Lower + compile ahead of time; wall seconds, and this process's CPU seconds (which a busy
    machine inflates less, as XLA compiles mostly on one thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - wall, time.process_time() - cpu
