"""A deployment at run time: pools of replicas behind routers, driven by one event queue.

Requests arrive at the first pool. In a disaggregated deployment the first pool's
replicas prefill and hand each request on; its KV cache lands on the next pool after
the transfer time (`kv_transfer.py`) and is admitted straight into decoding. Controllers
(live migration, power control) act every `interval_s`.

Before an event is handled, the replicas it concerns run every iteration that starts
before it: the pools that hand requests on first (they may add earlier events, which are
then handled first), then, for a controller, all pools. A router sees its pool through
`AdvancedTo`: a replica runs up to the event when the router reads it, so a router that
reads two replicas (or none) costs two (or none), however large the pool. A replica left
behind runs later; its own arrivals cut its runs where they would have been cut anyway,
so the timeline is the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from servesim.sim.events import ARRIVAL, CONTROL, LANDING, EventQueue
from servesim.sim.replica import Replica
from servesim.sim.request import Request
from servesim.sim.router import Router


@dataclass
class Pool:
    name: str
    replicas: list[Replica]
    router: Router
    # set when this pool hands requests on after their prefill: (request, last iteration's seconds) -> delay
    transfer: Callable[[Request, float], float] | None = None
    next: Pool | None = field(default=None, repr=False)
    paired: bool = False  # each replica hands on to the next pool's replica of the same index (semi-PD)

    def advance(self, t: float) -> None:
        for rep in self.replicas:
            rep.advance(t)


class AdvancedTo(Sequence):
    """A pool's replicas as they stand at time t: each runs up to t when it is first read."""

    def __init__(self, replicas: list[Replica], t: float):
        self.replicas, self.t = replicas, t

    def __len__(self) -> int:
        return len(self.replicas)

    def __getitem__(self, i: int) -> Replica:
        rep = self.replicas[i]
        rep.advance(self.t)
        return rep


class Cluster:
    def __init__(self, pools: list[Pool], controllers: list | None = None):
        self.pools = pools
        self.controllers = controllers or []
        self.replicas = [rep for pool in pools for rep in pool.replicas]
        self.events = EventQueue()
        self._pending = 0  # arrivals and landings not yet handled
        self._more = False  # chunks of requests still to come
        for pool, nxt in zip(pools, pools[1:], strict=False):
            pool.next = nxt
            for i, rep in enumerate(pool.replicas):
                rep.on_prefilled = self._make_handoff(pool, nxt.replicas[i] if pool.paired else None)

    def run(self, requests: list[Request]) -> None:
        """Serve `requests` (sorted by arrival) to completion."""
        self.serve([requests])

    def serve(self, chunks: Iterable[list[Request]], after: Callable[[], None] | None = None) -> None:
        """Serve chunks of requests (sorted by arrival, each after the one before) to completion, taking
        each chunk only when the simulation reaches its first arrival; `after` is called once the
        events before the next chunk are handled (a streamed run collects what finished)."""
        chunks = (c for c in chunks if c)
        chunk = next(chunks, [])
        t0 = chunk[0].arrival if chunk else 0.0
        for ctl in self.controllers:
            self.events.schedule(ctl.first_check(t0), CONTROL, self._control, ctl)
        alone = len(self.replicas) == 1 and not self.controllers  # no events needed
        while True:
            nxt = next(chunks, None)
            self._more = nxt is not None
            until = nxt[0].arrival if nxt else math.inf
            if alone:
                self.replicas[0].run(chunk, until)
            else:
                self._feed(chunk, until)
            if after is not None:
                after()
            if nxt is None:
                return
            chunk = nxt

    def _feed(self, requests: list[Request], until: float) -> None:
        """Schedule the arrivals, then handle every event before `until` (all of them if it is inf)."""
        events = self.events
        events.extend((r.arrival, ARRIVAL, self._arrive, r) for r in requests)
        self._pending += len(requests)
        sources = [p for p in self.pools if p.next is not None]
        while True:
            t = events.peek()
            if t >= until:  # every replica up to the next chunk (to completion after the last), so what
                if not self._drain(until):  # finished is there to collect even where no router reads
                    return
                continue
            if sources:
                for pool in sources:  # they may hand on requests whose KV cache lands before t
                    pool.advance(t)
                if events.peek() < t:
                    continue
            t, handler, arg = events.pop()
            handler(t, arg)

    def in_flight(self) -> list[Request]:
        """Requests between replicas: their KV cache has left one and not yet landed on the next."""
        return [arg[0] for arg in self.events.args(LANDING)]

    def _drain(self, until: float = math.inf) -> bool:
        """Run every pool up to `until`, upstream first; True if that scheduled events before it."""
        for pool in self.pools:
            pool.advance(until)
            if self.events.peek() < until:
                return True
        return False

    # ----- handlers -----
    def _arrive(self, t: float, req: Request) -> None:
        self._pending -= 1
        pool = self.pools[0]
        pool.replicas[pool.router.route(req, AdvancedTo(pool.replicas, t))].submit(req)

    def _make_handoff(self, pool: Pool, dest: Replica | None = None) -> Callable:
        def handoff(req: Request, t: float, last_iteration_s: float) -> None:
            req.transfer_s = pool.transfer(req, last_iteration_s)
            self.land(req, t + req.transfer_s, pool.next, dest)

        return handoff

    def land(self, req: Request, t: float, pool: Pool, replica: Replica | None = None) -> None:
        """Deliver a request with its KV cache at time t, to `replica` or where the pool's router sends it."""
        self._pending += 1
        self.events.schedule(t, LANDING, self._land, (req, pool, replica))

    def _land(self, t: float, arg) -> None:
        req, pool, replica = arg
        self._pending -= 1
        req.kv_ready, req.ready = True, t
        dest = replica if replica is not None else pool.replicas[pool.router.route(req, AdvancedTo(pool.replicas, t))]
        dest.submit(req)

    def _control(self, t: float, ctl) -> None:
        for pool in self.pools:
            pool.advance(t)
        ctl.step(t, self)
        if self._pending or self._more or any(rep.outstanding for rep in self.replicas):
            self.events.schedule(t + ctl.interval_s, CONTROL, self._control, ctl)
