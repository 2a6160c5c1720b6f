"""The package's shape: module imports form no cycle, and the CLI stays a thin layer."""

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """servesim modules that `path` names at module level, for type checking too (not lazily, in functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else []:
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("servesim"):
                for alias in sub.names:
                    child = f"{sub.module}.{alias.name}"
                    found.add(child if child in modules else sub.module)
            elif isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names if a.name.startswith("servesim")}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / "servesim").rglob("*.py")}
    return {name: top_level_imports(path, set(files)) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert "servesim.sim.state" in graph["servesim.sim.scheduler"]  # the graph sees real edges
    # package __init__ files re-export their modules; a module importing its own package is not a cycle worth
    # counting, so leave the packages out and look at module-to-module edges
    modules = {k: {v for v in vs if not (SRC / Path(*v.split("."))).is_dir()} for k, vs in graph.items()
               if not (SRC / Path(*k.split("."))).is_dir()}  # fmt: skip
    assert find_cycle(modules) is None, " -> ".join(find_cycle(modules))


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_policies_do_not_reach_into_the_replica():
    """A policy sees the replica's state, never the Replica (its clock and pricing)."""
    for path in (SRC / "servesim" / "sim" / "policies").glob("*.py"):
        imports = top_level_imports(path, set())
        assert not any(m.startswith("servesim.sim.replica") for m in imports), path.name
        assert "self.r." not in path.read_text()


def test_a_run_and_its_summary_do_not_import_pandas():
    """pandas and pyarrow take about half a second to import; the command line's run path must not need them."""
    import subprocess
    import sys

    code = ("import sys; from servesim import Scenario, WorkloadConfig, simulate; "
            "simulate(Scenario(workload=WorkloadConfig(num_requests=20))).summary(); "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'plotly') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
