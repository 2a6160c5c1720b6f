"""Arrival processes, as `vllm bench serve` draws them: the first request at t=0, then gaps."""

from __future__ import annotations

import numpy as np


def arrival_times(n: int, rate: float, process: str, burstiness: float, rng: np.random.Generator) -> np.ndarray:
    """Times (s) of n arrivals at `rate` requests/s.

    poisson: exponential gaps; gamma: gaps ~ Gamma(shape=burstiness, scale=1/(rate*burstiness)),
    so the mean rate is kept and burstiness < 1 clusters requests; constant: fixed gaps;
    burst or rate=inf: everything at t=0.
    """
    if process == "burst" or np.isinf(rate) or n == 0:
        return np.zeros(n)
    if process == "constant":
        gaps = np.full(n - 1, 1.0 / rate)
    elif process == "poisson":
        gaps = rng.exponential(1.0 / rate, n - 1)
    elif process == "gamma":
        gaps = rng.gamma(burstiness, 1.0 / (rate * burstiness), n - 1)
    else:
        raise ValueError(f"unknown arrival process {process}")
    return np.concatenate(([0.0], np.cumsum(gaps)))


def shape_times(times: np.ndarray, shape: list[float], period_s: float) -> np.ndarray:
    """Arrival times of a process at its mean rate, moved so the rate follows `shape` (relative rates over
    equal slices of `period_s`, repeated): by time rescaling, the arrival at u comes at the t by which
    the shaped process expects as many arrivals as the steady one by u. Gaps keep their distribution
    relative to the local rate."""
    w = np.asarray(shape, dtype=float)
    w = w / w.mean()
    slice_s = period_s / len(w)
    at_t = np.arange(len(w) + 1) * slice_s
    at_u = np.concatenate(([0.0], np.cumsum(w) * slice_s))
    cycles, u = np.divmod(times, period_s)
    return cycles * period_s + np.interp(u, at_u, at_t)
