import numpy as np
import pytest

from servesim import Scenario, simulate
from servesim.config import TenantConfig, WorkloadConfig
from servesim.metrics.tenants import jain
from servesim.records import Records


def test_jain_index():
    assert jain(np.array([3.0, 3.0, 3.0])) == pytest.approx(1.0)
    assert jain(np.array([1.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25)
    assert jain(np.array([2.0, 1.0])) == pytest.approx(0.9)


def _records(rows):
    cols = ["tenant", "arrival_s", "first_scheduled_s", "first_token_s", "finish_s", "input_len", "output_len"]
    data = {c: np.array([r[i] for r in rows], dtype=float) for i, c in enumerate(cols)}
    data["tenant"] = data["tenant"].astype(int)
    data["completed"] = np.ones(len(rows), dtype=bool)
    return Records(data)


def test_fairness_counts_only_while_both_wait():
    from servesim.metrics.tenants import fairness

    # tenant 0 waits over [0, 10) and is served 2:1 against tenant 1, who waits over [0, 10) too
    rows = [(0, 0.0, 10.0, 10.0, 20.0, 100, 100), (1, 0.0, 10.0, 10.0, 20.0, 100, 25)]
    rows += [(0, 0.0, 0.0, 0.0 + k, 1.0 + k, 0, 200) for k in range(10)]  # one request a second, for tenant 0
    rows += [(1, 0.0, 0.0, 0.0 + k, 1.0 + k, 0, 100) for k in range(10)]
    f = fairness(_records(rows), 2, np.ones(2), 20.0)
    assert f["backlogged_s"] == pytest.approx(10.0, abs=0.1)
    assert f["service_share_backlogged"] == pytest.approx([2 / 3, 1 / 3], abs=0.01)
    assert f["jain_backlogged"] == pytest.approx(0.9, abs=0.01)


def test_run_summary_has_tenants_and_fairness():
    wl = WorkloadConfig(num_requests=600, tenants=[TenantConfig(name="heavy", rate=60), TenantConfig(name="light",
                                                                                                  rate=30)])
    s = simulate(Scenario(workload=wl)).summary()
    assert set(s["tenants"]) == {"heavy", "light"}
    assert s["tenants"]["heavy"]["completed"] + s["tenants"]["light"]["completed"] == s["completed"]
    assert 0.5 <= s["fairness"]["jain_backlogged"] <= 1.0
    streamed = simulate(Scenario(workload=wl), stream=True)
    assert "tenants" not in streamed.summary() and any("per-tenant" in n for n in streamed.notes)
