"""How distill's modules depend on each other, read from their source: no import cycles, bench/
below the pipeline, and a command line that answers --version and --help without jax or torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("jax", "torch", "mujoco", "onnx", "onnxruntime", "h5py", "matplotlib")
"""What a line of help text must not wait for (jax and torch alone take seconds to import)."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in (REPO / "distill").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """distill module -> the distill modules it imports, anywhere in the file (inside functions and
    `if TYPE_CHECKING:` blocks too: a deferred import is still a dependency)."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        graph[name] = {t for t in map(known, (t for t in targets if t.split(".")[0] == "distill")) if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_distill_modules():
    graph = import_graph()
    assert {"distill.pipeline", "distill.dagger", "distill.bench.targets", "distill.sweep.run"} <= set(graph)
    assert "distill.dagger" in graph["distill.pipeline"]  # the parser sees real edges
    assert cycles(graph) == []


def test_bench_is_below_the_pipeline():
    """distill/bench/ (latency backends, target profiles, ONNX success in MJX) is used by the
    pipeline and never uses it, even indirectly; the sweep, which runs the pipeline, sits beside it."""
    graph = import_graph()
    above = {"distill.pipeline", "distill.dagger", "distill.report", "distill.sweep", "distill.policy_eval",
             "distill.commands", "distill.cli"}
    for module in (m for m in graph if m.startswith("distill.bench")):
        below = reachable(graph, module)
        assert not {m for m in below if m in above or m.startswith(("distill.sweep.", "distill.commands."))}, module
    assert "distill.pipeline" in reachable(graph, "distill.sweep.run")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["run", "--help"], ["eval", "--help"],
                                  ["sweep", "--help"], ["teacher", "train", "--help"]])
def test_version_and_help_import_neither_jax_nor_torch(argv):
    program = ("import sys\nfrom distill.cli import main\n"
               "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
               f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", program, *argv], capture_output=True, text=True, timeout=120,
                          cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY []", done.stdout[-500:]
    assert "distill" in done.stdout
