"""trtexec's performance summary -> the timings a bundle sends back (`device_timings.json`).

The one source of this parser: the host imports it as `distill.ship.robot.trtexec_summary`, and
`distill ship` pastes this file into the bundle's `run_policy.py`, which runs it on the robot's
Python 3.8. Hence: standard library only, 3.8 syntax, and no `from __future__` line (it would be
illegal once pasted below other code).

The summary trtexec prints after a timing run (TensorRT 8.5; 8.6+ adds 90% and 95% percentiles):

    [I] === Performance summary ===
    [I] Throughput: 9876.5 qps
    [I] Latency: min = 0.08 ms, max = 0.4 ms, mean = 0.1 ms, median = 0.09 ms, percentile(99%) = 0.2 ms
    [I] GPU Compute Time: min = ..., percentile(99%) = ... ms

"Latency" is H2D + GPU compute + D2H for one query: what a control loop waits for, so its median
and 99th percentile are the figures compared with the budget.
"""

import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Dict, Optional

TIMINGS_FORMAT = "distill.device_timings/1"
SUMMARY_HEADER = "=== Performance summary ==="
_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")
_METRIC = re.compile(r"^(?P<name>[A-Za-z0-9 \-]+):\s*(?P<stats>.*\bms\b.*)$")
_STAT = re.compile(
    r"(?P<key>min|max|mean|median|percentile\((?P<pct>[0-9.]+)%\))\s*=?\s*(?P<value>[-+0-9.eE]+|inf|nan)\s*ms"
)
_THROUGHPUT = re.compile(r"^Throughput:\s*(?P<value>[-+0-9.eE]+)\s*qps")
_TRT_VERSION = re.compile(r"TensorRT version:\s*(?P<version>[0-9][0-9.]*)")
_TRT_BANNER = re.compile(r"\[TensorRT v(?P<code>\d{4,})\]")
_DEVICE = re.compile(r"Selected Device:\s*(?P<device>.+?)\s*$")


class TrtexecParseError(ValueError):
    """The text holds no trtexec performance summary we can read."""


@dataclass(frozen=True)
class DeviceTiming:
    """Batch-1 inference timings of an engine measured by trtexec on the device itself."""

    median_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    gpu_compute_median_ms: Optional[float]
    gpu_compute_p99_ms: Optional[float]
    throughput_qps: Optional[float]
    precision: str
    tensorrt_version: str
    device: str
    source: str = "trtexec"
    bundle: str = ""
    """The ship bundle whose engine was timed (run_policy.py fills it in)."""
    model_sha256: str = ""
    """sha256 of the ONNX the engine was built from: ties the figures to one exported student."""

    def meets(self, budget_ms: float) -> bool:
        return self.p99_ms <= budget_ms

    def verdict_line(self, budget_ms: float) -> str:
        word = "PASS" if self.meets(budget_ms) else "FAIL"
        return (
            "{}: p99 {:.4f} ms vs budget {:g} ms (median {:.4f} ms; {} engine, TensorRT {}, {})".format(
                word, self.p99_ms, budget_ms, self.median_ms, self.precision or "?",
                self.tensorrt_version or "?", self.device or "unknown device",
            )
        )

    def to_json(self) -> str:
        doc = {"format": TIMINGS_FORMAT}
        doc.update(asdict(self))
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "DeviceTiming":
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != TIMINGS_FORMAT:
            raise ValueError("not a device timings file (format {!r}, expected {!r})".format(
                doc.get("format") if isinstance(doc, dict) else type(doc).__name__, TIMINGS_FORMAT))
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in doc and n not in ("source", "bundle", "model_sha256")]
        if missing:
            raise ValueError("device timings file lacks {}".format(", ".join(missing)))
        values = {n: doc[n] for n in names if n in doc}
        for key in ("median_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"):
            if isinstance(values[key], bool) or not isinstance(values[key], (int, float)):
                raise TypeError(f"device timings field {key} = {values[key]!r}; expected a number")
            values[key] = float(values[key])
        return cls(**values)


def _version_from_banner(code: str) -> str:
    """trtexec's banner writes 8.5.2 as v8502 (major, one-digit minor, two-digit patch)."""
    return f"{int(code[:-3])}.{int(code[-3])}.{int(code[-2:])}"


def _version_in(line: str) -> str:
    m = _TRT_VERSION.search(line)
    if m:
        return m.group("version")
    banner = _TRT_BANNER.search(line)
    return _version_from_banner(banner.group("code")) if banner else ""


def _stats(text: str) -> Dict[str, float]:
    out = {}
    for m in _STAT.finditer(text):
        key = "p{:g}".format(float(m.group("pct"))) if m.group("pct") else m.group("key")
        out[key] = float(m.group("value"))
    return out


def parse_trtexec_log(text: str, precision: str = "", device: str = "") -> DeviceTiming:
    """The timings in a trtexec log; `device` overrides trtexec's "Selected Device" name."""
    metrics = {}
    throughput = None
    version = ""
    found_device = ""
    in_summary = False
    for raw in text.splitlines():
        line = _LOG_PREFIX.sub("", raw.strip())
        version = version or _version_in(line)
        d = _DEVICE.search(line)
        if d and not found_device:
            found_device = d.group("device")
        if SUMMARY_HEADER in line:
            in_summary, metrics, throughput = True, {}, None
            continue
        if not in_summary:
            continue
        t = _THROUGHPUT.match(line)
        if t:
            throughput = float(t.group("value"))
            continue
        m = _METRIC.match(line)
        if m:
            metrics[m.group("name").strip()] = _stats(m.group("stats"))
    if not in_summary:
        raise TrtexecParseError(f"no '{SUMMARY_HEADER}' block: was this a trtexec timing run that finished?")
    latency = metrics.get("Latency", {})
    needed = ("min", "max", "mean", "median", "p99")
    lacking = [k for k in needed if k not in latency]
    if lacking:
        raise TrtexecParseError(
            "the performance summary's Latency line lacks {} (run trtexec with --percentile=99)".format(
                ", ".join(lacking)))
    compute = metrics.get("GPU Compute Time", {})
    return DeviceTiming(
        median_ms=latency["median"],
        p99_ms=latency["p99"],
        mean_ms=latency["mean"],
        min_ms=latency["min"],
        max_ms=latency["max"],
        gpu_compute_median_ms=compute.get("median"),
        gpu_compute_p99_ms=compute.get("p99"),
        throughput_qps=throughput,
        precision=precision,
        tensorrt_version=version,
        device=device or found_device,
    )
