"""The streamed summary's histogram: percentiles within half a bin of numpy's, mean and std exact,
and merging equal to adding everything at once."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.metrics.sketch import Exact, LogHistogram, exact_stats


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.floats(-9.0, 3.0), st.floats(0.05, 3.0), st.integers(0, 2**31))
def test_percentiles_within_half_a_bin_and_moments_exact(n, mu, sigma, seed):
    v = np.random.default_rng(seed).lognormal(mu, sigma, n)
    h = LogHistogram(rel=1e-3)
    h.add(v)
    got, want = h.stats(), exact_stats(v)
    for key in ("median", "p90", "p99"):
        assert got[key] == pytest.approx(want[key], rel=0.5e-3 + 1e-12)
    assert got["mean"] == pytest.approx(want["mean"], rel=1e-9)
    assert got["std"] == pytest.approx(want["std"], rel=1e-6, abs=1e-9 * want["mean"])


def test_merging_is_adding_at_once():
    rng = np.random.default_rng(1)
    parts = [rng.exponential(0.02, k) for k in (1, 500, 7000, 0, 30)]
    one, many = LogHistogram(), LogHistogram()
    one.add(np.concatenate(parts))
    for p in parts:
        h = LogHistogram()
        h.add(p)
        many.merge(h)
    assert np.array_equal(one.counts, many.counts)
    assert many.stats() == pytest.approx(one.stats(), rel=1e-9)
    with pytest.raises(ValueError, match="different bins"):
        many.merge(LogHistogram(rel=1e-2))


def test_nan_is_ignored_and_empty_has_no_statistics():
    h = LogHistogram()
    h.add([np.nan, 0.5, np.nan])
    assert h.n == 1 and h.stats()["median"] == pytest.approx(500.0, rel=5e-4)
    assert LogHistogram().stats()["p99"] is None and Exact().stats()["mean"] is None


def test_exact_reorders_only_what_it_was_allowed_to():
    mine, theirs = np.array([3.0, 1.0, 2.0]), np.array([3.0, 1.0, 2.0])
    a, b = Exact(), Exact()
    a.add(mine, scratch=True)
    b.add(theirs)
    assert a.stats() == b.stats() and b.stats()["median"] == 2000.0
    assert theirs.tolist() == [3.0, 1.0, 2.0]
