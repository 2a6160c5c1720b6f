import numpy as np
import pytest

from servesim import EngineConfig, Scenario, WorkloadConfig, simulate
from servesim.config import KVTransferConfig, LengthDist, MigrationConfig
from servesim.metrics import token_times
from servesim.sim.cluster import Cluster
from servesim.sim.migration import Migrator
from servesim.sim.request import Request
from servesim.sim.sequence import Sequence
from tests.sim.conftest import pool_spec

BURSTY = WorkloadConfig(num_requests=900, rate=14, arrival="gamma", burstiness=0.2, seed=3,
                        input=LengthDist(dist="lognormal", mean=1500, sigma=1.2, max=16000),
                        output=LengthDist(dist="lognormal", mean=400, sigma=1.2, max=4000))  # fmt: skip
TIGHT = EngineConfig(gpu_memory_utilization=0.27, max_model_len=20000)


def test_migration_conserves_requests_tokens_and_blocks(checked):
    rng = np.random.default_rng(7)
    # round robin deals every third request, the long ones, to replica 2: it fills while the others idle
    reqs = [Request(i, float(t), int(p) * (4 if i % 3 == 2 else 1), int(o)) for i, (t, p, o) in enumerate(
        zip(np.cumsum(rng.exponential(0.01, 300)), rng.integers(100, 1500, 300), rng.integers(50, 600, 300),
            strict=True))]  # fmt: skip
    migrator = Migrator(MigrationConfig(enabled=True, threshold=0.1), KVTransferConfig(), 131072)
    cluster = Cluster([pool_spec("", 3, num_blocks=3000)], [migrator])
    cluster.run(reqs)
    replicas = cluster.replicas
    assert migrator.moves > 0
    iter_ends = [r.meter.iter_end[: r.it] for r in replicas]
    for q in reqs:
        assert q.record.finish is not None
        times = token_times(q, iter_ends)
        assert len(times) == q.output_len and np.all(np.diff(times) > 0)
    moved = [q for q in reqs if q.record.migrations]
    assert moved and all(len({seg[0] for seg in q.record.segments}) > 1 for q in moved)
    assert all(r.state.kv.used == 0 and not r.state.running and not r.state.waiting for r in replicas)


def test_migration_cuts_tail_latency_under_bursts():
    base = Scenario(workload=BURSTY, replicas=4, router="round_robin", engine=TIGHT)
    off = simulate(base).summary()
    on = simulate(base.model_copy(update={"migration": MigrationConfig(enabled=True)})).summary()
    assert off["migrations"] == 0 and on["migrations"] > 0
    assert on["completed"] == off["completed"] == 900
    assert on["preemptions"] < off["preemptions"]
    assert on["ttft_ms"]["p99"] < off["ttft_ms"]["p99"]
    spread = lambda s: np.ptp([r["kv_cache"]["mean_usage"] for r in s["replicas"]])  # noqa: E731
    assert spread(on) < spread(off)


def test_stop_and_copy_pauses_longer():
    seq = Sequence(Request(0, 0.0, 4000, 10), 0.0, computed=4000)
    live = Migrator(MigrationConfig(mode="live"), KVTransferConfig(), 131072).pause(seq, 16)
    stop = Migrator(MigrationConfig(mode="stop"), KVTransferConfig(), 131072).pause(seq, 16)
    assert stop == live + (4000 - 16) * 131072 / 50e9


def test_fast_forward_equals_stepping_when_requests_land_mid_run(monkeypatch):
    """A migrated request can start decoding while the waiting queue is blocked: a decode run must stop
    where it lands, exactly as stepping one iteration at a time does."""
    from servesim.sim import replica as replica_mod

    wl = BURSTY.model_copy(update={"num_requests": 1500})
    sc = Scenario(workload=wl, replicas=4, router="round_robin", engine=TIGHT, migration=MigrationConfig(enabled=True))
    fast = simulate(sc)
    monkeypatch.setattr(replica_mod, "MAX_RUN", 1)
    step = simulate(sc)
    assert fast.summary()["migrations"] > 0
    finish = lambda res: [q.record.finish for q in res.raw_requests]  # noqa: E731
    assert finish(fast) == pytest.approx(finish(step), rel=1e-9)
    assert [q.record.segments for q in fast.raw_requests] == [q.record.segments for q in step.raw_requests]


def test_migration_moves_between_replicas_never_between_one_replicas_streams():
    wl = BURSTY.model_copy(update={"num_requests": 400})
    one = Scenario(model="llama-3.1-70b", engine=EngineConfig(tp=2, pp=2, max_model_len=20000), workload=wl,
                   migration=MigrationConfig(enabled=True, threshold=0.05))  # fmt: skip
    assert simulate(one).summary()["migrations"] == 0  # one replica: its two streams are not two replicas
    two = simulate(one.model_copy(update={"replicas": 2, "router": "round_robin"}))
    moved = [q for q in two.raw_requests if q.record.migrations]
    assert moved
    replica_of = two.deployment.replica_of
    for q in moved:  # each move crossed replicas
        places = [replica_of[i] for i, _, _ in q.record.segments]
        assert any(a != b for a, b in zip(places, places[1:], strict=False))
