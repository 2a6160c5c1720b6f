"""The router interface and registry: which replica serves an arriving request.

A router sees the replicas as they stand when the request arrives and returns the index
of one. Reading a replica brings it up to date (`cluster.AdvancedTo`), so a router that
reads few replicas of a large pool is cheap. Each policy is one small module in
`sim/routers/`, registered by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from servesim.registry import Registry

if TYPE_CHECKING:
    from servesim.sim.replica import Replica
    from servesim.sim.request import Request

ROUTERS = Registry("router", "servesim.sim.routers", "servesim.routers")
register = ROUTERS.register
router_names = ROUTERS.names


def make_router(name: str, seed: int = 0, ttft_slo_s: float | None = None) -> Router:
    """The router `name`, told the TTFT target of the scenario's SLO (for routers that keep to it)."""
    router = ROUTERS.make(name, seed)
    router.ttft_slo_s = ttft_slo_s
    return router


class Router:
    name = ""
    needs_ttft_slo = False  # refused without a TTFT SLO in the scenario
    ttft_slo_s: float | None = None

    def __init__(self, seed: int = 0):
        self.seed = seed

    def route(self, req: Request, replicas: Sequence[Replica]) -> int:
        raise NotImplementedError

