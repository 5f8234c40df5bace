"""The robot's own latency figures, brought back from a ship bundle's build_engine.sh.

`load_device_timings` reads `device_timings.json` (what build_engine.sh writes) or, as well, a
raw trtexec log; both go through the one parser the robot runs
(`distill.ship.robot.trtexec_summary`). `device_verdict` sets the figures against a target
profile's budget, as a record the latency sweep's table and plot can carry beside host rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from distill.bench.targets import TargetProfile
from distill.errors import DistillError
from distill.ship.robot.trtexec_summary import DeviceTiming, TrtexecParseError, parse_trtexec_log

__all__ = ["DeviceTiming", "DeviceVerdict", "device_verdict", "load_device_timings"]


@dataclass(frozen=True)
class DeviceVerdict:
    timing: DeviceTiming
    source: Path
    target: str
    budget_p99_ms: float
    meets_budget: bool
    headroom_ms: float
    period_used: float
    """p99 as a fraction of the control period."""

    def line(self) -> str:
        return f"{self.target} (from {self.source.name}): {self.timing.verdict_line(self.budget_p99_ms)}"


def load_device_timings(path: str | Path) -> DeviceTiming:
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"device timings {path} not found; build_engine.sh writes device_timings.json beside it")
    text = path.read_text(errors="replace")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    try:
        if doc is not None:
            return DeviceTiming.from_json(text)
        return parse_trtexec_log(text)
    except (TrtexecParseError, ValueError, TypeError) as exc:
        raise DistillError(f"{path}: {exc}; pass the device_timings.json build_engine.sh wrote, or trtexec's "
                           "log of a --loadEngine timing run") from None


def device_verdict(timing: DeviceTiming, target: TargetProfile, source: Path) -> DeviceVerdict:
    return DeviceVerdict(
        timing=timing, source=source, target=target.name, budget_p99_ms=target.budget_p99_ms,
        meets_budget=timing.meets(target.budget_p99_ms), headroom_ms=target.budget_p99_ms - timing.p99_ms,
        period_used=timing.p99_ms / target.period_ms,
    )
