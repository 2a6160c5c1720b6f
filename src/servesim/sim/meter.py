"""What a replica's iterations cost: their end times, energy and GPU cost, and a log of steps.

Each iteration's energy and cost are shared among the tokens it processed, and the meter
writes each request's share into its record: a prefill chunk's as the iteration runs
(`step`), a decoding sequence's over a stint of iterations from running sums of one
token's share, one subtraction when the stint ends (`mark`, then `charge`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from servesim.sim.sequence import Sequence


class StepLog:
    """Per-step records: a mixed iteration or a run of decode iterations (energy in joules, all GPUs).

    `tokens` and `seqs` are per iteration; `out` is the output tokens of the whole step. `kv_used` is the KV
    blocks held when the step ended, `kv_peak` the most it held (before its finished requests freed theirs)
    and `kv_s` its block-seconds (a decode run's blocks grow about evenly from its start to its peak), so
    that the KV statistics do not depend on where runs were cut."""

    FIELDS = ("start", "end", "iters", "seqs", "tokens", "kv_used", "waiting", "energy", "out", "kv_peak", "kv_s")
    INTS = ("iters", "seqs", "tokens", "kv_used", "waiting", "out", "kv_peak")

    def __init__(self):
        self.rows: list[tuple] = []
        self.add = self.rows.append  # one tuple of FIELDS per step

    def arrays(self) -> dict[str, np.ndarray]:
        """The steps so far as columns (each its own array: none keeps a whole table alive)."""
        table = np.array(self.rows, dtype=float).reshape(-1, len(self.FIELDS))
        return {name: table[:, i].astype(np.int64 if name in self.INTS else float)
                for i, name in enumerate(self.FIELDS)}  # fmt: skip

    def take(self) -> dict[str, np.ndarray]:
        """The steps since the last `take`, as columns; the log forgets them."""
        out = self.arrays()
        self.rows.clear()
        return out


class Meter:
    """Iteration end times, energy and GPU cost of one replica's iterations.

    A run of decode iterations is recorded by its closed form (`DecodeCurve.run`); the end
    time of each of its iterations is written out, all runs at once, when `iter_end` is read.
    A streamed run forgets the end times no request needs any more (`trim`): `iter_end[i]`
    is then the end of iteration `base + i`.
    """

    def __init__(self, usd_per_s: float = 0.0):
        self.usd_per_s = usd_per_s  # GPU cost of the replica per second
        self.energy_j = 0.0  # energy of all iterations so far, all GPUs
        self.busy_s = 0.0
        # one token's share of energy and cost, summed over all iterations so far
        self.cum_j = self.cum_usd = 0.0
        self._ends = np.empty(4096)
        self.base = 0  # the iteration whose end is _ends[0]
        self._runs: list[tuple] = []  # decode runs whose iteration ends are not written out yet
        self.log = StepLog()

    def step(self, it: int, t: float, seconds: float, energy: float, tokens: int,
             plan: list[tuple[Sequence, int]]) -> None:  # fmt: skip
        """Iteration `it`, ending at t: each prefill chunk of `plan` gets its tokens' share of its energy and
        cost (the decodes', from the running sums, when their stints end)."""
        self._hold(it + 1)
        self._ends[it - self.base] = t
        jpt, usdpt = energy / tokens, seconds * self.usd_per_s / tokens
        self._add(seconds, energy, jpt, usdpt)
        for seq, chunk in plan:
            rec = seq.rec
            rec.prefill_j += chunk * jpt
            rec.prefill_usd += chunk * usdpt

    def run(self, j0: int, k: int, start: float, x0: float, curve, scale: tuple[float, float], energy: float,
            seconds: float, n: int) -> None:  # fmt: skip
        """k decode iterations of n requests from iteration j0, as `curve.run(x0, k, scale=scale)` prices them."""
        self._runs.append((j0, k, start, x0, scale[0], scale[1], start + seconds, curve))
        if len(self._runs) >= 4096:  # written out a batch at a time: pending runs cost more memory than ends
            self._write_runs()
        self._add(seconds, energy, energy / n, seconds * self.usd_per_s / n)

    def _add(self, seconds: float, energy: float, jpt: float, usdpt: float) -> None:
        self.energy_j += energy
        self.busy_s += seconds
        self.cum_j += jpt
        self.cum_usd += usdpt

    # ----- decode stints -----
    def mark(self, seq: Sequence) -> None:
        """A sequence starts decoding: remember the running sums."""
        seq.j_mark, seq.usd_mark = self.cum_j, self.cum_usd

    def charge(self, seq: Sequence) -> None:
        """A sequence stops decoding: give its record its token's share of the iterations since `mark`."""
        rec = seq.rec
        rec.decode_j += self.cum_j - seq.j_mark
        rec.decode_usd += self.cum_usd - seq.usd_mark

    # ----- iteration end times -----
    @property
    def iter_end(self) -> np.ndarray:
        """End time of every iteration so far (and unused room after them)."""
        if self._runs:
            self._write_runs()
        return self._ends

    def _write_runs(self) -> None:
        """Every pending run's iteration ends, vectorised over all runs (grouped by their curve)."""
        runs, self._runs = self._runs, []
        cols = list(zip(*runs, strict=True))
        j0, k = np.array(cols[0]), np.array(cols[1])
        start, x0, a, b, t_end = (np.array(c, dtype=float) for c in cols[2:7])
        first = np.cumsum(k) - k  # each run's first position in the flat arrays
        rep = np.repeat(np.arange(len(runs)), k)
        m = np.arange(len(rep)) - first[rep]
        x = x0[rep] + m
        ids: dict[int, int] = {}  # curve -> group
        curves = []
        for c in cols[7]:
            if id(c) not in ids:
                ids[id(c)] = len(curves)
                curves.append(c)
        group = np.array([ids[id(c)] for c in cols[7]])[rep]
        order = np.argsort(group, kind="stable")
        seconds = np.empty(len(rep))
        bounds = np.concatenate(([0], np.cumsum(np.bincount(group, minlength=len(curves)))))
        for g, curve in enumerate(curves):
            idx = order[bounds[g] : bounds[g + 1]]
            seconds[idx] = curve.times(x[idx])
        cs = np.cumsum(a[rep] + b[rep] * seconds)
        before = np.concatenate(([0.0], cs))[first]
        ends = start[rep] + (cs - before[rep])
        ends[first + k - 1] = t_end  # the end the simulation went on from
        self._hold(int((j0 + k).max()))
        self._ends[j0[rep] + m - self.base] = ends

    def trim(self, keep_from: int, count: int) -> None:
        """Forget the end times of iterations before `keep_from` (of `count` iterations run)."""
        ends = self.iter_end
        if keep_from > self.base:
            kept = ends[keep_from - self.base : count - self.base]
            self._ends = np.concatenate([kept, np.empty(max(len(kept), 4096))])
            self.base = keep_from

    def _hold(self, count: int) -> None:
        """Room for the end times of iterations up to count-1 (at least doubling, so growth stays cheap)."""
        count -= self.base
        if count > len(self._ends):
            self._ends = np.concatenate([self._ends, np.empty(max(count, len(self._ends)))])
