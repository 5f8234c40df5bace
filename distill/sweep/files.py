"""A sweep on disk: sweep.{json,md,png} in its folder, and copies under benchmarks/results/ named
by the device its latencies were measured on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from distill.atomic import write_text_atomic
from distill.sweep.plot import plot_sweep
from distill.sweep.records import SWEEP_JSON, SWEEP_MD, SWEEP_PNG, SweepReport, render_sweep


def results_stem(sweep: SweepReport) -> str:
    """sweep_<name>_<device>: the sweep's name without its `sweep-` prefix (sweep_<teacher>_... for
    the default name), and the device the sweep's latencies were measured on, as its data records it
    (`SweepReport.latency_device`), so a GPU sweep re-written on a laptop keeps its name and never
    overwrites the CPU one."""
    return f"sweep_{sweep.name.removeprefix('sweep-')}_{sweep.latency_device}"


def write_sweep(sweep: SweepReport, directory: Path, results_dir: Path | None = None) -> list[Path]:
    """sweep.{json,md,png} in the sweep folder, copied to `results_dir` as `results_stem(sweep)`.*"""
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(directory / SWEEP_JSON, json.dumps(sweep.to_dict(), indent=1))
    write_text_atomic(directory / SWEEP_MD, render_sweep(sweep))
    plot_sweep(sweep, directory / SWEEP_PNG)
    written = [directory / n for n in (SWEEP_JSON, SWEEP_MD, SWEEP_PNG)]
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        stem = results_stem(sweep)
        for path in list(written):
            target = results_dir / f"{stem}{path.suffix}"
            shutil.copyfile(path, target)
            written.append(target)
    return written
