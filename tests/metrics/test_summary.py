import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize("extra", [{}, {"migration": {"enabled": True}}])
def test_itl_table_counts_every_gap_of_every_token(extra):
    """Gaps counted per iteration equal each request's token times differenced one by one, across the segments
    of preempted and migrated requests too."""
    from servesim import Scenario, simulate
    from servesim.metrics import itl_table
    from servesim.metrics.summary import token_times

    sc = Scenario.model_validate({"workload": {"num_requests": 300, "rate": 40.0, "output": {"mean": 300}},
                                  "engine": {"gpu_memory_utilization": 0.22, "max_model_len": 4096}, "replicas": 2,
                                  "router": "round_robin", **extra})  # fmt: skip
    r = simulate(sc)
    reqs = r.raw_requests
    assert sum(q.record.preemptions for q in reqs) > 0 and max(len(q.record.segments) for q in reqs) > 1
    table = itl_table(reqs, r.iter_ends)
    per_request = [np.diff(token_times(q, r.iter_ends)) if q.record.finish is not None and q.output_len > 1
                   else np.empty(0) for q in reqs]  # fmt: skip
    every = np.sort(np.concatenate(per_request))
    np.testing.assert_allclose(np.sort(table.expanded()), every, rtol=0, atol=1e-12)
    with_gaps = np.array([len(g) > 0 for g in per_request])
    np.testing.assert_allclose(table.mean[with_gaps], [g.mean() for g in per_request if len(g)], rtol=1e-9)
    np.testing.assert_array_equal(table.max[with_gaps], [g.max() for g in per_request if len(g)])
    assert np.isnan(table.mean[~with_gaps]).all()


@given(st.lists(st.tuples(st.floats(0, 1e3, allow_nan=False), st.integers(0, 5)), min_size=1, max_size=40))
def test_counted_values_have_numpys_statistics(pairs):
    """Statistics of values with counts are those of the values repeated, as numpy computes them."""
    from servesim.metrics.sketch import exact_stats

    v, c = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    got, want = exact_stats(v, counts=c), exact_stats(np.repeat(v, c))
    for key, value in want.items():
        assert (got[key] is None and value is None) or got[key] == pytest.approx(value, rel=1e-9, abs=1e-9)


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
