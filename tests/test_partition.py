"""A fleet simulated as independent partitions: exact where the split changes nothing, the same on any
number of workers, refused where groups would need each other."""

import os
import subprocess
import sys

import numpy as np
import pytest

from servesim import Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import MigrationConfig, PoolConfig

FLEET = Scenario(replicas=4, router="round_robin", workload=WorkloadConfig(num_requests=400, rate=40.0, seed=2))


def _timeline(result):
    return [(q.id, q.record.first_token, q.record.finish, q.record.segments) for q in result.raw_requests]


def test_one_replica_per_partition_with_round_robin_is_the_whole_fleet():
    whole = simulate(FLEET)
    split = simulate(FLEET.model_copy(update={"partitions": 4}), workers=1)
    assert [q.record.segments for q in split.raw_requests] == [q.record.segments for q in whole.raw_requests]
    finish = lambda res: [q.record.finish for q in res.raw_requests]  # noqa: E731
    assert finish(split) == pytest.approx(finish(whole), rel=1e-12)
    a, b = whole.summary(), split.summary()
    for key in ("completed", "iterations", "total_output_tokens"):
        assert a[key] == b[key]
    assert b["ttft_ms"]["p90"] == pytest.approx(a["ttft_ms"]["p90"], rel=1e-12)
    assert b["energy"]["total_j"] == pytest.approx(a["energy"]["total_j"], rel=1e-9)


def test_partitions_give_the_same_result_on_any_number_of_workers():
    sc = FLEET.model_copy(update={"partitions": 2, "router": "least_tokens"})
    one, two = simulate(sc, workers=1), simulate(sc, workers=2)
    assert _timeline(one) == _timeline(two)
    assert one.summary()["completed"] == 400
    served = np.bincount([q.record.segments[-1][0] for q in two.raw_requests], minlength=4)
    assert (served > 0).all()  # replicas numbered across groups


@pytest.mark.parametrize(
    ("update", "why"),
    [
        ({"replicas": 3}, "do not split into 2 equal groups"),
        ({"migration": MigrationConfig(enabled=True)}, "live migration"),
        ({"replicas": 1, "router": None, "prefill": PoolConfig(replicas=2), "decode": PoolConfig(replicas=2)},
         "disaggregated"),
    ],
)  # fmt: skip
def test_partitions_that_would_need_each_other_are_refused(update, why):
    with pytest.raises(ServesimError, match=why):
        simulate(FLEET.model_copy(update={"partitions": 2, **update}))


def test_workers_below_one_are_refused():
    with pytest.raises(ServesimError, match="workers must be at least 1"):
        simulate(FLEET.model_copy(update={"partitions": 2}), workers=-1)


def test_partitions_on_a_local_ray_cluster():
    pytest.importorskip("ray")
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = subprocess.run([ray_bin, "start", "--head", "--num-cpus=2", "--include-dashboard=false",
                            "--disable-usage-stats"], capture_output=True, text=True, env=env)  # fmt: skip
    if start.returncode != 0:
        pytest.skip(f"could not start a local Ray cluster: {start.stderr.strip().splitlines()[-1:]}")
    try:
        sc = FLEET.model_copy(update={"partitions": 2})
        assert _timeline(simulate(sc, ray_address="auto")) == _timeline(simulate(sc, workers=1))
        streamed = simulate(sc, ray_address="auto", stream=True).summary()
        assert streamed == simulate(sc, workers=1, stream=True).summary()  # tallies travel back and merge
    finally:
        import ray

        ray.shutdown()
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env)
