"""Power of two choices: of two replicas drawn at random, the one with less queued work.

Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing" (IEEE TPDS 2001):
two random probes bring the longest queue from log n / log log n down to log log n, so a
large fleet balances almost as well as with a full scan, and the router reads two
replicas per request instead of all of them. Work is measured as in `least_tokens`.
"""

import numpy as np

from servesim.sim.router import Router, register


@register
class PowerOfTwo(Router):
    name = "power_of_two"

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.rng = np.random.default_rng(seed)
        self._pairs: list[tuple[int, int]] = []
        self._n = 0

    def route(self, req, replicas) -> int:
        n = len(replicas)
        if n == 1:
            return 0
        if not self._pairs or self._n != n:  # a thousand at a time: a numpy call per request costs more than the rest
            a = self.rng.integers(0, n, 1024)
            b = self.rng.integers(0, n - 1, 1024)
            b += b >= a  # a uniform pair of distinct replicas
            self._pairs, self._n = list(zip(a.tolist(), b.tolist(), strict=True))[::-1], n
        a, b = self._pairs.pop()
        qa, qb = replicas.queued_tokens(a), replicas.queued_tokens(b)
        return a if (qa, a) < (qb, b) else b
