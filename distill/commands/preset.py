"""`distill preset list`: the student presets of students/presets.toml."""

from __future__ import annotations

import argparse

from distill.commands import format_table
from distill.errors import DistillError


def _dims(args: argparse.Namespace) -> tuple[int, int] | None:
    if args.env:
        if args.input_dim is not None or args.action_dim is not None:
            raise DistillError("give --env or --input-dim/--action-dim, not both")
        from distill.envs import make_env

        spec = make_env(args.env).spec
        return spec.student_input_dim, spec.action_dim
    if (args.input_dim is None) != (args.action_dim is None):
        raise DistillError("--input-dim and --action-dim go together: parameters depend on both")
    if args.input_dim is None:
        return None
    if args.input_dim < 1 or args.action_dim < 1:
        raise DistillError(f"--input-dim {args.input_dim}, --action-dim {args.action_dim}: both must be >= 1")
    return args.input_dim, args.action_dim


def _memory(preset) -> str:
    if preset.family == "history":
        return f"last {preset.history} observations"
    if preset.family == "gru":
        return f"GRU {preset.layers} x {preset.hidden}"
    return "—"


def _list(args: argparse.Namespace) -> int:
    from distill.students.presets import default_preset_name, default_presets_path, load_presets

    dims = _dims(args)
    presets = load_presets()
    default = default_preset_name()
    header = ["preset", "depth", "width", "activation", "memory"]
    rows = [[f"{name}{' (default)' if name == default else ''}", p.depth, p.width, p.activation, _memory(p)]
            for name, p in presets.items()]
    if dims is not None:
        from distill.students.memory import build_student

        header.append(f"params ({dims[0]} in, {dims[1]} out)")
        for row, preset in zip(rows, presets.values()):
            row.append(f"{build_student(preset, *dims).num_params():,}")
    print(format_table(header, rows))
    print(f"from {default_presets_path()}; `distill run --preset NAME` picks one")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("preset", help="list the student presets (depth, width, memory, parameters)")
    psub = group.add_subparsers(dest="preset_command", metavar="ACTION", required=True)
    listing = psub.add_parser("list", help="presets with depth and width, the default marked; "
                                           "parameter counts for the given dims")
    listing.add_argument("--env", help="count parameters for this env's student input and action dims (default: no counts)")
    listing.add_argument("--input-dim", type=int, help="count parameters for this many inputs, state + goal "
                                                       "(default: no counts)")
    listing.add_argument("--action-dim", type=int, help="... and this many actions (default: no counts)")
    listing.set_defaults(func=_list)
