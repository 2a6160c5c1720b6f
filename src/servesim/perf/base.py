"""The interface every performance model implements: a batch in, seconds out."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from servesim.perf.batch import Batch


@dataclass(frozen=True, slots=True)
class OpCost:
    """Time of one operator class over all layers, with the work that set it."""

    name: str
    seconds: float
    flops: float = 0.0
    bytes: float = 0.0
    bound: str = "-"  # "compute", "memory", "comm", "overhead"


FAR = 1e12  # a mean context beyond any real one: the last point of a decode curve, so interpolation extrapolates


class DecodeCurve:
    """Decode-only iterations of one request count, priced by their mean context x = decode_ctx_sum / count.

    Only attention reads the context, and its time is piecewise linear in x (a roofline's
    max of two lines, or a measured curve), so an iteration's seconds are exactly
    `np.interp(x, xs, seconds)`: `xs` holds every break point and ends at FAR. In a run
    of decode iterations x grows by one per iteration, so the run's total is a sum of
    arithmetic series, one per linear piece (`run`).
    """

    __slots__ = ("comp", "other", "xs", "seconds", "_xl", "_yl")

    def __init__(self, comp: float, other: float, xs: np.ndarray, seconds: np.ndarray):
        self.comp = comp  # compute-bound seconds (constant over x)
        self.other = other  # collectives and CPU seconds (constant over x)
        self.xs, self.seconds = xs, seconds  # whole iteration at xs; memory-bound: seconds - comp - other
        self._xl, self._yl = xs.tolist(), seconds.tolist()

    def times(self, x):
        return np.interp(x, self.xs, self.seconds)

    def split_at(self, x: float) -> tuple[float, float, float]:
        """(compute-bound, memory-bound, other) seconds of the iteration at mean context x."""
        total = float(self.times(x))
        return self.comp, total - self.comp - self.other, self.other

    def extend_ends(self, ends: list[float], x0: float, budget: float, most: int, scale: tuple[float, float]) -> None:
        """Append to `ends` (seconds from a run's start to the end of its iterations at x0, x0 + 1, ..., each
        lasting a + b * seconds(x)) until the last reaches `budget` or there are `most`: a run's iterations
        one by one, as far as they are asked for."""
        a_, b_ = scale
        xs, ys = self._xl, self._yl
        m, t = len(ends), ends[-1] if ends else 0.0
        x = x0 + m
        i = bisect_right(xs, x) - 1
        while t < budget and m < most:
            while i + 1 < len(xs) and xs[i + 1] <= x:
                i += 1
            y = ys[0] if i < 0 else ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i])
            t += a_ + b_ * y
            ends.append(t)
            m, x = m + 1, x + 1

    def run(self, x0: float, k: int, budget: float = math.inf, scale: tuple[float, float] = (0.0, 1.0)):
        """Iterations at x0, x0 + 1, ... x0 + k - 1 that each last a + b * seconds(x), for (a, b) = scale.

        Returns (count, sum of seconds(x), elapsed): the first `count` iterations, where the
        last is the first whose end reaches `budget` seconds from the start (all k if none does).
        """
        a_, b_ = scale
        xs, ys = self._xl, self._yl
        i = bisect_right(xs, x0) - 1  # the piece holding x0; -1: flat below xs[0]
        m, total, elapsed = 0, 0.0, 0.0
        while m < k:
            if i < 0:
                a, g, x_hi = ys[0], 0.0, xs[0]
            else:
                g = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
                a, x_hi = ys[i] + g * (x0 - xs[i]), xs[i + 1]
            i += 1
            hi = min(k, math.ceil(x_hi - x0))  # iterations m..hi-1 last a + g * j
            if hi <= m:
                continue
            cnt = hi - m
            piece = cnt * a + g * (m + hi - 1) * cnt / 2
            if elapsed + cnt * a_ + b_ * piece >= budget:
                c = _first_reaching(budget - elapsed, a_ + b_ * (a + g * m), b_ * g, cnt)
                total += c * a + g * (2 * m + c - 1) * c / 2
                return m + c, total, elapsed + c * a_ + b_ * (c * a + g * (2 * m + c - 1) * c / 2)
            total, elapsed, m = total + piece, elapsed + cnt * a_ + b_ * piece, hi
        return k, total, elapsed


def _first_reaching(budget: float, first: float, step: float, most: int) -> int:
    """Smallest c in 1..most with c * first + step * c (c - 1) / 2 >= budget: c iterations lasting first,
    first + step, ... reach the budget."""
    f = lambda c: c * first + step * c * (c - 1) / 2  # noqa: E731
    if step > 0:
        b = first - step / 2
        c = math.ceil((-b + math.sqrt(b * b + 2 * step * budget)) / step)
    else:
        c = math.ceil(budget / first) if first > 0 else most
    c = min(max(c, 1), most)
    while c > 1 and f(c - 1) >= budget:
        c -= 1
    while c < most and f(c) < budget:
        c += 1
    return c


class PerfModel(ABC):
    """Predicts how long one engine iteration takes on one replica.

    A model implements `breakdown` and `decode_curve`; the simulator calls `split` (once per
    mixed iteration) and `decode_curve` (once per request count of a run of decode
    iterations), which subclasses make fast.
    """

    @abstractmethod
    def breakdown(self, batch: Batch) -> list[OpCost]:
        """Per-operator costs; their seconds sum to `iteration_time(batch)`."""

    def split(self, batch: Batch) -> tuple[float, float, float]:
        """(compute-bound, memory-bound, other) seconds of an iteration (other: collectives, CPU)."""
        ops = self.breakdown(batch)
        comp = sum(o.seconds for o in ops if o.bound == "compute")
        mem = sum(o.seconds for o in ops if o.bound == "memory")
        return comp, mem, sum(o.seconds for o in ops) - comp - mem

    @abstractmethod
    def decode_curve(self, num_seqs: int) -> DecodeCurve:
        """Decode-only iterations of `num_seqs` requests as a function of their mean context."""

    def decode_split(self, num_seqs: int, ctx_sums: np.ndarray) -> tuple[float, np.ndarray, float]:
        """`split` of consecutive decode-only iterations of `num_seqs` requests, ctx_sums[k] being the
        decode_ctx_sum of iteration k; only the memory-bound part varies (decode attention reads the cache)."""
        c = self.decode_curve(num_seqs)
        return c.comp, c.times(np.asarray(ctx_sums, dtype=float) / num_seqs) - c.comp - c.other, c.other

    def iteration_time(self, batch: Batch) -> float:
        return sum(self.split(batch))

    def decode_times(self, num_seqs: int, ctx_sums: np.ndarray) -> np.ndarray:
        """Times of consecutive decode-only iterations (see `decode_split`)."""
        comp, mem, other = self.decode_split(num_seqs, ctx_sums)
        return comp + mem + other


class Wrapped(PerfModel):
    """A mechanism priced around another model (`inner`): its description (profile, gpu, model) shows through,
    and `note` says what the mechanism assumed. Subclasses implement `split` and `decode_curve`."""

    note = ""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        if name.startswith("_") or name == "inner":  # (not set yet: being unpickled)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def breakdown(self, batch: Batch) -> list[OpCost]:
        comp, mem, other = self.split(batch)
        return [OpCost("compute_bound", comp, bound="compute"), OpCost("memory_bound", mem, bound="memory"),
                OpCost("other", other, bound="overhead")]  # fmt: skip
