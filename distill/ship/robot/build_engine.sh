#!/usr/bin/env bash
# Builds the TensorRT engine for this bundle on the robot, then times it and checks the budget.
#
# An engine is tied to the GPU and the TensorRT version that built it, so none is shipped: this
# script builds one from the bundle's ONNX with JetPack's trtexec, runs trtexec's timing on it, and
# writes the figures (median, p99, precision, TensorRT version, device) to device_timings.json.
# It prints PASS or FAIL for the p99 latency against the inference budget and exits 0 or 1.
# Bring device_timings.json back and run `distill bench --device-timings device_timings.json`.
#
#   ./build_engine.sh                          # trtexec at JetPack's path
#   TRTEXEC=/path/to/trtexec ./build_engine.sh
#
# The ONNX's input has a static shape [1, D], so no --shapes are given: the engine is built for
# that one shape. trtexec's "Latency" (H2D + GPU compute + D2H for one query) is the figure
# checked; CUDA graphs (--useCudaGraph) are not used because run_policy.py does not use them, and
# the verdict should describe what the controller gets.
set -euo pipefail

# >>> bundle constants: `distill ship` writes the values of this block
ONNX_FILE="student.onnx"
ENGINE_FILE="student.engine"
PRECISION="fp32"
PRECISION_FLAGS=""
BUDGET_MS="1.0"
WORKSPACE_MB="256"
TIMINGS_FILE="device_timings.json"
JETPACK_TRTEXEC="/usr/src/tensorrt/bin/trtexec"
# <<< bundle constants

TRTEXEC="${TRTEXEC:-$JETPACK_TRTEXEC}"
PYTHON="${PYTHON:-python3}"
WARMUP_MS="${WARMUP_MS:-2000}"
DURATION_S="${DURATION_S:-10}"
ITERATIONS="${ITERATIONS:-5000}"

cd "$(dirname "$0")"

if [ ! -x "$TRTEXEC" ]; then
    echo "build_engine.sh: no trtexec at $TRTEXEC (JetPack installs it there); set TRTEXEC=/path/to/trtexec" >&2
    exit 2
fi

device_name() {
    if [ -r /proc/device-tree/model ]; then
        tr -d '\0' < /proc/device-tree/model
    elif command -v nvidia-smi > /dev/null 2>&1; then
        nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1
    fi
    # empty: run_policy.py then takes trtexec's "Selected Device" line
}

echo "== building $ENGINE_FILE ($PRECISION) from $ONNX_FILE (log: build.log)"
# shellcheck disable=SC2086  # PRECISION_FLAGS holds zero or more flags
"$TRTEXEC" --onnx="$ONNX_FILE" --saveEngine="$ENGINE_FILE" $PRECISION_FLAGS \
    --memPoolSize=workspace:"$WORKSPACE_MB" --buildOnly > build.log 2>&1 \
    || { tail -n 30 build.log >&2; echo "build_engine.sh: trtexec could not build the engine; see build.log" >&2; exit 2; }

echo "== timing $ENGINE_FILE: ${WARMUP_MS} ms warm-up, at least ${DURATION_S} s and ${ITERATIONS} queries (log: timing.log)"
"$TRTEXEC" --loadEngine="$ENGINE_FILE" --warmUp="$WARMUP_MS" --duration="$DURATION_S" \
    --iterations="$ITERATIONS" --percentile=99 --avgRuns=1000 > timing.log 2>&1 \
    || { tail -n 30 timing.log >&2; echo "build_engine.sh: the trtexec timing run failed; see timing.log" >&2; exit 2; }

"$PYTHON" run_policy.py parse-trtexec timing.log --out "$TIMINGS_FILE" --precision "$PRECISION" \
    --device "$(device_name)" --budget-ms "$BUDGET_MS"
