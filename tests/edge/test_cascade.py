"""Edge-cloud cascades (edge/cascade.py, servesim cascade)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from servesim import WorkloadConfig, simulate
from servesim.cli import app
from servesim.edge.cascade import cloud_scenario, device_scenario, load_cascade, simulate_cascade
from servesim.errors import ServesimError

SMALL = dict(devices=1, num_requests=12, rate_per_device=0.2, cloud_model="llama-3.1-8b", cloud_tp=1)


def _alone(sc, df, tmp_path, shift_s=0.0):
    """Per-request E2E latency of `sc` serving df's requests by itself (a replayed trace, in df's order)."""
    trace = tmp_path / f"alone_{sc.gpu}.jsonl"
    ms = np.round((df.arrival_s.to_numpy() + shift_s) * 1e3).astype(int)
    trace.write_text("".join(json.dumps({"timestamp": int(t), "input_length": int(i), "output_length": int(o)}) + "\n"
                             for t, i, o in zip(ms, df.input_len, df.output_len, strict=True)))
    wl = WorkloadConfig(trace=trace, arrival="trace", num_requests=len(df))
    return simulate(sc.model_copy(update={"workload": wl})).requests.sort_values("request_id").e2el_s.to_numpy()


def test_fraction_zero_is_the_device_alone(tmp_path):
    cfg = load_cascade(flags={**SMALL, "escalate": 0.0})
    s, df = simulate_cascade(cfg)
    assert s["escalated"] == 0 and s["cloud"]["total_usd"] == 0
    np.testing.assert_allclose(df.e2e_s, _alone(device_scenario(cfg), df, tmp_path), rtol=1e-9, atol=1e-9)
    assert s["device"]["j_per_request"] > 0 and s["device"]["battery_pct_per_request"] > 0


def test_fraction_one_is_the_cloud_alone_plus_the_network(tmp_path):
    cfg = load_cascade(flags={**SMALL, "escalate": 1.0, "rtt_ms": 40.0, "uplink_mbps": 1e6, "downlink_mbps": 1e6})
    s, df = simulate_cascade(cfg)
    assert s["escalated"] == s["requests"] and s["device"]["j_per_request"] == 0
    alone = _alone(cloud_scenario(cfg), df, tmp_path, shift_s=0.020)
    np.testing.assert_allclose(df.e2e_s, alone + 0.040, atol=1e-3)  # one round trip; arrivals on a 1 ms grid
    assert s["cloud"]["usd_per_request"] * s["requests"] == pytest.approx(s["cloud"]["total_usd"])
    assert s["cloud"]["total_usd"] == pytest.approx(s["cloud"]["gpu_hours"] * 2.99)  # H100's catalog price


def test_latency_grows_with_the_round_trip():
    near = simulate_cascade(load_cascade(flags={**SMALL, "escalate": 0.5, "rtt_ms": 10}))[0]
    far = simulate_cascade(load_cascade(flags={**SMALL, "escalate": 0.5, "rtt_ms": 400}))[0]
    assert far["escalated"] == near["escalated"] > 0
    assert far["e2e_ms"]["mean"] > near["e2e_ms"]["mean"] and far["ttft_ms"]["mean"] > near["ttft_ms"]["mean"]
    assert far["network"]["ms_per_escalated_request"] - near["network"]["ms_per_escalated_request"] == \
        pytest.approx(390, abs=1e-6)


def test_a_cascade_after_the_device_wastes_its_work():
    before, dfb = simulate_cascade(load_cascade(flags={**SMALL, "escalate": 0.5}))
    after, dfa = simulate_cascade(load_cascade(flags={**SMALL, "escalate": 0.5, "when": "after"}))
    up = dfa.escalated.to_numpy()
    assert (dfb.escalated.to_numpy() == up).all()
    assert (dfa.device_j[up] > 0).all() and (dfb.device_j[up] == 0).all()
    assert after["device"]["wasted_j_per_request"] > 0
    assert (dfa.e2e_s[up] > dfb.e2e_s[up]).all()  # the device's answer comes first, then the cloud's


def test_escalate_above_routes_the_long_prompts():
    s, df = simulate_cascade(load_cascade(flags={**SMALL, "escalate_above": 200}))
    assert (df.escalated == (df.input_len > 200)).all() and 0 < s["escalated"] < s["requests"]


@pytest.mark.parametrize("flags, message", [
    ({"escalate": 1.5}, r"fraction must be in \[0, 1\], not 1.5"),
    ({"escalate": -0.1}, r"fraction must be in \[0, 1\]"),
    ({"escalate": 0.1, "rtt_ms": -5}, "round trip cannot be negative"),
    ({"escalate": 0.1, "uplink_mbps": 0}, "uplink_mbps: a bandwidth must be above 0"),
    ({"escalate": 0.1, "downlink_mbps": -1}, "downlink_mbps: a bandwidth must be above 0"),
    ({}, "say which requests escalate"),
    ({"escalate": 0.1, "escalate_above": 100}, "two rules; give one"),
    ({"escalate_above": 100, "when": "after"}, "known before the device answers"),
    ({"escalate_above": 5000}, "nothing would escalate"),
])  # fmt: skip
def test_bad_input_is_one_line(flags, message):
    with pytest.raises(ServesimError, match=message) as e:
        load_cascade(flags=flags)
    assert "\n" not in str(e.value)


def test_a_model_that_does_not_fit_the_device_is_refused():
    with pytest.raises(ServesimError, match=r"^device: llama-3.1-8b does not fit on snapdragon-8-gen3.*--device-model"):
        simulate_cascade(load_cascade(flags={**SMALL, "escalate": 0.1, "device_model": "llama-3.1-8b"}))


def test_cli_and_toml(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["cascade", "--escalate", "0.3", "--devices", "2", "--num-requests", "5",
                              "--cloud-model", "llama-3.1-8b", "--cloud-tp", "1", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["requests"] == 10 and s["device"]["battery_wh"] == 19.4 and s["cloud"]["usd_per_m_tokens"] > 0
    f = tmp_path / "c.toml"
    f.write_text("[cascade]\nescalate = 2\n")
    res = runner.invoke(app, ["cascade", "-c", str(f)])
    assert res.exit_code == 2 and "escalate: the escalated fraction must be in [0, 1], not 2" in res.output
    res = runner.invoke(app, ["cascade", "-c", str(f), "--escalate", "0.2", "--num-requests", "3", "--devices", "1",
                              "--cloud-model", "llama-3.1-8b", "--cloud-tp", "1"])
    assert res.exit_code == 0 and "edge-cloud cascade" in res.output  # a flag overrides the file
