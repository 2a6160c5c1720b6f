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
