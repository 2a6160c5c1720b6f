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

    def route(self, req, replicas) -> int:
        if len(replicas) == 1:
            return 0
        a, b = (int(i) for i in self.rng.choice(len(replicas), 2, replace=False))
        return min((a, b), key=lambda i: (replicas[i].state.queued_tokens(), i))
