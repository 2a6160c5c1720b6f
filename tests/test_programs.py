"""Programs end to end: their summary, streamed or not, split into partitions, refused where they cannot run."""

import json
import math

import numpy as np
import pytest

from servesim import Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import Duration, EngineConfig, LengthDist, PoolConfig, ProgramConfig
from tests.test_cli import invoke
from tests.test_stream import _flat, _same_summary

AGENTS = WorkloadConfig(num_requests=150, rate=3.0, seed=2, input=LengthDist(mean=1500, sigma=0.6, max=6000),
                        programs=ProgramConfig(calls=LengthDist(dist="uniform", min=1, max=8),
                                               new_input=LengthDist(mean=400), gap=Duration(mean_s=0.7)))  # fmt: skip


def test_program_summary_adds_up_for_chains():
    res = simulate(Scenario(workload=AGENTS))
    p = res.summary()["programs"]
    assert p["completed"] == 150 and p["calls"] == res.summary()["completed"]
    # for a chain, completion = its calls' gaps + queueing + running
    parts = p["tool_s_mean"] + p["queued_s_mean"] + p["running_s_mean"]
    assert p["completion_ms"]["mean"] / 1000 == pytest.approx(parts, rel=1e-9)
    df = res.requests
    assert df.program.nunique() == 150 and (df.program >= 0).all()
    first = df.groupby("program").arrival_s.min()
    last = df.groupby("program").finish_s.max()
    assert np.mean(last - first) * 1000 == pytest.approx(p["completion_ms"]["mean"], rel=1e-9)


@pytest.mark.parametrize("replicas", [1, 3])
def test_streamed_program_summary_matches(replicas, monkeypatch):
    import servesim.run as run

    monkeypatch.setattr(run, "CHUNK", 61)  # released calls wait beside later chunks' arrivals
    sc = Scenario(workload=AGENTS, replicas=replicas, router="least_tokens")
    whole = simulate(sc)
    _same_summary(whole.summary(), simulate(sc, stream=True).summary())
    monkeypatch.setattr(run, "CHUNK", 8192)
    # taking arrivals in chunks changes nothing, but where decode runs are cut (a chunk's end brings every
    # replica up to it): float sums, and the KV mean that counts a run's blocks as growing evenly over it
    again, first = dict(_flat(simulate(sc).summary())), dict(_flat(whole.summary()))
    assert again.keys() == first.keys()
    for key, x in first.items():
        if isinstance(x, float):
            assert math.isclose(x, again[key], rel_tol=1e-5 if key.endswith("mean_usage") else 1e-9), key
        elif not (isinstance(x, list) and x and isinstance(x[0], float)):
            assert x == again[key], key


def test_a_program_with_a_call_too_long_is_refused_whole():
    sc = Scenario(workload=AGENTS, engine=EngineConfig(max_model_len=4000))
    res = simulate(sc)
    df = res.requests
    refused = df[df.rejected].program.unique()
    assert len(refused) and not df[df.program.isin(refused)].completed.any()
    assert res.summary()["programs"]["completed"] == 150 - len(refused)


def test_partitions_deal_whole_programs():
    sc = Scenario(workload=AGENTS, replicas=2, partitions=2)
    res = simulate(sc, workers=1)
    df = res.requests
    assert (df.groupby("program").replica.nunique() == 1).all()  # every call of a program on one replica
    assert res.summary()["programs"]["completed"] == 150


def test_programs_refused_where_they_cannot_run():
    pools = {"prefill": PoolConfig(), "decode": PoolConfig()}
    with pytest.raises(ServesimError, match="co-located"):
        simulate(Scenario(workload=AGENTS, **pools))


def test_cli_runs_programs():
    res = invoke("run", "--programs", "dag", "--fanout", "2", "--calls", "3", "--gap-s", "0.2",
                 "--num-requests", "40", "--rate", "2", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    p = json.loads(res.output)["programs"]
    assert p["completed"] == 40 and p["calls"] == 40 * 5
