"""Least outstanding requests: the replica with the fewest requests queued or running."""

from servesim.sim.router import Router, register


@register
class LeastRequests(Router):
    name = "least_requests"

    def route(self, req, replicas) -> int:
        return min(range(len(replicas)), key=lambda i: (replicas[i].outstanding, i))
