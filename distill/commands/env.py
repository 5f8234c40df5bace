"""`distill env {list,info,render}`."""

from __future__ import annotations

import argparse

from distill.commands import format_table


def _list(args: argparse.Namespace) -> int:
    """Builds each env's MuJoCo model to read its spec (about 0.05 s each on a CPU); nothing is
    jit-compiled."""
    from distill.envs import ENV_FACTORIES, make_env

    rows = []
    for name in ENV_FACTORIES:
        spec = make_env(name).spec
        rows.append((name, spec.obs_dim, spec.goal_dim, spec.action_dim, spec.student_input_dim,
                     spec.episode_length, f"{spec.control_dt:g} s", f"{spec.success_radius:g}"))
    print(format_table(("env", "state", "goal", "actions", "student input", "episode", "control dt",
                        "success radius"), rows))
    return 0


def _info(args: argparse.Namespace) -> int:
    from distill.envs.describe import info_command

    return info_command(args)


def _render(args: argparse.Namespace) -> int:
    from distill.envs.render import render_command

    return render_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("env", help="list, describe and render environments")
    esub = group.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    listing = esub.add_parser("list", help="every env: state, goal and action dims, the student's input, episode length, dt")
    listing.set_defaults(func=_list)

    info = esub.add_parser("info", help="dims, observation fields, dt, episode length")
    info.add_argument("name")
    info.set_defaults(func=_info)

    render = esub.add_parser("render", help="render a state to PNG (MuJoCo's offscreen renderer)")
    render.add_argument("name")
    render.add_argument("--out", required=True, help="PNG path")
    render.add_argument("--seed", type=int, default=0, help="reset key")
    render.add_argument("--steps", type=int, default=0, help="random-action steps before rendering")
    render.set_defaults(func=_render)
