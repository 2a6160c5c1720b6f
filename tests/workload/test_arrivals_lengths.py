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


def test_rate_shape_follows_the_day_and_keeps_the_mean_rate():
    shape = [1, 3, 0, 4]  # relative rates over four slices of a 100 s period; the third has no arrivals
    wl = WorkloadConfig(num_requests=40000, rate=10.0, rate_shape=shape, rate_period_s=100.0, seed=4)
    times = np.array([r.arrival for r in generate(wl)])
    assert np.all(np.diff(times) >= 0)
    assert len(times) / times[-1] == pytest.approx(10.0, rel=0.02)
    share = np.bincount((times % 100.0 // 25.0).astype(int), minlength=4) / len(times)
    assert share == pytest.approx(np.array(shape) / sum(shape), abs=0.01)
    # within a slice arrivals stay Poisson at the slice's rate
    gaps = np.diff(times[(times % 100.0 > 26) & (times % 100.0 < 49)])
    gaps = gaps[gaps < 5]
    assert 1 / gaps.mean() == pytest.approx(10.0 * 3 / 2, rel=0.05)


def test_generated_chunks_are_the_whole_stream_in_pieces():
    from servesim.workload import generate_chunks

    wl = WorkloadConfig(num_requests=1000, rate=20.0, seed=2)
    whole = [(r.id, r.arrival, r.prompt_len, r.output_len) for r in generate(wl, (1, 3))]
    chunks = list(generate_chunks(wl, (1, 3), size=64))
    assert len(chunks) == 16 and all(len(c) <= 22 for c in chunks)
    assert [(r.id, r.arrival, r.prompt_len, r.output_len) for c in chunks for r in c] == whole
    assert all(r.id % 3 == 1 for r in (q for c in chunks for q in c))


def test_rate_shape_is_refused_where_there_is_no_rate():
    with pytest.raises(ValueError, match="arrival = 'burst' has none"):
        WorkloadConfig(rate_shape=[1, 2], arrival="burst")
    with pytest.raises(ValueError, match="at least one above zero"):
        WorkloadConfig(rate_shape=[0, 0])
