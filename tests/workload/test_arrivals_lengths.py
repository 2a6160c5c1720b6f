import numpy as np
import pytest

from servesim.config import LengthDist, WorkloadConfig
from servesim.workload import arrival_times, generate, sample_lengths


def rng(seed=0):
    return np.random.default_rng(seed)


def test_poisson_rate_and_first_at_zero():
    t = arrival_times(20000, 8.0, "poisson", 1.0, rng())
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    assert (len(t) - 1) / t[-1] == pytest.approx(8.0, rel=0.03)
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)  # exponential: CV 1


def test_gamma_burstiness_keeps_rate_and_sets_cv():
    t = arrival_times(20000, 8.0, "gamma", 0.25, rng())
    gaps = np.diff(t)
    assert 1 / gaps.mean() == pytest.approx(8.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.08)  # CV = 1/sqrt(shape)


def test_constant_and_burst():
    assert np.allclose(np.diff(arrival_times(5, 4.0, "constant", 1.0, rng())), 0.25)
    assert not arrival_times(5, 4.0, "burst", 1.0, rng()).any()
    assert not arrival_times(5, float("inf"), "poisson", 1.0, rng()).any()


def test_lengths():
    assert (sample_lengths(LengthDist(dist="fixed", mean=100), 10, rng()) == 100).all()
    u = sample_lengths(LengthDist(dist="uniform", min=5, max=9), 1000, rng())
    assert u.min() == 5 and u.max() == 9
    ln = sample_lengths(LengthDist(dist="lognormal", mean=300, sigma=0.5, max=10**6), 50000, rng())
    assert ln.mean() == pytest.approx(300, rel=0.02)
    clipped = sample_lengths(LengthDist(dist="lognormal", mean=300, sigma=2, min=10, max=400), 1000, rng())
    assert clipped.min() >= 10 and clipped.max() <= 400


def test_generate_is_deterministic():
    wl = WorkloadConfig(num_requests=200, seed=7)
    a, b = generate(wl), generate(wl)
    assert [(r.arrival, r.prompt_len, r.output_len) for r in a] == [(r.arrival, r.prompt_len, r.output_len) for r in b]
    c = generate(WorkloadConfig(num_requests=200, seed=8))
    assert [r.prompt_len for r in a] != [r.prompt_len for r in c]
    assert [r.id for r in a] == list(range(200))
