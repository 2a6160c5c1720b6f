import numpy as np
import pytest

from servesim import Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import EngineConfig, LengthDist
from servesim.sim.cluster import Cluster
from servesim.sim.replica import Replica
from servesim.sim.request import Request
from servesim.sim.router import ROUTERS, Router, make_router, router_names
from tests.sim.conftest import make_replica, pool_spec

SKEWED = WorkloadConfig(num_requests=1500, rate=40, arrival="gamma", burstiness=0.3, seed=3,
                        input=LengthDist(dist="lognormal", mean=1500, sigma=1.4, max=16000),
                        output=LengthDist(dist="lognormal", mean=250, sigma=1.0, max=2000))  # fmt: skip


def serve_cluster(reqs, n, router, engine=None, blocks=20000):
    requests = [Request(i, *t) for i, t in enumerate(sorted(reqs, key=lambda t: t[0]))]
    cluster = Cluster([pool_spec("", n, engine, blocks, router)])
    cluster.run(requests)
    return cluster.replicas, requests


def test_registry():
    assert {"round_robin", "random", "least_requests", "least_tokens", "prefix_affinity"} <= set(router_names())
    with pytest.raises(ServesimError, match="unknown router 'nearest'"):
        make_router("nearest")


@pytest.mark.parametrize("router", ["round_robin", "random", "least_requests", "least_tokens", "prefix_affinity"])
def test_conservation_across_replicas(checked, router):
    rng = np.random.default_rng(1)
    reqs = [(float(t), int(i), int(o)) for t, i, o in
            zip(np.cumsum(rng.exponential(0.01, 400)), rng.integers(1, 3000, 400), rng.integers(1, 200, 400),
                strict=True)]  # fmt: skip
    replicas, done = serve_cluster(reqs, 3, router, EngineConfig(max_num_seqs=32, max_num_batched_tokens=2048))
    assert all(q.record.finish is not None for q in done)
    served = [q.record.segments[-1][0] for q in done]
    assert sorted(set(served)) == [0, 1, 2]
    assert sum(r.outstanding for r in replicas) == 0
    assert all(r.state.kv.used == 0 for r in replicas)


def test_one_replica_cluster_equals_a_replica():
    sc = Scenario(workload=WorkloadConfig(num_requests=300, rate=20, seed=9))
    a = simulate(sc).requests
    b = simulate(sc.model_copy(update={"router": "least_tokens"})).requests
    assert a.equals(b)


def imbalance(result) -> float:
    """Largest replica's share of the prompt tokens over the mean share."""
    per = result.requests.groupby("replica").input_len.sum()
    return float(per.max() / per.mean())


def test_load_aware_routing_beats_random_on_skewed_load():
    results = {r: simulate(Scenario(workload=SKEWED, replicas=4, router=r)) for r in ("random", "least_tokens")}
    assert imbalance(results["least_tokens"]) < imbalance(results["random"])
    p99 = {r: res.summary()["ttft_ms"]["p99"] for r, res in results.items()}
    assert p99["least_tokens"] < 0.8 * p99["random"]
    rr = simulate(Scenario(workload=SKEWED, replicas=4, router="round_robin")).summary()
    assert [x["completed"] for x in rr["replicas"]] == [375] * 4


def test_prefix_affinity_raises_cache_hits(tmp_path):
    """60 conversations of 6 turns; each turn's prompt extends the conversation so far (Mooncake-style ids)."""
    import json

    rng = np.random.default_rng(0)
    rows, next_id = [], 0
    for conv in range(60):
        ids = []
        for turn in range(6):
            ids = ids + list(range(next_id, next_id + 2))
            next_id += 2
            rows.append({"timestamp": int(conv * 900 + turn * 7000 + rng.integers(0, 500)),
                         "input_length": 512 * len(ids), "output_length": 64, "hash_ids": ids})  # fmt: skip
    rows.sort(key=lambda r: r["timestamp"])
    trace = tmp_path / "conversations.jsonl"
    trace.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    wl = WorkloadConfig(trace=trace, num_requests=None, arrival="trace")
    hit = {r: simulate(Scenario(workload=wl, replicas=4, router=r)).summary()["kv_cache"]["prefix_hit_rate"]
           for r in ("round_robin", "prefix_affinity")}  # fmt: skip
    assert hit["prefix_affinity"] > hit["round_robin"] + 0.05


class _ReadsAll(Router):
    """Round robin that first reads every replica, so each is brought up to every arrival."""

    name = "reads_all"

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.inner = make_router("round_robin")

    def route(self, req, replicas) -> int:
        for rep in replicas:
            rep.outstanding  # noqa: B018
        return self.inner.route(req, replicas)


def _serve(router, n=600):
    rng = np.random.default_rng(11)
    reqs = [Request(i, float(t), int(p), int(o)) for i, (t, p, o) in enumerate(
        zip(np.cumsum(rng.exponential(0.02, n)), rng.integers(50, 3000, n), rng.integers(5, 400, n), strict=True))]
    cluster = Cluster([pool_spec("", 4, num_blocks=3000, router=router)])
    cluster.run(reqs)
    return reqs, cluster.replicas


def test_replicas_the_router_does_not_read_run_the_same_timeline(monkeypatch):
    """A replica brought up to each arrival and one left to run on its own serve the same requests alike."""
    monkeypatch.setitem(ROUTERS._classes, _ReadsAll.name, _ReadsAll)  # (a router of this test's own)
    eager, _ = _serve("reads_all")
    lazy, _ = _serve("round_robin")
    assert [q.record.finish for q in lazy] == pytest.approx([q.record.finish for q in eager], rel=1e-9)
    assert [q.record.first_token for q in lazy] == pytest.approx([q.record.first_token for q in eager], rel=1e-9)
    assert [q.record.segments for q in lazy] == [q.record.segments for q in eager]


def test_power_of_two_reads_two_replicas_and_takes_the_lighter(monkeypatch):
    reads = []
    original = Replica.advance
    monkeypatch.setattr(Replica, "advance",
                        lambda self, t, peek=False: (reads.append(self.index), original(self, t, peek))[1])  # fmt: skip
    reqs, replicas = _serve("power_of_two", n=300)
    assert all(q.record.finish is not None for q in reqs)
    # two reads per arrival while requests arrive (the rest are the final drain)
    assert len(reads) <= 2 * len(reqs) + 4 * 10
    served = np.bincount([q.record.segments[-1][0] for q in reqs], minlength=4)
    assert served.min() > 0.15 * len(reqs)  # balanced, unlike one replica taking all


def test_length_aware_router_keeps_long_decodes_apart(monkeypatch):
    from servesim.sim.predictors import PredictorConfig
    from servesim.sim.request import Request
    from servesim.sim.routers.length_aware import LengthAware

    monkeypatch.setattr(LengthAware, "predictor", PredictorConfig(predictor="oracle"))
    router = LengthAware()
    reps = [make_replica(index=i) for i in range(2)]
    reps[0].receive(Request(0, 0.0, 100, 4000), 0.0)  # a long answer waits on replica 0
    for i in range(1, 4):
        reps[1].receive(Request(i, 0.0, 100, 50), 0.0)  # three short ones on replica 1
    assert router.route(Request(9, 0.0, 100, 3000), reps) == 1  # 150 tokens of work beat 4000
    assert LengthAware().route(Request(9, 0.0, 100, 3000), reps) in (0, 1)  # the bucket predictor runs too


@pytest.mark.parametrize("router", ["least_tokens", "power_of_two"])
def test_a_read_that_leaves_a_decode_run_whole_sees_what_cutting_it_would(monkeypatch, router):
    """Routers read queued tokens without cutting a decode run (`Replica.queued_tokens_at`): the same routing and
    timeline as running every read replica up to the read, with far fewer steps logged."""
    sc = Scenario.model_validate({"workload": {"num_requests": 1500, "rate": 60.0, "output": {"mean": 300}},
                                  "engine": {"gpu_memory_utilization": 0.22, "max_model_len": 4096},
                                  "replicas": 4, "router": router})  # fmt: skip
    lazy = simulate(sc)

    def cut(self, t):
        self.advance(t)
        return self.state.queued_tokens()

    monkeypatch.setattr(Replica, "queued_tokens_at", cut)
    eager = simulate(sc)
    a, b = lazy.requests, eager.requests
    assert lazy.summary()["preemptions"] > 0  # (the KV cache is tight enough to matter)
    assert (a.replica == b.replica).all()
    for col in ("first_token_s", "finish_s", "itl_max_s"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9)
    rows = lambda r: sum(len(s["start"]) for s in r.replica_steps)  # noqa: E731
    assert rows(lazy) < {"least_tokens": 0.6, "power_of_two": 0.8}[router] * rows(eager)  # (it reads 4 or 2)
    ka, kb = lazy.summary()["kv_cache"], eager.summary()["kv_cache"]
    assert ka["max_usage"] == kb["max_usage"] and ka["mean_usage"] == pytest.approx(kb["mean_usage"], rel=0.02)
