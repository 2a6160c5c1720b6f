"""Distributions of latencies for summaries: every value kept (exact), or a bounded-error histogram.

A run that streams its records (`servesim.stream`) cannot keep 10^7 TTFTs or 10^9
inter-token gaps; it counts them in logarithmic bins instead. A bin spans a factor of
(1 + rel) and each order statistic is read at its bin's middle, so a percentile (numpy's
linear rule between the two order statistics around its rank) is within rel / 2 relative;
mean and standard deviation are kept exactly (merged by Chan's parallel formula, which
does not lose precision as a sum of squares does). Both kinds answer `stats()` with the
same dict: mean, median, std, p90, p99 in ms.
"""

from __future__ import annotations

import math

import numpy as np

PERCENTILES = (50, 90, 99)
EMPTY = {"mean": None, "median": None, "std": None, "p90": None, "p99": None}


def _ms(mean: float, std: float, pcts) -> dict:
    out = {"mean": 1000.0 * mean, "median": 1000.0 * float(pcts[0]), "std": 1000.0 * std}
    out.update({f"p{p}": 1000.0 * float(x) for p, x in zip(PERCENTILES[1:], pcts[1:], strict=True)})
    return out


def exact_stats(values_s, scratch: bool = False, counts=None) -> dict:
    """Mean, median, std, P90 and P99 in ms of values in seconds (NaN ignored), as numpy computes them; with
    `counts`, each value occurs that many times. scratch: the values may be reordered in place."""
    v = np.asarray(values_s, dtype=float)
    nan = np.isnan(v)
    if counts is not None:
        counts = np.asarray(counts)
        return _weighted_stats(v[~nan], counts[~nan]) if nan.any() else _weighted_stats(v, counts)
    if nan.any():
        v = v[~nan]
    if len(v) == 0:
        return dict(EMPTY)
    mean, std = float(v.mean()), float(v.std())  # before the percentiles may reorder v
    return _ms(mean, std, np.percentile(v, PERCENTILES, overwrite_input=scratch and not nan.any()))


def _weighted_stats(v: np.ndarray, counts: np.ndarray) -> dict:
    """`exact_stats` of the values repeated `counts` times, without repeating them."""
    if not (counts > 0).all():
        keep = counts > 0
        v, counts = v[keep], counts[keep]
    n = int(counts.sum())
    if not n:
        return dict(EMPTY)
    order = np.argsort(v, kind="stable")
    v, counts = v[order], counts[order]
    del order  # (arrays of a long run's every distinct gap: no more of them at once than needed)
    mean = float(np.dot(v, counts) / n)
    dev = v - mean
    np.multiply(dev, dev, out=dev)
    std = math.sqrt(float(np.dot(dev, counts)) / n)
    del dev
    cum = np.cumsum(counts)
    pcts = []
    for q in PERCENTILES:  # numpy's linear rule between the order statistics around the rank
        rank = q / 100 * (n - 1)
        lo = math.floor(rank)
        x0, x1 = v[np.searchsorted(cum, [lo, min(lo + 1, n - 1)], side="right")]
        t = rank - lo
        pcts.append(x1 - (x1 - x0) * (1 - t) if t >= 0.5 else x0 + (x1 - x0) * t)
    return _ms(mean, std, pcts)


class Exact:
    """Every value (with how often it occurs, where given), kept in chunks and pooled when asked."""

    def __init__(self):
        self.parts: list[np.ndarray] = []
        self.counts: list[np.ndarray | None] = []
        self.scratch = True  # every part may be reordered

    def add(self, values, scratch: bool = False, counts=None) -> None:
        """scratch: the caller lets `stats` reorder these values in place; counts: each value's occurrences."""
        self.parts.append(np.asarray(values, dtype=float))
        self.counts.append(None if counts is None else np.asarray(counts, dtype=np.int64))
        self.scratch &= scratch

    def merge(self, other: Exact) -> None:
        self.parts += other.parts
        self.counts += other.counts
        self.scratch &= other.scratch

    def stats(self) -> dict:
        if any(c is not None for c in self.counts):
            if len(self.parts) == 1:
                return exact_stats(self.parts[0], counts=self.counts[0])
            counts = [np.ones(len(p), dtype=np.int64) if c is None else c
                      for p, c in zip(self.parts, self.counts, strict=True)]  # fmt: skip
            return exact_stats(np.concatenate(self.parts), counts=np.concatenate(counts))
        if len(self.parts) == 1:
            return exact_stats(self.parts[0], scratch=self.scratch)
        return exact_stats(np.concatenate(self.parts) if self.parts else np.empty(0), scratch=True)


class LogHistogram:
    """Counts of values (s) in bins [lo (1 + rel)^i, lo (1 + rel)^(i+1)); values below lo count in the first."""

    def __init__(self, rel: float = 1e-3, lo: float = 1e-9, hi: float = 1e9):
        self.rel, self.lo = rel, lo
        self._log = math.log1p(rel)
        self.counts = np.zeros(int(math.ceil(math.log(hi / lo) / self._log)) + 1, dtype=np.int64)
        self.n, self.mean, self.m2 = 0, 0.0, 0.0  # count, mean and sum of squared deviations

    def add(self, values, scratch: bool = False, counts=None) -> None:
        """counts: how many times each value occurs (default once)."""
        v = np.asarray(values, dtype=float)
        w = np.ones(len(v), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
        keep = ~np.isnan(v) & (w > 0)
        v, w = v[keep], w[keep]
        if not len(v):
            return
        idx = np.log(np.maximum(v, self.lo) / self.lo) / self._log
        self.counts += np.bincount(np.minimum(idx.astype(np.int64), len(self.counts) - 1), weights=w,
                                   minlength=len(self.counts)).astype(np.int64)  # fmt: skip
        n = int(w.sum())
        mean = float(np.dot(v, w) / n)
        self._combine(n, mean, float(np.dot((v - mean) ** 2, w)))

    def merge(self, other: LogHistogram) -> None:
        if (other.rel, other.lo, len(other.counts)) != (self.rel, self.lo, len(self.counts)):
            raise ValueError("histograms with different bins cannot be merged")
        self.counts = self.counts + other.counts  # (not in place: one sent back by Ray is read-only)
        self._combine(other.n, other.mean, other.m2)

    def _combine(self, n: int, mean: float, m2: float) -> None:
        if not n:
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def quantile(self, q: float) -> float:
        """The q-th percentile (0-100) by numpy's linear rule, each order statistic read at its bin's middle."""
        rank = q / 100 * (self.n - 1)  # 0-based position among the sorted values
        lo = math.floor(rank)
        b = np.searchsorted(np.cumsum(self.counts), [lo, min(lo + 1, self.n - 1)], side="right")
        x = self.lo * np.exp((b + 0.5) * self._log)
        return float(x[0] + (rank - lo) * (x[1] - x[0]))

    def stats(self) -> dict:
        if not self.n:
            return dict(EMPTY)
        return _ms(self.mean, math.sqrt(self.m2 / self.n), [self.quantile(p) for p in PERCENTILES])
