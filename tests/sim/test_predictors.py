import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.config import EngineConfig
from servesim.errors import ServesimError
from servesim.sim.predictors import Predictor, PredictorConfig
from servesim.sim.request import Request
from tests.sim.conftest import make_replica


def kendall_tau(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
    return float((dx * dy).sum() / np.sqrt((dx != 0).sum() * (dy != 0).sum()))


def requests(n=1500, sigma=1.0, seed=0):
    outs = np.maximum(1, np.round(np.random.default_rng(seed).lognormal(5, sigma, n))).astype(int)
    return [Request(i, 0.0, 10, int(o)) for i, o in enumerate(outs)]


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.6, 0.9])
def test_noisy_ranker_has_the_asked_kendall_tau(tau):
    reqs = requests()
    p = Predictor(PredictorConfig(predictor="noisy", tau=tau, seed=3))
    got = kendall_tau([r.output_len for r in reqs], [p(r) for r in reqs])
    assert got == pytest.approx(tau, abs=0.04)


def test_oracle_and_determinism():
    reqs = requests(200)
    oracle = Predictor(PredictorConfig())
    assert [oracle(r) for r in reqs] == [r.output_len for r in reqs]
    a, b = (Predictor(PredictorConfig(predictor="buckets", seed=1)) for _ in range(2))
    assert [a(r) for r in reqs] == [b(r) for r in reversed(reqs)][::-1]  # a request's draw: seed and id only


def test_buckets_name_the_right_range_as_often_as_asked():
    cfg = PredictorConfig(predictor="buckets", buckets=[64, 256, 1024], accuracy=0.7)
    p = Predictor(cfg)
    reqs = requests(4000)
    mids = np.array(p._mids)
    right = [int(np.argmin(abs(mids - p(r)))) == int(np.searchsorted([64, 256, 1024], r.output_len)) for r in reqs]
    assert np.mean(right) == pytest.approx(0.7, abs=0.03)
    with pytest.raises(ServesimError, match="buckets must be increasing"):
        make_replica(EngineConfig(scheduler="sjf", scheduler_options={"predictor": "buckets", "buckets": [64, 32]}))


@settings(max_examples=25, deadline=None)
@given(tau=st.floats(0, 1), out=st.integers(1, 100_000), rid=st.integers(0, 10**9))
def test_predictions_are_positive_and_finite(tau, out, rid):
    p = Predictor(PredictorConfig(predictor="noisy", tau=tau))
    for q in (Request(rid, 0.0, 5, out), Request(rid + 1, 0.0, 5, 1)):
        assert 0 < p(q) < float("inf")
