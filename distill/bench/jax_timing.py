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


def run_context(device: jax.Device, load_start: float) -> dict:
    """Where a benchmark ran, for its JSON: the device, and the host with its load before and after
    (a busy host makes throughput pessimistic)."""
    import os
    import platform

    from distill.bench.latency import cpu_name

    return {
        "device": {
            "name": device_name(device),
            "platform": device.platform,
            "kind": device.device_kind,
            "count": jax.device_count(),
        },
        "host": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "loadavg_1m_at_start": round(load_start, 2),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
    }
