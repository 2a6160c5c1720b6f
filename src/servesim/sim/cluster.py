"""A cluster: replicas behind a router, driven by one clock.

Events (arrivals, migration checks, migrated requests landing) are handled in time
order; before each, every replica runs the iterations that start before it, so the
router and the migrator see each replica as it stands.
"""

from __future__ import annotations

import heapq
import math

from servesim.sim.migration import Migrator
from servesim.sim.power_control import PowerController
from servesim.sim.replica import Replica
from servesim.sim.request import Request
from servesim.sim.router import Router

ARRIVE, CHECK, LAND, POWER = 0, 1, 2, 3


class Cluster:
    def __init__(self, replicas: list[Replica], router: Router, migrator: Migrator | None = None,
                 power: PowerController | None = None):  # fmt: skip
        self.replicas = replicas
        self.router = router
        self.migrator = migrator
        self.power = power

    def run(self, requests: list[Request]) -> None:
        """Serve `requests` (sorted by arrival) to completion."""
        replicas = self.replicas
        if len(replicas) == 1 and self.power is None:
            replicas[0].run(requests)
            return
        events = [(r.arrival, ARRIVE, i, r) for i, r in enumerate(requests)]
        if self.migrator and requests:
            events.append((requests[0].arrival, CHECK, -1, None))
        if self.power and requests:
            events.append((self.power.cfg.interval_s, POWER, -2, None))
        heapq.heapify(events)
        seq = len(events)

        def again(t: float, kind: int, interval: float) -> None:
            """Schedule the next periodic check while anything is left to serve."""
            nonlocal seq
            if events or any(r.outstanding for r in replicas):
                seq += 1
                heapq.heappush(events, (t + interval, kind, seq, None))

        while events:
            t, kind, _, obj = heapq.heappop(events)
            for rep in replicas:
                rep.advance(t)
            if kind == ARRIVE:
                replicas[self.router.route(obj, replicas)].submit(obj)
            elif kind == LAND:
                req, dest = obj
                req.kv_ready, req.ready = True, t
                dest.submit(req)
            elif kind == POWER:
                self.power.step(t, replicas)
                again(t, POWER, self.power.cfg.interval_s)
            else:
                move = self.migrator.step(replicas)
                if move:
                    req, dest, land = move
                    seq += 1
                    heapq.heappush(events, (land, LAND, seq, (req, dest)))
                again(t, CHECK, self.migrator.cfg.interval_s)
        for rep in replicas:
            rep.advance(math.inf)
