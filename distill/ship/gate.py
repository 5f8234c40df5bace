"""Whether a student may ship: the reasons to refuse, each one line, and the readiness verdict.

A bundle is refused when the student misses the target's latency budget (as the run measured
it), when its ONNX is not ready for the target's TensorRT, or when its teacher had random
weights. `--force` ships it anyway and deploy.yaml records `forced: true` with the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.bench.targets import TargetProfile
from distill.export.trt_readiness import check_tensorrt85
from distill.ship.inputs import ShipInputs


@dataclass(frozen=True)
class ReadinessVerdict:
    """The TensorRT readiness check's answer for the shipped file."""

    checked: bool
    ok: bool
    problems: tuple[str, ...] = ()
    checker: str = ""


def tensorrt_readiness(onnx_path: Path, target: TargetProfile) -> ReadinessVerdict:
    """The TensorRT 8.5 parser's verdict on the shipped file (the Go2's JetPack 5.1 has 8.5)."""
    report = check_tensorrt85(onnx_path)
    return ReadinessVerdict(True, report.ok, tuple(report.problems),
                            f"distill.export.trt_readiness.check_tensorrt85 (TensorRT {target.tensorrt} parser)")


def refusal_reasons(inputs: ShipInputs, target: TargetProfile, readiness: ReadinessVerdict) -> tuple[str, ...]:
    reasons = []
    latency = inputs.latency
    if latency.p99_ms > target.budget_p99_ms:
        reasons.append(f"student p99 {latency.p99_ms:.4g} ms ({latency.backend} on {latency.device or 'the run host'}) "
                       f"misses the {target.name} budget of {target.budget_p99_ms:g} ms")
    if not readiness.ok:
        reasons.append(f"not ready for TensorRT {target.tensorrt}: {'; '.join(readiness.problems) or 'no detail given'}")
    if inputs.random_init:
        reasons.append(f"teacher {inputs.teacher_name} had random weights (--random-init): the student is meaningless on a robot")
    return tuple(reasons)
