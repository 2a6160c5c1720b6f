"""Replicas started and stopped during a run: cold starts, billing windows, policies, refusals."""

import pytest

from servesim import Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import AutoscaleConfig, TenantConfig
from servesim.metrics.tally import billed_per_bin, billed_seconds
from servesim.sim.deployment import plan

SHAPED = WorkloadConfig(num_requests=6000, rate=20.0, rate_shape=[0.3, 1.0, 1.7, 1.0], rate_period_s=300, seed=1)


def test_billing_windows():
    import numpy as np

    assert billed_seconds(100.0) == 100.0 and billed_seconds(100.0, [(10.0, 30.0), (50.0, None)]) == 70.0
    got = billed_per_bin(np.array([0.0, 20.0, 40.0, 60.0]), 60.0, [(10.0, 30.0), (50.0, None)])
    assert list(got) == [10.0, 10.0, 10.0]


def test_a_predictive_fleet_costs_less_than_one_sized_for_the_peak():
    static = simulate(Scenario(workload=SHAPED, replicas=5, router="least_tokens")).summary()
    auto = AutoscaleConfig(policy="predictive", max_replicas=6, warmup_s=10, options={"replica_rps": 7})
    scaled = simulate(Scenario(workload=SHAPED, replicas=2, router="least_tokens", autoscale=auto,
                               slo={"ttft_ms": 2000, "tpot_ms": 100})).summary()  # fmt: skip
    a = scaled["autoscale"]
    assert a["ramp_requests"] > 0 and 0 <= a["slo_attainment_in_ramps"] <= 1 and a["ramp_s"] > 0
    assert a["cold_starts"] >= 2 and a["min_replicas_billed"] < a["max_replicas_billed"]
    assert scaled["cost"]["gpu_hours"] < 0.85 * static["cost"]["gpu_hours"]
    assert scaled["cost"]["total_usd"] == pytest.approx(scaled["cost"]["gpu_hours"] * 2.99, rel=1e-6)  # billed time
    assert scaled["tpot_ms"]["p90"] < 2 * static["tpot_ms"]["p90"] and scaled["completed"] == SHAPED.num_requests


def test_scale_to_zero_pays_cold_starts_in_ttft_and_bills_only_while_up():
    tenants = [TenantConfig(name="a", rate=4, num_requests=100),
               TenantConfig(name="b", rate=4, num_requests=100, start_s=300)]  # fmt: skip
    wl = WorkloadConfig(num_requests=200, seed=2, tenants=tenants)
    auto = AutoscaleConfig(policy="scale_to_zero", min_replicas=0, max_replicas=3, interval_s=2, warmup_s=10,
                           options={"idle_s": 20})  # fmt: skip
    res = simulate(Scenario(workload=wl, replicas=0, autoscale=auto))
    s, a = res.summary(), res.summary()["autoscale"]
    assert s["completed"] == 200 and a["cold_starts"] >= 2 and a["min_replicas_billed"] == 0
    assert a["held_requests"] > 0 and 0 < a["held_share_of_ttft"] <= 1
    assert s["cost"]["gpu_hours"] * 3600 < 0.6 * s["duration_s"]  # off through the silence
    assert res.requests.ttft_s.max() >= a["cold_start_s"] - 1e-6  # the first arrival waited a whole cold start
    power = res.power_series(1.0)
    assert power.replica_0_w.iloc[int(s["duration_s"] * 0.6)] == 0  # no idle power while stopped


def test_a_streamed_autoscaled_run_summarises_as_the_in_memory_one(tmp_path):
    auto = AutoscaleConfig(policy="reactive", max_replicas=4, warmup_s=10)
    sc = Scenario(workload=SHAPED.model_copy(update={"num_requests": 2000}), replicas=1, autoscale=auto)
    whole, streamed = simulate(sc).summary(), simulate(sc, stream=True, records_dir=tmp_path).summary()
    assert streamed["autoscale"] == whole["autoscale"]
    assert streamed["cost"]["gpu_hours"] == pytest.approx(whole["cost"]["gpu_hours"])


@pytest.mark.parametrize("scenario, message", [
    (dict(autoscale=dict(policy="reactive")), "needs max_replicas"),
    (dict(autoscale=dict(policy="reactive", min_replicas=3, max_replicas=2)), "min_replicas 3 exceeds max_replicas 2"),
    (dict(replicas=0), "0 only with an autoscaling policy"),
    (dict(replicas=5, autoscale=AutoscaleConfig(policy="reactive", max_replicas=4)), "must lie within"),
    (dict(autoscale=AutoscaleConfig(policy="nope", max_replicas=4)), "unknown autoscaler 'nope'"),
    (dict(autoscale=AutoscaleConfig(policy="predictive", max_replicas=4)), "needs autoscale.options.replica_rps"),
    (dict(autoscale=AutoscaleConfig(policy="reactive", max_replicas=4, options={"target_load": 0})),
     "autoscale.options of reactive: target_load"),
    (dict(autoscale=AutoscaleConfig(policy="scale_to_zero", max_replicas=4, options={"idle": 5})),
     "autoscale.options of scale_to_zero: idle"),
    (dict(workload=WorkloadConfig(num_requests=20, rate=10),
          autoscale=AutoscaleConfig(policy="reactive", max_replicas=2)), "longer than the run's 2 s of arrivals"),
    (dict(replicas=2, partitions=2, autoscale=AutoscaleConfig(policy="reactive", max_replicas=3)), "split evenly"),
])  # fmt: skip
def test_bad_autoscaling_is_refused_in_one_line(scenario, message):
    from servesim.sim.deployment import build

    with pytest.raises((ServesimError, ValueError), match=message):
        build(plan(Scenario(**scenario)))
