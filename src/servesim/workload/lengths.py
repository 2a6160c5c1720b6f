"""Token-length distributions."""

from __future__ import annotations

import numpy as np

from servesim.config import LengthDist


def sample_lengths(dist: LengthDist, n: int, rng: np.random.Generator) -> np.ndarray:
    """n integer lengths drawn from `dist`, clipped to [min, max]."""
    if dist.dist == "fixed":
        values = np.full(n, dist.mean)
    elif dist.dist == "uniform":
        return rng.integers(dist.min, dist.max + 1, n)
    else:  # lognormal parameterised by its mean: mu = ln(mean) - sigma^2 / 2
        mu = np.log(dist.mean) - dist.sigma**2 / 2
        values = rng.lognormal(mu, dist.sigma, n)
    return np.clip(np.rint(values), dist.min, dist.max).astype(np.int64)
