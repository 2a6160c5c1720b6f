import numpy as np
import pytest

from servesim import SLO, Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import LengthDist
from servesim.metrics import good_mask


@pytest.fixture(scope="module")
def result():
    wl = WorkloadConfig(num_requests=300, rate=12.0, seed=2)
    return simulate(Scenario(workload=wl, slo=SLO(ttft_ms=20, tpot_ms=9)))


def test_records_follow_vllm_definitions(result):
    df = result.requests
    assert len(df) == 300 and df.completed.all()
    np.testing.assert_allclose(df.ttft_s, df.first_token_s - df.arrival_s)
    np.testing.assert_allclose(df.e2el_s, df.finish_s - df.arrival_s)
    multi = df[df.output_len > 1]
    np.testing.assert_allclose(multi.tpot_s, (multi.e2el_s - multi.ttft_s) / (multi.output_len - 1))
    assert df[df.output_len == 1].tpot_s.isna().all()
    # TPOT is the mean ITL of a request: decoding time over its decode steps
    np.testing.assert_allclose(multi.itl_mean_s, multi.tpot_s, rtol=1e-9)
    row = df.iloc[5]
    gaps = np.diff(result.token_times(5))
    assert row.itl_max_s == pytest.approx(gaps.max())


def test_summary_statistics(result):
    s, df = result.summary(), result.requests
    assert s["completed"] == 300 and s["failed"] == 0
    assert s["duration_s"] == pytest.approx(df.finish_s.max())
    assert s["request_throughput"] == pytest.approx(300 / s["duration_s"])
    assert s["output_throughput"] == pytest.approx(df.output_len.sum() / s["duration_s"])
    assert s["total_token_throughput"] == pytest.approx((df.output_len.sum() + df.input_len.sum()) / s["duration_s"])
    assert s["ttft_ms"]["median"] == pytest.approx(np.median(df.ttft_s) * 1000)
    assert s["ttft_ms"]["p99"] == pytest.approx(np.percentile(df.ttft_s, 99) * 1000)
    all_itls = np.concatenate([np.diff(result.token_times(i)) for i in range(300) if df.output_len[i] > 1])
    assert s["itl_ms"]["mean"] == pytest.approx(all_itls.mean() * 1000)
    assert s["itl_ms"]["p90"] == pytest.approx(np.percentile(all_itls, 90) * 1000)
    assert 0 < s["kv_cache"]["mean_usage"] <= s["kv_cache"]["max_usage"] <= 1
    assert 1 <= s["batch_size"]["mean"] <= s["batch_size"]["max"]


def test_goodput(result):
    s, df = result.summary(), result.requests
    ok = (df.ttft_s * 1000 <= 20) & ((df.tpot_s * 1000 <= 9) | df.tpot_s.isna())
    assert s["good_requests"] == int(ok.sum())
    assert s["request_goodput"] == pytest.approx(ok.sum() / s["duration_s"])
    assert 0 < s["good_requests"] < 300  # the targets are tight enough to bite
    loose = good_mask(df, SLO(e2el_ms=1e9))
    assert loose.all()


def test_slo_parsing():
    assert SLO.parse(["ttft:500 tpot:50"]) == SLO(ttft_ms=500, tpot_ms=50)
    assert SLO.parse(["ttft:0.5s", "e2el:2000ms"]) == SLO(ttft_ms=500, e2el_ms=2000)
    for bad, msg in (("ttft=5", "must be ttft:MS"), ("tbt:5", "must be ttft:MS"), ("ttft:x", "not a duration"),
                     ("ttft:-1", "positive")):  # fmt: skip
        with pytest.raises(ServesimError, match=msg):
            SLO.parse([bad])


def test_throughput_saturates():
    wl = dict(num_requests=400, input=LengthDist(dist="fixed", mean=1000), output=LengthDist(dist="fixed", mean=200))
    thr = [simulate(Scenario(workload=WorkloadConfig(rate=rate, **wl))).summary()["request_throughput"]
           for rate in (1, 4, 40, 400)]  # fmt: skip
    assert thr[0] == pytest.approx(1.0, rel=0.2)
    assert thr[1] > 3 * thr[0]
    assert thr[3] == pytest.approx(thr[2], rel=0.1)  # past capacity, more load adds nothing
    assert thr[2] < 40


def test_same_seed_same_result():
    sc = Scenario(workload=WorkloadConfig(num_requests=200, rate=20, seed=4))
    a, b = simulate(sc).requests, simulate(sc).requests
    assert a.equals(b)
    c = simulate(Scenario(workload=WorkloadConfig(num_requests=200, rate=20, seed=5))).requests
    assert not a.equals(c)


def test_too_long_requests_are_rejected():
    sc = Scenario(workload=WorkloadConfig(num_requests=50, input=LengthDist(dist="fixed", mean=3000)))
    sc.engine.max_model_len = 3100
    s = simulate(sc).summary()
    assert s["failed"] > 0 and s["completed"] + s["failed"] == 50


def test_itl_table_in_chunks_equals_all_at_once():
    from servesim import Scenario, WorkloadConfig, simulate
    from servesim.metrics import itl_table

    r = simulate(Scenario(workload=WorkloadConfig(num_requests=120, rate=20.0), replicas=2, router="round_robin"))
    whole, parts = itl_table(r.raw_requests, r.iter_ends, chunk=10**6), itl_table(r.raw_requests, r.iter_ends, chunk=7)
    np.testing.assert_array_equal(whole.gaps, parts.gaps)
    np.testing.assert_array_equal(whole.mean, parts.mean)
    np.testing.assert_array_equal(whole.max, parts.max)
    assert len(whole.gaps) == sum(q.output_len - 1 for q in r.raw_requests if q.record.finish is not None)


def test_offline_runs_report_their_steady_state_throughput():
    """Offline (all at once): throughput while requests still waited, from the step log; the ramp-down excluded."""
    fixed = lambda n: LengthDist(dist="fixed", mean=n)  # noqa: E731
    wl = WorkloadConfig(num_requests=600, rate=float("inf"), input=fixed(128), output=fixed(512))
    res = simulate(Scenario(workload=wl))
    s, steps = res.summary(), res.steps
    assert s["preemptions"] == 0 and steps["out"].sum() == s["total_output_tokens"]  # every token counted once
    full = steps["waiting"] > 0
    span = steps["end"] - steps["start"]
    st = s["steady_state"]
    assert st["output_throughput"] == pytest.approx(steps["out"][full].sum() / span[full].sum())
    assert st["total_token_throughput"] == pytest.approx((steps["tokens"] * steps["iters"])[full].sum()
                                                         / span[full].sum())  # fmt: skip
    assert 0.3 < st["output_share"] < 1 and st["output_throughput"] > 1.1 * s["output_throughput"]
    # arrivals over time: no steady state to report
    online = simulate(Scenario(workload=wl.model_copy(update={"rate": 20.0})))
    assert "steady_state" not in online.summary()
