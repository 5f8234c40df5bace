"""`distill env {list,info,render,compare}`."""

from __future__ import annotations

import argparse

from distill.commands import format_table


def _list(args: argparse.Namespace) -> int:
    """Builds each env's MuJoCo model to read its spec (about 0.05 s each on a CPU); nothing is
    jit-compiled."""
    from distill.envs import ENV_FACTORIES, backends, make_env

    rows = []
    for name in ENV_FACTORIES:
        envs = [make_env(name, backend) for backend in backends(name)]
        spec = envs[0].spec
        dts = {e.backend: e.spec.control_dt for e in envs}
        dt = (f"{spec.control_dt:g} s" if len(set(dts.values())) == 1
              else ", ".join(f"{v:g} s {k}" for k, v in dts.items()))
        rows.append((name, ", ".join(dts), spec.obs_dim, spec.goal_dim, spec.action_dim,
                     spec.student_input_dim, spec.episode_length, dt, f"{spec.success_radius:g}"))
    print(format_table(("env", "backends (default first)", "state", "goal", "actions", "student input",
                        "episode", "control dt", "success radius"), rows))
    return 0


def _info(args: argparse.Namespace) -> int:
    from distill.envs.describe import info_command

    return info_command(args)


def _render(args: argparse.Namespace) -> int:
    from distill.envs.render import render_command

    return render_command(args)


def _compare(args: argparse.Namespace) -> int:
    from distill.envs.compare import compare_command

    return compare_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("env", help="list, describe and render environments")
    esub = group.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    listing = esub.add_parser("list", help="every env: state, goal and action dims, the student's input, episode length, dt")
    listing.set_defaults(func=_list)

    info = esub.add_parser("info", help="dims, observation fields, dt, episode length")
    info.add_argument("name")
    info.add_argument("--backend", default=None,
                      help="physics backend (default: the env's own; spring for the paper's tasks)")
    info.set_defaults(func=_info)

    render = esub.add_parser("render", help="render a state to PNG (MuJoCo's offscreen renderer)")
    render.add_argument("name")
    render.add_argument("--out", required=True, help="PNG path")
    render.add_argument("--seed", type=int, default=0, help="reset key")
    render.add_argument("--steps", type=int, default=0, help="random-action steps before rendering")
    render.add_argument("--backend", default=None,
                        help="physics backend (default: the env's own; spring for the paper's tasks)")
    render.set_defaults(func=_render)

    compare = esub.add_parser(
        "compare",
        help="replay a trajectory recorded elsewhere (e.g. scaling-crl) and print per-step deviation",
        description="Replays FILE.npz (initial q, qd, goal in obs[0], actions, obs, done, meta JSON "
                    "naming env and backend) from its initial state up to its first done and prints, "
                    "per step, the distance between the achieved goals (m) and the relative "
                    "observation error. Exit 0 within tolerance over the first 10 steps (1e-3 m and "
                    "1e-3 relative), 1 beyond it, 2 on a bad file.",
    )
    compare.add_argument("--reference", required=True, help="recorded trajectory (.npz)")
    compare.add_argument("--env", default=None, help="env name (default: the one the file's meta names)")
    compare.add_argument("--backend", default=None,
                         help="physics backend (default: the file's meta, else the env's own)")
    compare.add_argument("--steps", type=int, default=None,
                         help="replay at most this many steps (default: all, up to the first done)")
    compare.set_defaults(func=_compare)
