"""`distill env {info,render}`."""

from __future__ import annotations

import argparse


def _info(args: argparse.Namespace) -> int:
    from distill.envs.describe import info_command

    return info_command(args)


def _render(args: argparse.Namespace) -> int:
    from distill.envs.render import render_command

    return render_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("env", help="describe and render environments")
    esub = group.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    info = esub.add_parser("info", help="dims, observation fields, dt, episode length")
    info.add_argument("name")
    info.set_defaults(func=_info)

    render = esub.add_parser("render", help="render a state to PNG (MuJoCo's offscreen renderer)")
    render.add_argument("name")
    render.add_argument("--out", required=True, help="PNG path")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--steps", type=int, default=0, help="random-action steps before rendering")
    render.set_defaults(func=_render)
