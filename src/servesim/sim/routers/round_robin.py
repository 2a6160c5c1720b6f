"""Round robin: replicas in turn, blind to load."""

from servesim.sim.router import Router, register


@register
class RoundRobin(Router):
    name = "round_robin"

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.next = 0

    def route(self, req, replicas) -> int:
        i = self.next % len(replicas)
        self.next += 1
        return i
