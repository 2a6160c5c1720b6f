"""Pipeline schedules: the textbook bubble identities, Zero Bubble's direction, dependencies, memory."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim import ServesimError
from servesim.pipeline import PipelineConfig, StageCosts, simulate_pipeline
from servesim.pipeline.executor import execute, inputs, makes
from servesim.pipeline.ops import Op, looping
from servesim.pipeline.schedule import SCHEDULES

ALL = ["gpipe", "1f1b", "interleaved", "bfpp", "zb-h1", "zb-h2", "zb-v"]


def run(schedule, p, m, v=1, **costs):
    # a chunk is 1/v of a stage: its passes and activations are 1/v of the stage's
    c = StageCosts.uniform(p * v, **{k: x / v for k, x in ({"f": 1, "b": 1, "w": 1, "act": 1} | costs).items()})
    return simulate_pipeline(PipelineConfig(pp=p, micro_batches=m, schedule=schedule, chunks=None), c)


@settings(max_examples=60, deadline=None)
@given(p=st.integers(1, 7), m=st.integers(1, 16), schedule=st.sampled_from(["gpipe", "1f1b"]))
def test_gpipe_and_1f1b_bubble_is_textbook(p, m, schedule):
    """Equal F and B+W everywhere, free sends: step = (m+p-1)(F+B+W), bubble (p-1)/(m+p-1) on every device."""
    tl = run(schedule, p, m).timeline
    assert tl.makespan == pytest.approx(3 * (m + p - 1))
    assert tl.bubble() == pytest.approx(np.full(p, (p - 1) / (m + p - 1)))


@settings(max_examples=40, deadline=None)
@given(p=st.integers(2, 6), k=st.integers(1, 4), v=st.integers(2, 4))
def test_interleaved_bubble_is_p_minus_1_over_v_m(p, k, v):
    """Megatron's interleaved schedule: bubble time over ideal time = (p-1)/(v*m) (Narayanan et al., 2021)."""
    m = p * k
    c = StageCosts.uniform(p * v, 1 / v, 1 / v, 1 / v)
    tl = simulate_pipeline(PipelineConfig(pp=p, micro_batches=m, schedule="interleaved", chunks=v), c).timeline
    ideal = 3 * m
    assert (tl.makespan - ideal) / ideal == pytest.approx((p - 1) / (v * m))


@settings(max_examples=40, deadline=None)
@given(p=st.integers(2, 6), extra=st.integers(0, 8))
def test_zero_bubble_direction(p, extra):
    """ZB-H1: 1F1B's memory, bubble (p-1)(F+B-W) instead of (p-1)(F+B+W); ZB-H2 and ZB-V: no bubble within a
    device's span (Qi et al., 2024), at 2p and 1F1B's memory respectively."""
    m = p + extra
    one = run("1f1b", p, m).timeline
    h1, h2 = run("zb-h1", p, m).timeline, run("zb-h2", p, m).timeline
    zbv = run("zb-v", p, m, v=2).timeline
    assert h1.makespan == pytest.approx(3 * m + (p - 1))
    assert h1.peak_act.max() <= one.peak_act.max() + 1e-9
    assert h2.period <= h1.period and zbv.period <= h1.period
    if m >= 2 * p - 1:
        assert h2.period == pytest.approx(3 * m)
    assert zbv.peak_act.max() <= one.peak_act.max() + 1e-9


@settings(max_examples=25, deadline=None)
@given(p=st.integers(2, 5), m=st.integers(2, 10), schedule=st.sampled_from(ALL), seed=st.integers(0, 1000))
def test_every_schedule_respects_dependencies(p, m, schedule, seed):
    sched = SCHEDULES.get(schedule)()
    v = sched.chunks
    if schedule == "interleaved":
        m = p * max(1, m // p)
    rng = np.random.default_rng(seed)
    V = p * v
    c = StageCosts(rng.uniform(0.5, 2, V), rng.uniform(0.5, 2, V), rng.uniform(0.2, 1, V), np.ones(V),
                   np.full(V, 0.3), 0.1, 0.3, 2, np.zeros(V), np.zeros(V))  # fmt: skip
    placement = sched.placement(p, v)
    tl = execute(sched.orders(p, v, m, c), placement, c, m)
    end, ops = {}, 0
    for d, slices in enumerate(tl.slices):
        for (op, a, b), nxt in zip(slices, slices[1:] + [None], strict=True):
            assert placement[op.stage] == d and b > a
            assert nxt is None or nxt[1] >= b - 1e-12  # one op at a time per device
            if (made := makes(op)) is not None:
                end[made] = (b, d)
            ops += 1
    for d, slices in enumerate(tl.slices):
        for op, a, _ in slices:
            for dep in inputs(op, V):
                t, src = end[dep]
                assert a >= t + c.send(src, d) - 1e-12
    assert ops == m * V * (3 if schedule.startswith("zb") else 2)


def test_a_deadlocked_order_is_refused():
    c = StageCosts.uniform(2)
    orders = [[Op("BW", 0, 0), Op("F", 0, 0)], [Op("F", 0, 1), Op("BW", 0, 1)]]
    with pytest.raises(ServesimError, match="deadlocks: device 0 waits at BW0@0"):
        execute(orders, looping(2, 1), c, 1)
    with pytest.raises(ServesimError, match="missing or extra"):
        execute([[Op("F", 0, 0)], [Op("F", 0, 1), Op("BW", 0, 1)]], looping(2, 1), c, 1)


def test_zero_bubble_on_llama_70b_matches_the_papers_direction():
    """70B on 32 H100s (PP8 TP4), 32 micro-batches of 4096 tokens: ZB-H1 beats 1F1B at the same activation
    memory and ZB-H2 beats it more with twice the memory; Qi et al. report up to 23% and 31%."""
    base = PipelineConfig(model="llama-3.1-70b", gpu="h100-sxm", pp=8, tp=4, micro_batches=32, seq_len=4096,
                          perf_model="roofline")  # fmt: skip
    s = {name: simulate_pipeline(base.model_copy(update={"schedule": name})).summary() for name in ALL}
    gain = {k: s[k]["tokens_per_s"] / s["1f1b"]["tokens_per_s"] - 1 for k in s}
    assert 0.03 < gain["zb-h1"] < 0.25
    assert gain["zb-h1"] < gain["zb-h2"] < 0.35
    assert max(s["zb-h1"]["peak_activation_gib"]) <= max(s["1f1b"]["peak_activation_gib"]) * 1.001
    assert gain["interleaved"] > 0 and s["gpipe"]["tokens_per_s"] == pytest.approx(s["1f1b"]["tokens_per_s"])
    assert max(s["gpipe"]["peak_activation_gib"]) > 3 * max(s["1f1b"]["peak_activation_gib"])
    assert 0.3 < s["1f1b"]["mfu"] < 0.7


def test_refusals():
    with pytest.raises(ServesimError, match="runs 1 chunk"):
        simulate_pipeline(PipelineConfig(schedule="1f1b", chunks=2))
    with pytest.raises(ServesimError, match="divisible by pp"):
        simulate_pipeline(PipelineConfig(schedule="interleaved", micro_batches=12))
    with pytest.raises(ServesimError, match="MoE or MLA"):
        simulate_pipeline(PipelineConfig(model="mixtral-8x7b"))
    with pytest.raises(ServesimError, match="virtual stages"):
        simulate_pipeline(PipelineConfig(model="llama-3.1-8b", pp=8, tp=1, schedule="interleaved", chunks=5))
    with pytest.raises(ServesimError, match="unknown pipeline schedule 'zb'"):
        simulate_pipeline(PipelineConfig(schedule="zb"))
