import numpy as np
import pytest

from servesim import EngineConfig, Scenario, WorkloadConfig, simulate
from servesim.config import LengthDist, PowerConfig
from servesim.hardware import get_gpu
from servesim.models import get_model
from servesim.perf import Batch
from servesim.perf.energy import PowerModel
from servesim.perf.profiled import make_perf_model

WL = WorkloadConfig(num_requests=400, rate=12, seed=5)


@pytest.fixture(scope="module")
def result():
    return simulate(Scenario(workload=WL, replicas=2, router="least_tokens"))


def test_energy_is_the_integral_of_power(result):
    s = result.summary()
    series = result.power_series(bin_s=0.5)
    integral = float(series.cluster_w.sum() * 0.5)
    tail = (len(series) * 0.5 - s["duration_s"]) * result.host_w  # the last bin runs past the end: hosts only
    assert integral - tail == pytest.approx(s["energy"]["total_j"], rel=1e-9)
    assert s["energy"]["peak_power_w"] >= s["energy"]["avg_power_w"]


def test_every_joule_and_dollar_of_work_lands_on_a_token(result):
    df, s = result.requests, result.summary()
    assert df.energy_j.sum() == pytest.approx(s["energy"]["gpu_busy_j"], rel=1e-9)
    busy_usd = s["cost"]["total_usd"] - s["cost"]["idle_usd"]
    assert df.cost_usd.sum() == pytest.approx(busy_usd, rel=1e-9)
    assert (df.prefill_j > 0).all() and (df[df.output_len > 1].decode_j > 0).all()
    e = s["energy"]
    assert e["j_per_input_token"] == pytest.approx(df.prefill_j.sum() / df.input_len.sum())
    assert e["j_per_output_token"] == pytest.approx(df.decode_j.sum() / df.output_len.sum())
    assert e["tokens_per_j"] == pytest.approx((df.input_len.sum() + df.output_len.sum()) / e["total_j"])


def test_cost_scales_with_gpus_and_time():
    one = simulate(Scenario(workload=WL)).summary()
    two = simulate(Scenario(workload=WL, replicas=2)).summary()
    h100 = get_gpu("h100").price_per_hour
    assert one["cost"]["total_usd"] == pytest.approx(h100 * one["duration_s"] / 3600)
    assert two["cost"]["total_usd"] == pytest.approx(2 * h100 * two["duration_s"] / 3600)
    tp2 = simulate(Scenario(workload=WL, engine=EngineConfig(tp=2))).summary()
    assert tp2["cost"]["gpus"] == 2 and tp2["cost"]["total_usd"] == pytest.approx(2 * h100 * tp2["duration_s"] / 3600)
    cheap = simulate(Scenario(workload=WL, power=PowerConfig(price_per_gpu_hour=1.0))).summary()
    assert cheap["cost"]["total_usd"] == pytest.approx(cheap["duration_s"] / 3600)


def test_capped_gpus_never_exceed_their_cap():
    cap = 420.0
    r = simulate(Scenario(workload=WL, power=PowerConfig(cap_w=cap)))
    steps, gpus = r.steps, r.deployment.replicas[0].gpus
    watts = steps["energy"] / ((steps["end"] - steps["start"]) * gpus)
    assert watts.max() <= cap * (1 + 1e-6)
    free = simulate(Scenario(workload=WL))
    assert free.steps["energy"].sum() / (free.steps["end"] - free.steps["start"]).sum() > cap


def test_a_cap_slows_prefill_more_than_decode():
    gpu = get_gpu("h200")
    perf = make_perf_model(get_model("llama-3.1-8b"), gpu)
    power = PowerModel.for_gpu(gpu, perf.profile)
    slow = {}
    for name, b in (("prefill", Batch.prefill(4096)), ("decode", Batch.decode(64, 2048))):
        comp, mem, other = perf.split(b)
        assert comp + mem + other == pytest.approx(perf.iteration_time(b))
        seconds, watts, clock = power.capped(comp, mem, other, 450.0)
        assert watts <= 450.0 + 1e-6 and clock < 1
        slow[name] = seconds / (comp + mem + other)
    assert slow["prefill"] > 1.1 and slow["decode"] < 1.05 and slow["prefill"] > 2 * (slow["decode"] - 1) + 1


def test_power_budget_controller():
    wl = WorkloadConfig(num_requests=2000, rate=40, seed=1, input=LengthDist(dist="lognormal", mean=2000, max=8000))
    free = simulate(Scenario(workload=wl, replicas=4, router="least_tokens")).summary()
    demand = free["energy"]["avg_power_w"]
    tight = simulate(Scenario(workload=wl, replicas=4, router="least_tokens",
                              power=PowerConfig(budget_w=0.9 * demand, throttle_cap_w=450))).summary()  # fmt: skip
    pc = tight["power_control"]
    assert pc["cap_actions"] > 0 and pc["time_capped_fraction"] > 0.3
    assert tight["energy"]["avg_power_w"] < 0.97 * demand
    assert tight["tpot_ms"]["p99"] >= free["tpot_ms"]["p99"]
    roomy = simulate(Scenario(workload=wl, replicas=4, router="least_tokens",
                              power=PowerConfig(budget_w=2 * demand))).summary()  # fmt: skip
    assert roomy["power_control"]["cap_actions"] == 0
    assert roomy["tpot_ms"]["p99"] == pytest.approx(free["tpot_ms"]["p99"])
    assert np.isclose(roomy["energy"]["total_j"], free["energy"]["total_j"])


def test_the_power_controller_caps_a_pipelined_replica_whole(monkeypatch):
    """A replica's micro-batch streams share its GPUs: the controller caps them together and counts replicas."""
    from servesim.sim.replica import Replica

    caps: list[tuple[int, float | None]] = []
    original = Replica.set_power_cap
    monkeypatch.setattr(Replica, "set_power_cap", lambda self, w: (caps.append((self.index, w)), original(self, w)))
    sc = Scenario(engine=EngineConfig(pp=2), replicas=2, router="least_tokens", power=PowerConfig(budget_w=2000),
                  workload=WorkloadConfig(num_requests=600, rate=40, seed=1))  # fmt: skip
    s = simulate(sc).summary()
    pc = s["power_control"]
    assert pc["cap_actions"] > 0
    assert pc["capped_replica_s"] <= 2 * s["duration_s"]  # two replicas (four engines) can be capped that long
    by_call = [caps[i : i + 2] for i in range(0, len(caps), 2)]
    assert all(a[1] == b[1] and (a[0], b[0]) in ((0, 1), (2, 3)) for a, b in by_call)  # a replica's two streams
