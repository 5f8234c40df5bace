"""`distill engine {build,time}`: TensorRT engines, where TensorRT is installed (the robot's JetPack,
a GPU host). Elsewhere both say so in one line and exit 2."""

from __future__ import annotations

import argparse


def _build(args: argparse.Namespace) -> int:
    from distill.export.tensorrt import build_engine

    given = {"precision": args.precision, "workspace_mb": args.workspace_mb}
    path = build_engine(args.onnx, args.out, **{k: v for k, v in given.items() if v is not None})
    print(f"{path}: TensorRT engine built from {args.onnx}; it runs on this GPU and TensorRT version only")
    return 0


def _time(args: argparse.Namespace) -> int:
    from distill.bench.latency import tensorrt_latency

    r = tensorrt_latency(args.engine, n_calls=args.calls, warmup=args.warmup)
    print(
        f"{args.engine}: batch 1, {r.n_calls} calls after {args.warmup} warm-up: median {r.median_ms:.3f} ms, "
        f"p99 {r.p99_ms:.3f} ms, mean {r.mean_ms:.3f} ms on {r.device}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("engine", help="build and time TensorRT engines (where TensorRT is installed)")
    esub = group.add_subparsers(dest="engine_command", metavar="ACTION", required=True)

    build = esub.add_parser("build", help="ONNX -> serialized TensorRT engine (checked for TensorRT 8.5 first)")
    build.add_argument("onnx", help="a distill ONNX export (student, fp16/int8 variant, teacher actor)")
    build.add_argument("--out", required=True, help="engine file to write")
    build.add_argument("--precision", help="fp32, fp16 (default) or int8; int8 needs the QDQ variant "
                       "(student.int8.qdq.onnx)")
    build.add_argument("--workspace-mb", type=int, help="builder workspace limit in MiB (default 256)")
    build.set_defaults(func=_build)

    time = esub.add_parser("time", help="batch-1 latency of an engine on this GPU (median, p99)")
    time.add_argument("engine", help="engine file built on this GPU and TensorRT version")
    time.add_argument("--calls", type=int, default=2000, help="timed calls")
    time.add_argument("--warmup", type=int, default=200, help="untimed calls first")
    time.set_defaults(func=_time)
