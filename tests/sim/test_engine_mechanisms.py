"""Engine mechanisms end to end: semi-PD workers, layered prefill, speculative decoding and quantization runs."""

import csv
from pathlib import Path

import pytest

from servesim.api import simulate
from servesim.config import (
    EngineConfig,
    LengthDist,
    PoolConfig,
    Scenario,
    SemiPDConfig,
    SpeculativeConfig,
    WorkloadConfig,
)
from servesim.errors import ServesimError
from servesim.metrics import token_times
from tests.sim.conftest import serve


def _wl(n=300, rate=20.0, prompt=1024, out=128):
    return WorkloadConfig(num_requests=n, rate=rate, input=LengthDist(mean=prompt, sigma=0.5, max=8192),
                          output=LengthDist(mean=out, sigma=0.5, max=1024))  # fmt: skip


def test_layered_prefill_runs_a_prompt_through_its_groups(checked):
    e = EngineConfig(scheduler="layered_prefill", scheduler_options={"groups": 4}, max_num_batched_tokens=1024)
    r, (req,) = serve([(0.0, 2000, 3)], e)
    steps = r.meter.log.arrays()
    assert list(steps["tokens"][:4]) == [500, 500, 500, 500]  # a quarter of the prompt's KV per iteration
    assert req.record.first_token == pytest.approx(steps["end"][3])


def test_layered_prefill_serves_everything_with_invariants(checked):
    e = EngineConfig(scheduler="layered_prefill", scheduler_options={"groups": 4}, max_num_batched_tokens=512)
    arrivals = [(0.01 * i, 300 + 97 * (i % 13), 20 + i % 7) for i in range(60)]
    r, reqs = serve(arrivals, e, num_blocks=400)
    assert all(len(token_times(q, [r.meter.iter_end])) == q.output_len for q in reqs)


def test_semi_pd_serves_all_requests_and_controls_the_split():
    sc = Scenario(replicas=2, semi_pd=SemiPDConfig(enabled=True, interval_s=0.2), workload=_wl())
    res = simulate(sc)
    s = res.summary()
    assert s["completed"] == 300 and set(s["pools"]) == {"prefill", "decode"}
    assert s["cost"]["gpus"] == 2  # two GPUs, each running both workers
    assert s["kv_transfer_ms"]["p99"] == 0.0
    assert any(n.startswith("semi-PD:") for n in res.notes)


def test_semi_pd_is_refused_where_it_cannot_run():
    for sc, why in [
        (Scenario(semi_pd=SemiPDConfig(enabled=True), prefill=PoolConfig(), decode=PoolConfig()), "disaggregated"),
        (Scenario(semi_pd=SemiPDConfig(enabled=True), partitions=2, replicas=2), "controller"),
    ]:
        with pytest.raises(ServesimError, match=f"semi-PD.*{why}"):
            simulate(sc)


def test_speculative_decoding_and_quantization_lower_tpot_at_low_load():
    wl = _wl(n=100, rate=2.0)
    plain = simulate(Scenario(workload=wl)).summary()
    for e in (EngineConfig(speculative=SpeculativeConfig()), EngineConfig(quantization="awq")):
        s = simulate(Scenario(workload=wl, engine=e)).summary()
        assert s["completed"] == 100 and s["total_output_tokens"] == plain["total_output_tokens"]
        assert s["tpot_ms"]["mean"] < 0.8 * plain["tpot_ms"]["mean"]
        assert "perf_model" in s and s["perf_model"] != plain["perf_model"]


def test_bad_mechanism_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="needs draft_model"):
        SpeculativeConfig(method="draft_model")
    with pytest.raises(ValueError, match="AWQ checkpoints are 4-bit"):
        EngineConfig(quantization="awq", quantization_bits=8)
    with pytest.raises(ServesimError, match="unknown model"):
        simulate(Scenario(engine=EngineConfig(speculative=SpeculativeConfig(method="draft_model",
                                                                            draft_model="nope"))))  # fmt: skip


def test_a_semi_pd_workers_power_and_cost_follow_its_sm_share():
    from servesim.sim.deployment import build, plan

    cluster = build(plan(Scenario(semi_pd=SemiPDConfig(enabled=True, prefill_sm=0.5), workload=_wl())))
    p, d = cluster.pools[0].replicas[0], cluster.pools[1].replicas[0]
    assert p.gpus == d.gpus == 0.5
    p.set_sm_share(0.7)
    d.set_sm_share(0.3)
    assert (p.perf.share, d.perf.share) == (0.7, 0.3)
    assert p.gpus == pytest.approx(0.7) and p.gpus + d.gpus == pytest.approx(1.0)  # the pair pays for one GPU
    assert p.usd_per_s + d.usd_per_s == pytest.approx(p.price_per_hour / 3600)
    assert p.meter.usd_per_s == p.usd_per_s


VALIDATION = Path(__file__).parents[2] / "docs" / "validation" / "h100_green_context_pair.csv"


def test_semi_pds_contention_reproduces_the_measured_green_context_pairs():
    """Two green contexts on one H100, a GEMM and GEMVs launched together: priced as processor sharing, each pair
    takes the time measured (both alone on their partitions, then together)."""
    from servesim.perf.profiled import load_profile_for
    from servesim.perf.sm_share import PAIR_TABLE, PairContention

    profile = load_profile_for("h100-sxm")
    assert (profile.path / PAIR_TABLE).read_bytes() == VALIDATION.read_bytes()  # the profile's copy is the measurement
    pair = PairContention.for_profile(profile)
    for row in csv.DictReader(VALIDATION.open()):
        x = float(row["gemm_sms"]) / (float(row["gemm_sms"]) + float(row["gemv_sms"]))
        short, long = sorted((float(row["gemm_part_s"]), float(row["gemv_part_s"])))
        # both run until the shorter is done (each slowed), then the longer alone
        together = short * pair.slowdown(x, 1.0) + long - short
        assert together == pytest.approx(float(row["both_s"]), rel=1e-9)
        assert pair.slowdown(x, 0.0) == 1.0 and 1.0 < pair.slowdown(x, 0.5) < pair.slowdown(x, 1.0) <= 2.0
    assert PairContention.for_profile(None).source.endswith("on the H100")  # other GPUs borrow the H100's


def test_busy_spans_and_their_overlap():
    from servesim.sim.semi_pd import together

    assert together([(0.0, 1.0), (2.0, 3.0)], [(0.5, 2.5)]) == pytest.approx(1.0)
    assert together([(0.0, 1.0)], [(1.0, 2.0)]) == 0.0 and together([], [(0.0, 1.0)]) == 0.0


def test_semi_pd_workers_slow_each_other_as_measured_unless_assumed_not_to():
    wl = _wl(n=300, rate=12.0, prompt=2048, out=256)
    runs = {c: simulate(Scenario(replicas=2, workload=wl, semi_pd=SemiPDConfig(enabled=True, adaptive=False,
                                                                                   contention=c)))
            for c in ("measured", "none")}  # fmt: skip
    measured, assumed = (r.summary() for r in runs.values())
    assert measured["e2el_ms"]["mean"] > 1.2 * assumed["e2el_ms"]["mean"]  # contention costs
    pd = measured["semi_pd"]
    assert pd["contention"] == "measured" and assumed["semi_pd"]["contention"] == "none"
    for role in ("prefill", "decode"):
        assert 0.0 < pd[f"{role}_overlap"] <= 1.0 and 1.0 < pd[f"{role}_slowdown"] <= 2.0
    assert any("semi-PD contention (measured pair of green contexts)" in n for n in runs["measured"].notes)
    assert any("no contention priced (assumed)" in n for n in runs["none"].notes)
    # the overlap is read one interval late: a five times shorter interval moves the mean E2EL little
    fine = simulate(Scenario(replicas=2, workload=wl, semi_pd=SemiPDConfig(enabled=True, adaptive=False,
                                                                           interval_s=0.1))).summary()  # fmt: skip
    assert fine["e2el_ms"]["mean"] == pytest.approx(measured["e2el_ms"]["mean"], rel=0.05)
