"""Decode runs in closed form: the curve prices iterations as the batch model does, and a run's sums
and horizon match adding the iterations up one by one."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.hardware import get_gpu
from servesim.layout import Layout
from servesim.models import get_model
from servesim.perf import Batch
from servesim.perf.base import FAR, DecodeCurve
from servesim.perf.energy import PowerModel, stretch
from servesim.perf.profiled import make_perf_model

CASES = [("llama-3.1-8b", 1, {}), ("qwen2.5-14b", 1, {}), ("mixtral-8x7b", 2, {"ep": 2}), ("deepseek-v3", 8, {}),
         ("llama-3.1-70b", 4, {"pp": 2})]  # fmt: skip


@pytest.mark.parametrize("kind", ["roofline", "auto"])
@pytest.mark.parametrize(("model", "tp", "parallel"), CASES)
def test_curve_prices_decode_iterations_as_the_batch_model(kind, model, tp, parallel):
    perf = make_perf_model(get_model(model), get_gpu("h100-sxm"), Layout(tp, **parallel), kind=kind)
    for n in (1, 3, 16, 100, 256):
        curve = perf.decode_curve(n)
        for ctx in (1, 100, 517, 2048, 5000, 33000, 200000):
            assert float(curve.times(ctx)) == pytest.approx(perf.iteration_time(Batch.decode(n, ctx)), rel=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    xs=st.lists(st.floats(0, 5000), min_size=1, max_size=5, unique=True),
    rises=st.lists(st.floats(0, 1e-5), min_size=6, max_size=6),
    x0=st.floats(0, 6000),
    k=st.integers(1, 3000),
    scale=st.tuples(st.floats(0, 0.01), st.floats(1, 2)),
    cut=st.floats(0, 1.3),
)
def test_run_sums_and_horizon_match_adding_iterations(xs, rises, x0, k, scale, cut):
    xs = np.array(sorted(xs) + [FAR])
    slopes = np.array(rises[: len(xs) - 1])
    seconds = 0.004 + np.concatenate(([0.0], np.cumsum(slopes * np.diff(xs))))
    curve = DecodeCurve(0.001, 0.0005, xs, seconds)
    t = curve.times(x0 + np.arange(k))
    lasts = scale[0] + scale[1] * t
    ends = np.cumsum(lasts)
    budget = cut * ends[-1]
    count, total, elapsed = curve.run(x0, k, budget, scale)
    expected = min(int(np.searchsorted(ends, budget)) + 1, k)
    if count != expected:  # only a tie within rounding may fall either way
        assert math.isclose(ends[min(count, expected) - 1], budget, rel_tol=1e-9)
    assert total == pytest.approx(t[:count].sum(), rel=1e-9)
    assert elapsed == pytest.approx(ends[count - 1], rel=1e-9)
    assert curve.run(x0, k)[0] == k  # no horizon: the whole run


@pytest.mark.parametrize("clock", [1.0, 0.8, 0.55])
def test_power_is_linear_in_an_iterations_seconds(clock):
    pw = PowerModel(idle_w=100, compute_w=700, memory_w=560, source="test")
    comp, other = 0.004, 0.001
    a, b, e0, e1 = pw.linear(comp, other, clock)
    for seconds in (0.006, 0.01, 0.05):
        mem = seconds - comp - other
        lasts = sum(stretch(comp, mem, clock)) + other
        assert a + b * seconds == pytest.approx(lasts, rel=1e-12)
        assert e0 + e1 * seconds == pytest.approx(pw.mean_watts(comp, mem, other, clock) * lasts, rel=1e-12)
