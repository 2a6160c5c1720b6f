"""Battery figures of a run on an edge device (edge/battery.py)."""

import pytest

from servesim import Scenario, WorkloadConfig, simulate
from servesim.edge.battery import battery_summary
from servesim.hardware import get_gpu


def test_drain_time_is_battery_energy_over_mean_power():
    phone = get_gpu("snapdragon-8-gen3")  # 19.4 Wh
    energy = {"gpu_busy_j": 5400.0, "gpu_idle_j": 1800.0}  # 7200 J over 3600 s on 2 devices: 1 W each
    b = battery_summary(phone, energy, devices=2, completed=100, output_tokens=18000, duration_s=3600.0)
    assert b["avg_power_per_device_w"] == pytest.approx(1.0)
    assert b["hours_to_drain"] == pytest.approx(19.4)  # 19.4 Wh / 1 W
    assert b["j_per_output_token"] == pytest.approx(0.4)
    assert b["output_tokens_per_j"] == pytest.approx(2.5)
    assert b["battery_pct_per_request"] == pytest.approx(72.0 / (19.4 * 3600) * 100)


def test_only_a_battery_device_reports_it():
    assert battery_summary(get_gpu("jetson-agx-orin-64gb"), {"gpu_busy_j": 1.0, "gpu_idle_j": 0.0}, 1, 1, 1, 1.0) \
        is None


def test_a_phone_run_reports_its_battery_and_no_server_host():
    wl = WorkloadConfig(rate=0.5, num_requests=20)
    s = simulate(Scenario(model="llama-3.2-1b", gpu="snapdragon-8-gen3", workload=wl)).summary()
    b, e = s["battery"], s["energy"]
    assert e["host_j"] == 0  # an SoC is the whole device
    mean_w = (e["gpu_busy_j"] + e["gpu_idle_j"]) / s["duration_s"]
    assert b["hours_to_drain"] == pytest.approx(19.4 / mean_w)
    assert b["j_per_output_token"] == pytest.approx(e["total_j"] / s["total_output_tokens"])
    assert "battery" not in simulate(Scenario(model="llama-3.2-1b", gpu="h100", workload=wl)).summary()


def test_a_power_budget_on_a_throttling_device_is_refused():
    from servesim.config import Scenario
    from servesim.errors import ServesimError
    from servesim.sim.deployment import plan

    with pytest.raises(ServesimError, match="throttles itself"):
        plan(Scenario(model="llama-3.2-1b", gpu="snapdragon-8-gen3", power={"budget_w": 50.0}))
