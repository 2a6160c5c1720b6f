"""Prefill/decode disaggregation: a prefill pool hands requests to a decode pool.

A prefill replica computes the prompt and the first token, then frees the request's
blocks; its KV cache travels to a decode replica (`kv_transfer.py`), which admits it
straight into decoding once it has room. Events, arrivals and KV caches becoming ready,
are handled in time order; before each, the prefill pool runs up to it, which can only
add later events, so the decode pool never sees one out of order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from servesim.sim.replica import Replica
from servesim.sim.request import Request
from servesim.sim.router import Router

ARRIVE, KV_READY = 0, 1


class DisaggregatedCluster:
    def __init__(self, prefill: list[Replica], decode: list[Replica], prefill_router: Router, decode_router: Router,
                 transfer: Callable[[Request, float], float]):  # fmt: skip
        self.prefill, self.decode = prefill, decode
        self.prefill_router, self.decode_router = prefill_router, decode_router
        self.transfer = transfer
        self.events: list = []
        self._seq = 0
        for rep in prefill:
            rep.on_prefilled = self._prefilled

    def _push(self, t: float, kind: int, req: Request) -> None:
        self._seq += 1
        heapq.heappush(self.events, (t, self._seq, kind, req))

    def _prefilled(self, req: Request, t: float, last_iteration_s: float) -> None:
        req.transfer_s = self.transfer(req, last_iteration_s)
        self._push(t + req.transfer_s, KV_READY, req)

    def run(self, requests: list[Request]) -> None:
        for req in requests:
            self._push(req.arrival, ARRIVE, req)
        events = self.events
        while True:
            if not events:
                for rep in self.prefill:
                    rep.advance(math.inf)
                if events:
                    continue
                for rep in self.decode:
                    rep.advance(math.inf)
                return
            t = events[0][0]
            for rep in self.prefill:
                rep.advance(t)
            if events[0][0] < t:
                continue  # a prefill finished and its KV cache is ready before t: handle that first
            _, _, kind, req = heapq.heappop(events)
            if kind == ARRIVE:
                self.prefill[self.prefill_router.route(req, self.prefill)].submit(req)
                continue
            for rep in self.decode:
                rep.advance(t)
            req.kv_ready, req.ready = True, t
            self.decode[self.decode_router.route(req, self.decode)].submit(req)
