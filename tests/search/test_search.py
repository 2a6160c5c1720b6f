import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from servesim import EngineConfig, Scenario, ServesimError, WorkloadConfig, simulate
from servesim.search import SearchSpace, parse_targets, run_search
from servesim.search.capacity import acceptable, find_capacity, sustained
from servesim.search.pareto import frontier, rank
from servesim.search.space import Candidate, expand, infeasible

BASE = Scenario(model="llama-3.1-8b", engine=EngineConfig(max_model_len=8192), workload=WorkloadConfig(seed=3))
SPACE = SearchSpace(gpus=["h100-sxm", "h200"], tp=[1, 2], replicas=[1, 2], max_num_seqs=[128])
TARGETS = parse_targets(["p90_ttft:1000 p90_tpot:30"])


def test_parse_targets():
    t = parse_targets(["p90_ttft:500, p99_tpot:40ms"])
    assert [(x.metric, x.stat, x.ms) for x in t] == [("ttft", "p90", 500), ("tpot", "p99", 40)]
    for bad in ("p95_ttft:5", "p90_latency:5", "p90_ttft", "p90_ttft:x"):
        with pytest.raises(ServesimError):
            parse_targets([bad])
    with pytest.raises(ServesimError, match="at least one SLO"):
        parse_targets([])


def test_capacity_is_the_slo_boundary():
    targets = parse_targets(["p90_ttft:300"])  # queueing makes TTFT, not TPOT, grow without bound
    base = BASE.model_copy(update={"engine": EngineConfig(max_model_len=8192, max_num_seqs=32)})  # so they queue

    def at(rate):
        wl = WorkloadConfig(
            num_requests=300,
            rate=1.0 if rate == float("inf") else rate,
            seed=3,
            arrival="burst" if rate == float("inf") else "poisson",
        )
        return base.model_copy(update={"workload": wl})

    cap = find_capacity(at, targets, rel_tol=0.05)
    assert cap["capacity"] > 0 and cap["summary"]["ttft_ms"]["p90"] <= 300
    assert acceptable(simulate(at(cap["capacity"])), targets)
    assert not acceptable(simulate(at(cap["capacity"] * 1.15)), targets)  # a little more load is too much
    assert all(not r["ok"] for r in cap["runs"] if r["rate"] > cap["capacity"] * 1.06 and r["rate"] != float("inf"))
    hinted = find_capacity(at, targets, rel_tol=0.05, hint=cap["capacity"])
    assert len(hinted["runs"]) < len(cap["runs"])  # a good hint saves simulations
    assert hinted["capacity"] == pytest.approx(cap["capacity"], rel=0.12)


def test_overload_is_not_sustained():
    def run(rate):
        return simulate(BASE.model_copy(update={"workload": WorkloadConfig(num_requests=600, rate=rate, seed=1)}))

    assert sustained(run(5).requests)
    assert not sustained(run(200).requests)


def test_pruning_without_simulating():
    big = BASE.model_copy(update={"model": "llama-3.1-70b"})
    assert "does not fit" in infeasible(Candidate("h100-sxm", 1, 1, 1, "vllm", 256, 8192), big)
    assert "divide" in infeasible(Candidate("h100-sxm", 3, 1, 1, "vllm", 256, 8192), big)
    assert infeasible(Candidate("h100-sxm", 4, 1, 1, "vllm", 256, 8192), big) is None
    assert len(expand(SearchSpace(max_num_seqs=[512], max_num_batched_tokens=[256, 1024]))) == 1
    moe = expand(SearchSpace(tp=[2], ep=[1, 2], replicas=[1, 2], pd=["1P1D"]))
    assert len(moe) == 6 and {c.ep for c in moe} == {1, 2}
    dense_ep = infeasible(Candidate("h100-sxm", 2, 1, 1, "vllm", 256, 8192, ep=2), BASE)
    assert "expert parallel size 2 needs a MoE model" in dense_ep
    mixtral = BASE.model_copy(update={"model": "mixtral-8x7b"})
    assert infeasible(Candidate("h100-sxm", 2, 1, 1, "vllm", 256, 8192, ep=2), mixtral) is None


def test_rank_and_frontier():
    pts = [
        {"label": "a", "feasible": True, "capacity": 1, "obj": 3, "x": 1, "y": 5},
        {"label": "b", "feasible": True, "capacity": 1, "obj": 5, "x": 2, "y": 2},
        {"label": "c", "feasible": True, "capacity": 1, "obj": 4, "x": 3, "y": 3},
        {"label": "d", "feasible": False, "capacity": 0, "obj": 9, "x": 0, "y": 0},
    ]
    assert [r["label"] for r in rank(pts, "obj")] == ["b", "c", "a"]
    assert [r["label"] for r in frontier(rank(pts, "obj"), "x", "y")] == ["a", "b"]


def test_search_resumes_from_its_store(tmp_path):
    store = tmp_path / "s.sqlite"
    first = run_search(BASE, SPACE, TARGETS, str(store), num_requests=150, workers=2)
    assert first["candidates"] == 8 and first["evaluated"] == 8
    again = run_search(BASE, SPACE, TARGETS, str(store), num_requests=150, workers=1)
    assert again["evaluated"] == 0 and again["reused"] == 8
    assert [r["capacity"] for r in again["results"]] == [r["capacity"] for r in first["results"]]
    other = run_search(BASE, SPACE, parse_targets(["p90_tpot:25"]), str(store), num_requests=150, workers=2)
    assert other["evaluated"] == 8  # a different SLO is a different question
    serial = run_search(BASE, SPACE, TARGETS, str(tmp_path / "t.sqlite"), num_requests=150, workers=1)
    assert [r["capacity"] for r in serial["results"]] == [r["capacity"] for r in first["results"]]


def _rows(path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_killed_search_finishes_with_the_same_answer(tmp_path):
    args = [
        sys.executable,
        "-m",
        "servesim.cli",
        "search",
        "--model",
        "llama-3.1-8b",
        "--gpus",
        "h100-sxm,h200",
        "--tp",
        "1,2",
        "--replicas",
        "1,2",
        "--max-num-seqs",
        "128",
        "--slo",
        "p90_ttft:1000 p90_tpot:30",
        "--num-requests",
        "150",
        "--workers",
        "1",
        "--json",
    ]
    clean = json.loads(
        subprocess.run(
            args + ["--store", str(tmp_path / "clean.sqlite")], capture_output=True, text=True, check=True
        ).stdout
    )
    store = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(args + ["--store", str(store)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _rows(store) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _rows(store)
    assert 3 <= finished < clean["candidates"]
    resumed = json.loads(
        subprocess.run(args + ["--store", str(store)], capture_output=True, text=True, check=True).stdout
    )
    assert resumed["reused"] == finished and resumed["evaluated"] == clean["candidates"] - finished
    assert [(r["label"], r["capacity"]) for r in resumed["ranked"]] == [
        (r["label"], r["capacity"]) for r in clean["ranked"]
    ]


def test_ray_cluster_gives_identical_results(tmp_path):
    pytest.importorskip("ray")
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    start = subprocess.run(
        [ray_bin, "start", "--head", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        capture_output=True,
        text=True,
        env=env,
    )
    if start.returncode != 0:
        pytest.skip(f"could not start a local Ray cluster: {start.stderr.strip().splitlines()[-1:]}")
    try:
        on_ray = run_search(BASE, SPACE, TARGETS, str(tmp_path / "ray.sqlite"), num_requests=150, ray_address="auto")
        local = run_search(BASE, SPACE, TARGETS, str(tmp_path / "local.sqlite"), num_requests=150, workers=2)
        assert [(r["label"], r["capacity"]) for r in on_ray["results"]] == [
            (r["label"], r["capacity"]) for r in local["results"]
        ]
    finally:
        import ray

        ray.shutdown()
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env)


def test_a_one_worker_search_stores_each_candidate_as_it_finishes(tmp_path, monkeypatch):
    """Interrupted after two of four candidates, a one-worker search has stored those two (it used to run every
    candidate before storing any)."""
    import servesim.search.runner as runner
    from servesim.search.store import ResultStore

    real, calls = runner.evaluate, []

    def interrupted(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(runner, "evaluate", interrupted)
    wl = WorkloadConfig(num_requests=60, input=dict(mean=200, max=400), output=dict(mean=50, max=100))
    base = Scenario(workload=wl)
    space = SearchSpace(gpus=["h100-sxm", "h200", "a100", "l40s"])
    store = tmp_path / "s.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_search(base, space, parse_targets(["p90_ttft:5000"]), str(store), num_requests=60, workers=1)
    assert len(ResultStore(str(store))) == 2


def test_a_store_of_another_shape_is_refused_and_unreadable_rows_are_evaluated_again(tmp_path):
    from servesim.search.store import ResultStore

    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE evaluations (a, b, c)")
    with pytest.raises(ServesimError, match="evaluations table has columns a, b, c"):
        ResultStore(foreign)
    store = ResultStore(tmp_path / "s.sqlite")
    store.db.execute("INSERT INTO evaluations VALUES ('corrupt', '{not json')")
    store.db.execute("INSERT INTO evaluations VALUES ('list', '[1, 2]')")
    store.put("ok", {"feasible": True, "capacity": 3.0})
    assert store.get("corrupt") is None and store.get("list") is None and store.get("ok")["capacity"] == 3.0
