"""The run report: success of teacher and student, latency of both, where every artifact went.

`report.json` holds everything; `report.md` is the same for people, and is what `make distill`
prints at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.atomic import write_text_atomic

RANDOM_INIT_WARNING = (
    "WARNING: teacher built with --random-init: success figures below are meaningless "
    "(systems benchmark only)."
)


def _fmt_metrics(m: dict[str, Any]) -> str:
    return (f"{m['success']:.3f} | {m['time_at_goal']:.1f} / {m['episode_length']} | "
            f"{m['final_success']:.3f} | {m['final_distance']:.4f} | {m['episodes']}")


def render_markdown(report: dict[str, Any]) -> str:
    lines: list[str] = []
    if report.get("random_init"):
        lines.append(RANDOM_INIT_WARNING)
        lines.append("")
    t, s = report["teacher"], report["student"]
    lines += [
        f"# distill report: {report['run']}",
        "",
        (f"teacher `{t['name']}` (env {report['env']}, actor depth {t['actor_depth']}, critic depth "
         f"{t['critic_depth']}, width {t['width']}, {t['actor_params']:,} actor parameters) -> student "
         f"`{s['preset']}` ({s['params']:,} parameters)"),
        "",
        "## Success in MJX (deterministic policies, same goals)",
        "",
        "| policy | reached at least once | time at goal | final-step success | final distance | episodes |",
        "|---|---|---|---|---|---|",
        f"| teacher | {_fmt_metrics(report['success']['teacher'])} |",
        f"| student | {_fmt_metrics(report['success']['student'])} |",
        "",
        (f"student / teacher: reached {report['success']['ratio_success']:.3f}, time at goal "
         f"{report['success']['ratio_time_at_goal']:.3f}, final-step "
         f"{report['success']['ratio_final_success']:.3f}"),
        "",
        "## DAgger rounds",
        "",
        "| round | beta | rows | student reached | time at goal | final-step | critic gap | fit loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rounds"]:
        m = r["student"]
        lines.append(f"| {r['round']} | {r['beta']:.3f} | {r['rows']} | {m['success']:.3f} | "
                     f"{m['time_at_goal']:.1f} | {m['final_success']:.3f} | {r['critic_gap']:.4f} | "
                     f"{r['fit_loss']:.2e} |")
    lat = report["latency"]
    lines += [
        "",
        f"## Latency at batch 1 ({lat['host']})",
        "",
        "| model | backend | median ms | p99 ms | calls |",
        "|---|---|---|---|---|",
    ]
    for row in lat["rows"]:
        lines.append(f"| {row['model']} | {row['backend']} | {row['median_ms']:.4f} | {row['p99_ms']:.4f} | "
                     f"{row['n_calls']} |")
    lines += [
        "",
        f"teacher / student median latency on ONNX Runtime CPU (1 thread): {lat['speedup_ort']:.1f}x",
    ]
    if report.get("variants"):
        lines += ["", "## Exported student ONNX in MJX (run by ONNX Runtime, same goals)", "",
                  "action error: fp32 against PyTorch, fp16 / int8 against the fp32 ONNX on dataset rows", "",
                  ("| variant | reached | time at goal | final-step | max abs action error | mean abs error | "
                   "QDQ nodes | file |"), "|---|---|---|---|---|---|---|---|"]
        for v in report["variants"]:
            m = v["success"]
            mean_err = "—" if v["mean_abs_err"] is None else f"{v['mean_abs_err']:.2e}"
            lines.append(f"| {v['precision']} | {m['success']:.3f} | {m['time_at_goal']:.1f} | "
                         f"{m['final_success']:.3f} | {v['max_abs_err']:.2e} | {mean_err} | {v['qdq_nodes']} | "
                         f"`{Path(v['path']).name}` |")
    if report.get("target"):
        tv = report["target"]
        lines += ["", f"## Target `{tv['name']}`", "",
                  (f"budget p99 <= {tv['budget_p99_ms']} ms at {tv['control_hz']} Hz; student p99 on this host "
                   f"{tv['student_p99_ms']:.4f} ms -> {'meets' if tv['meets_budget'] else 'MISSES'} the budget "
                   f"here ({tv['note']})")]
    lines += ["", "## Artifacts", ""]
    for k, v in report["artifacts"].items():
        lines.append(f"- {k}: `{v}`")
    lines += ["", f"wall time {report['wall_s']:.0f} s"]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    md, js = directory / "report.md", directory / "report.json"
    write_text_atomic(js, json.dumps(report, indent=1, default=float))
    write_text_atomic(md, render_markdown(report))
    return md, js
