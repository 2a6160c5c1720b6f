"""A streamed run summarises as the in-memory run does (percentiles within the histogram's bound,
everything else to rounding), writes the same records, and forgets what no request needs."""

import math

import numpy as np
import pandas as pd
import pytest

import servesim.run as run
from servesim import Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import SLO, MigrationConfig, PoolConfig, PowerConfig, ServicePool
from servesim.stream import Collector
from tests.sim.test_migration import BURSTY, TIGHT

WL = WorkloadConfig(num_requests=700, rate=14.0, seed=3)
PERCENTILE_KEYS = ("median", "p90", "p99")


def _flat(d, pre=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{pre}{k}.")
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for i, x in enumerate(v):
                yield from _flat(x, f"{pre}{k}{i}.")
        else:
            yield pre + k, v


def _same_summary(a: dict, b: dict) -> None:
    a, b = dict(a), dict(b)
    notes_a, notes_b = a.pop("notes", []), b.pop("notes")
    assert sorted(notes_b) == sorted([*notes_a, run.STREAM_NOTE])
    fa, fb = dict(_flat(a)), dict(_flat(b))
    assert fa.keys() == fb.keys()
    for key, x in fa.items():
        y = fb[key]
        if key.rsplit(".", 1)[-1] in PERCENTILE_KEYS and x is not None:
            assert y == pytest.approx(x, rel=5e-4), key  # the histogram's bound: half a 0.1% bin
        elif isinstance(x, float):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (key, x, y)
        elif isinstance(x, list) and x and isinstance(x[0], float):
            assert y == pytest.approx(x, rel=1e-9), key
        else:
            assert x == y, key


SCENARIOS = {
    "one replica": Scenario(workload=WL, slo=SLO(ttft_ms=200, tpot_ms=30)),
    "fleet": Scenario(workload=WL.model_copy(update={"rate": 40.0}), replicas=4, router="power_of_two"),
    "disaggregated": Scenario(workload=WL, prefill=PoolConfig(replicas=2), decode=PoolConfig(replicas=1)),
    "migration": Scenario(workload=BURSTY, replicas=4, router="round_robin", engine=TIGHT,
                          migration=MigrationConfig(enabled=True)),  # fmt: skip
    "power budget": Scenario(workload=WL.model_copy(update={"rate": 40.0}), replicas=2,
                             power=PowerConfig(budget_w=900.0)),  # fmt: skip
    "mixed fleet": Scenario(workload=WL.model_copy(update={"rate": 30.0}),
                            pools=[ServicePool(gpu="h100-sxm"), ServicePool(gpu="a100", replicas=2)]),  # fmt: skip
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_streamed_summary_matches_the_in_memory_one(name, monkeypatch, tmp_path):
    monkeypatch.setattr(run, "CHUNK", 61)  # many collections, trims in mid-flight
    sc = SCENARIOS[name]
    whole = simulate(sc)
    streamed = simulate(sc, stream=True, records_dir=tmp_path)
    assert not streamed.raw_requests and not streamed.replica_steps
    _same_summary(whole.summary(), streamed.summary())
    # the records written as the run went are the in-memory ones, request for request
    got = pd.read_parquet(tmp_path / "requests.parquet").sort_values("request_id", ignore_index=True)
    want = whole.requests
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(whole.power_series(), streamed.power_series(), check_exact=False, rtol=1e-9)


def _spy_meters(monkeypatch) -> list:
    """The meters of the replicas the next simulation builds."""
    meters = []
    build = run.build

    def spy(plan, done=None):
        cluster = build(plan, done)
        meters.extend(r.meter for r in cluster.replicas)
        return cluster

    monkeypatch.setattr(run, "build", spy)
    return meters


def test_a_streamed_run_forgets_iteration_ends_and_steps(monkeypatch):
    monkeypatch.setattr(run, "CHUNK", 50)
    sc = Scenario(workload=WorkloadConfig(num_requests=600, rate=10.0, seed=1))
    meters = _spy_meters(monkeypatch)
    result = simulate(sc, stream=True)
    (meter,) = meters
    assert meter.base > 0.9 * result.summary()["iterations"]  # only the last requests' iterations kept
    assert not meter.log.rows


def test_replicas_no_router_reads_are_collected_as_the_run_goes(monkeypatch):
    monkeypatch.setattr(run, "CHUNK", 50)
    sc = Scenario(replicas=4, router="round_robin", workload=WorkloadConfig(num_requests=800, rate=40.0, seed=1))
    counts = []  # requests tallied at each collection
    collect = Collector.collect

    def spy(self):
        collect(self)
        counts.append(self.out.tally.completed)

    monkeypatch.setattr(Collector, "collect", spy)
    simulate(sc, stream=True)
    assert counts[-1] == 800 and counts[-3] > 600  # not all held until the end


def test_streamed_partitions_join_their_tallies(tmp_path):
    sc = Scenario(replicas=4, partitions=2, router="least_tokens", workload=WL.model_copy(update={"rate": 40.0}))
    whole = simulate(sc, workers=1)
    streamed = simulate(sc, workers=1, stream=True, records_dir=tmp_path)
    _same_summary(whole.summary(), streamed.summary())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests-0.parquet", "requests-1.parquet"]
    assert len(streamed.requests) == 700
    assert np.array_equal(np.sort(streamed.requests.request_id), np.arange(700))


def test_streamed_run_without_a_directory_has_a_summary_but_no_records():
    result = simulate(Scenario(workload=WorkloadConfig(num_requests=50)), stream=True)
    assert result.summary()["completed"] == 50
    with pytest.raises(ServesimError, match="keeps no per-request records"):
        _ = result.requests
    with pytest.raises(ServesimError, match="pass stream=True"):
        simulate(Scenario(workload=WorkloadConfig(num_requests=5)), records_dir="x")
