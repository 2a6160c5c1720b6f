"""Thermal throttling of edge devices (sim/thermal.py)."""

from types import SimpleNamespace

import pytest

from servesim import EngineConfig, Scenario, WorkloadConfig, simulate
from servesim.config import LengthDist
from servesim.hardware import get_gpu
from servesim.sim.thermal import RESUME_FRACTION, ThermalController

PHONE = "snapdragon-8-gen3"  # tdp 12 W, sustained 5 W, boost 60 s: a 420 J heat budget


def _cool_twin(tmp_path):
    """A GPU file with the phone as it is but without a thermal limit."""
    g = get_gpu(PHONE)
    path = tmp_path / "cool.toml"
    path.write_text(f"[cool-phone]\nkind = 'soc'\nbf16_tflops = {g.bf16_tflops}\nmemory_gib = {g.memory_gib}\n"
                    f"mem_bw_gbs = {g.mem_bw_gbs}\nlink_gbs = 1\ntdp_w = {g.tdp_w}\nidle_w = {g.idle_w}\n")
    return path


def _run(gpu, n, rate, gpu_file=None):
    wl = WorkloadConfig(rate=rate, num_requests=n, input=LengthDist(dist="fixed", mean=256),
                        output=LengthDist(dist="fixed", mean=256))
    return simulate(Scenario(model="llama-3.2-1b", gpu=gpu, gpu_file=gpu_file, perf_model="roofline",
                             engine=EngineConfig(max_model_len=4096), workload=wl)).summary()


def test_a_long_busy_run_throttles_and_slows(tmp_path):
    cool = _cool_twin(tmp_path)
    hot, free = _run(PHONE, 300, 2.0), _run("cool-phone", 300, 2.0, cool)
    th = hot["thermal"]
    assert th["throttle_events"] >= 1 and th["throttled_replica_s"] > 30
    first = th["replica_first_throttle_s"][0]
    assert 35 < first < 200  # after the boost: 420 J over (memory-bound ~9.8 W - 5 W), not at once
    assert hot["tpot_ms"]["mean"] > 1.05 * free["tpot_ms"]["mean"]
    assert hot["energy"]["avg_power_w"] < free["energy"]["avg_power_w"]
    assert "thermal" not in free
    assert any(n.startswith("thermal:") for n in hot["notes"])


def test_a_short_run_does_not_throttle(tmp_path):
    cool = _cool_twin(tmp_path)
    hot, free = _run(PHONE, 5, 1.0), _run("cool-phone", 5, 1.0, cool)
    assert hot["thermal"]["throttled_replica_s"] == 0 and hot["thermal"]["throttle_events"] == 0
    assert hot["tpot_ms"]["mean"] == pytest.approx(free["tpot_ms"]["mean"], rel=1e-9)
    assert hot["e2el_ms"]["p99"] == pytest.approx(free["e2el_ms"]["p99"], rel=1e-9)


class _Replica:
    """What the controller reads of a replica: its meter, power model, GPUs and caps."""

    def __init__(self, power):
        self.meter = SimpleNamespace(energy_j=0.0, busy_s=0.0)
        self.power, self.gpus, self.static_cap_w, self.cap_w = power, 1, None, None

    def set_power_cap(self, watts):
        self.cap_w = watts


def test_budget_fills_at_full_power_and_recovers_when_idle():
    from servesim.perf.energy import PowerModel

    gpu = get_gpu(PHONE)
    rep = _Replica(PowerModel.for_gpu(gpu))
    cluster = SimpleNamespace(replicas=[rep], replica_of=[0])
    ctl = ThermalController(gpu, {0})
    assert ctl.capacity_j == pytest.approx(60 * (12 - 5))
    t, capped_at, lifted_at = 0.0, None, None
    while t < 300:
        t += ctl.interval_s
        if capped_at is None:  # busy at tdp until capped, then idle
            rep.meter.energy_j += gpu.tdp_w * ctl.interval_s
            rep.meter.busy_s += ctl.interval_s
        ctl.step(t, cluster)
        if capped_at is None and rep.cap_w is not None:
            capped_at = t
            assert rep.cap_w == gpu.sustained_w
        if capped_at is not None and rep.cap_w is None:
            lifted_at = t
            break
    assert capped_at == pytest.approx(60.0)  # boost_s at full power
    drain_s = RESUME_FRACTION * ctl.capacity_j / (gpu.sustained_w - gpu.idle_w)  # 210 J at 4.5 W
    assert lifted_at - capped_at == pytest.approx(drain_s, abs=ctl.interval_s)
    assert ctl.report(t)["thermal"]["throttled_replica_s"] == pytest.approx(lifted_at - capped_at)
