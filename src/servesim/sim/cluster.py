"""A cluster: replicas behind a router, driven by one clock.

Before each arrival every replica runs the iterations that start before it, so the
router sees each replica as it stands; the request then joins the chosen replica.
"""

from __future__ import annotations

import math

from servesim.sim.replica import Replica
from servesim.sim.request import Request
from servesim.sim.router import Router


class Cluster:
    def __init__(self, replicas: list[Replica], router: Router):
        self.replicas = replicas
        self.router = router

    def run(self, requests: list[Request]) -> None:
        """Serve `requests` (sorted by arrival) to completion."""
        replicas = self.replicas
        if len(replicas) == 1:
            replicas[0].run(requests)
            return
        for req in requests:
            for rep in replicas:
                rep.advance(req.arrival)
            replicas[self.router.route(req, replicas)].submit(req)
        for rep in replicas:
            rep.advance(math.inf)
