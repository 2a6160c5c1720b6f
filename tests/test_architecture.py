"""The package's shape: module imports form no cycle, and the CLI stays a thin layer."""

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """servesim modules that `path` imports anywhere: at module level, for type checking, and lazily inside
    functions (a lazy import still ties the two modules together, and a cycle through one is still a cycle)."""
    found = set()
    for sub in ast.walk(ast.parse(path.read_text())):
        if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("servesim"):
            for alias in sub.names:
                child = f"{sub.module}.{alias.name}"
                found.add(child if child in modules else sub.module)
        elif isinstance(sub, ast.Import):
            found |= {a.name for a in sub.names if a.name.startswith("servesim")}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / "servesim").rglob("*.py")}
    return {name: imports_of(path, set(files)) - {name} for name, path in files.items()}


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
    assert "servesim.api" in graph["servesim.cli"]  # and imports inside functions (the CLI imports lazily)
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
        imports = imports_of(path, set())
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


# Who may write what of a request: the workload makes the spec, the replica's state (its decoding set and meter
# with it) advances the sequence, and the record is written where its figures come from.
OWNERS = {
    "spec": ({"id", "prompt_len", "output_len", "hash_ids", "hash_ends", "tenant", "priority", "program", "children",
              "parents", "delay", "samples", "record"}, {"sim/request.py", "workload/"}),
    "sequence": ({"ready", "kv_ready", "computed", "generated", "blocks", "shared_blocks", "entries", "swapped",
                  "base", "finish_it", "epoch", "decoding", "seg_start", "j_mark", "usd_mark"},
                 {"sim/sequence.py", "sim/state.py", "sim/decoding.py", "sim/meter.py"}),
    "record": ({"arrival", "first_scheduled", "first_token", "finish", "cached_tokens", "preemptions", "migrations",
                "rejected", "transfer_s", "segments", "prefill_j", "decode_j", "prefill_usd", "decode_usd"},
               # (partition.py renumbers the replicas a group's records name when it joins the groups)
               {"sim/record.py", "sim/request.py", "sim/state.py", "sim/meter.py", "sim/cluster.py", "partition.py"}),
    "clock": ({"now", "it", "reserved"}, {"sim/state.py"}),
    "program": ({"left", "service", "last", "waiting", "sampled"}, {"sim/request.py"}),  # (its own methods)
    "power cap": ({"cap_w"}, {"sim/replica.py"}),  # (controllers call Replica.set_power_cap)
}  # fmt: skip


MUTATORS = {"append", "extend", "insert", "clear", "pop", "popleft", "remove", "update", "add", "discard", "sort",
            "reverse", "setdefault", "__setstate__", "__setattr__", "__delattr__"}


def attribute_writes(path: Path) -> list[tuple[int, str]]:
    """(line, attribute) of every write to an attribute of something other than `self` itself: assigned, deleted,
    a loop or `with` target, an item of it set, changed in place by a method (`x.segments.append`), or named to
    setattr/delattr."""
    out = []

    def other(node) -> bool:  # an attribute of something else than the method's own object
        return isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name) and node.value.id == "self")

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del) and other(node):
            out.append((node.lineno, node.attr))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del) and other(node.value):
            out.append((node.lineno, node.value.attr))
        elif isinstance(node, ast.Call):
            f, args = node.func, node.args
            named = isinstance(f, ast.Name) and f.id in ("setattr", "delattr") or \
                isinstance(f, ast.Attribute) and f.attr in ("__setattr__", "__delattr__")  # fmt: skip
            if named and len(args) >= 2 and isinstance(args[1], ast.Constant) and isinstance(args[1].value, str):
                out.append((node.lineno, args[1].value))
            elif isinstance(f, ast.Attribute) and f.attr in MUTATORS and other(f.value):
                out.append((node.lineno, f.value.attr))
    return sorted(out)


def test_a_requests_state_is_written_only_by_its_owners():
    """A new mechanism cannot write a request's fields from anywhere: the spec is the workload's, the sequence
    its replica state's, the record's figures come from the state, the meter and the cluster."""
    breaches = []
    for path in (SRC / "servesim").rglob("*.py"):
        rel = path.relative_to(SRC / "servesim").as_posix()
        for line, attr in attribute_writes(path):
            for part, (fields, owners) in OWNERS.items():
                if attr in fields and not any(rel == o or (o.endswith("/") and rel.startswith(o)) for o in owners):
                    breaches.append(f"{rel}:{line} writes the {part}'s {attr}")
    assert not breaches, "\n".join(breaches)


def test_the_ownership_check_sees_a_breach(tmp_path):
    rogue = tmp_path / "rogue.py"
    rogue.write_text("def f(seq, s, rec):\n    seq.computed += 1\n    s.now = 2.0\n    a, seq.rec.finish = 1, 3\n"
                     "    setattr(seq, 'generated', 5)\n    rec.segments.append(1)\n    rec.segments[0] = 1\n"
                     "    del rec.first_token\n    for seq.base in (): pass\n    object.__setattr__(rec, 'finish', 1)\n"
                     "    self.finish = 1\n")  # fmt: skip
    assert attribute_writes(rogue) == [(2, "computed"), (3, "now"), (4, "finish"), (5, "generated"), (6, "segments"),
                                       (7, "segments"), (8, "first_token"), (9, "base"), (10, "finish")]
