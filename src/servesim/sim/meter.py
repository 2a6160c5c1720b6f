"""What a replica's iterations cost: their end times, energy and GPU cost, and a log of steps.

Each iteration's energy and cost are shared among the tokens it processed. The meter keeps
running sums of one token's share per iteration, so a decoding request's share over any
stint of iterations is one subtraction when the stint ends (`charge`).
"""

from __future__ import annotations

import numpy as np

from servesim.sim.request import Request


class StepLog:
    """Per-step records: a mixed iteration or a run of decode iterations (energy in joules, all GPUs)."""

    __slots__ = ("start", "end", "iters", "seqs", "tokens", "kv_used", "waiting", "energy")

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, [])

    def add(self, start, end, iters, seqs, tokens, kv_used, waiting, energy):
        self.energy.append(energy)
        self.start.append(start)
        self.end.append(end)
        self.iters.append(iters)
        self.seqs.append(seqs)
        self.tokens.append(tokens)
        self.kv_used.append(kv_used)
        self.waiting.append(waiting)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(getattr(self, name)) for name in self.__slots__}


class Meter:
    def __init__(self):
        self.energy_j = 0.0  # energy of all iterations so far, all GPUs
        self.busy_s = 0.0
        self.iter_end = np.empty(4096)
        # running sums over iterations of one token's share of energy and cost
        self.cum_j = np.empty(4096)
        self.cum_usd = np.empty(4096)
        self.log = StepLog()

    def record(self, start: int, ends, j_per_token, usd_per_token) -> None:
        """Store iteration end times and per-token energy and cost from iteration `start` on."""
        stop = start + len(ends)
        if stop > len(self.iter_end):
            size = max(stop, 2 * len(self.iter_end))
            for name in ("iter_end", "cum_j", "cum_usd"):
                grown = np.empty(size)
                grown[:start] = getattr(self, name)[:start]
                setattr(self, name, grown)
        before_j = self.cum_j[start - 1] if start else 0.0
        before_usd = self.cum_usd[start - 1] if start else 0.0
        if stop == start + 1:  # one iteration: skip numpy's per-call overhead
            self.iter_end[start] = ends[0]
            self.cum_j[start] = before_j + j_per_token[0]
            self.cum_usd[start] = before_usd + usd_per_token[0]
            return
        self.iter_end[start:stop] = ends
        self.cum_j[start:stop] = before_j + np.cumsum(j_per_token)
        self.cum_usd[start:stop] = before_usd + np.cumsum(usd_per_token)

    def charge(self, req: Request, first: int, last: int) -> None:
        """Give a decoding request its token's share of iterations first..last."""
        if last < first:
            return
        before_j = self.cum_j[first - 1] if first else 0.0
        before_usd = self.cum_usd[first - 1] if first else 0.0
        req.decode_j += float(self.cum_j[last] - before_j)
        req.decode_usd += float(self.cum_usd[last] - before_usd)
