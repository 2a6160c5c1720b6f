"""Uniformly random replica (seeded), blind to load."""

import numpy as np

from servesim.sim.router import Router, register


@register
class RandomRouter(Router):
    name = "random"

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.rng = np.random.default_rng(seed)

    def route(self, req, replicas) -> int:
        return int(self.rng.integers(len(replicas)))
