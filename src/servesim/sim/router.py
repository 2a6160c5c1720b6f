"""The router interface and registry: which replica serves an arriving request.

A router sees the replicas as they stand when the request arrives and returns the index
of one. Each policy is one small module in `sim/routers/`, registered by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servesim.errors import ServesimError

if TYPE_CHECKING:
    from servesim.sim.replica import Replica
    from servesim.sim.request import Request

_ROUTERS: dict[str, type[Router]] = {}


def register(cls: type[Router]) -> type[Router]:
    _ROUTERS[cls.name] = cls
    return cls


def router_names() -> list[str]:
    from servesim.sim import routers  # noqa: F401  (registers the built-in routers)

    return sorted(_ROUTERS)


def make_router(name: str, seed: int = 0) -> Router:
    router_names()
    if name not in _ROUTERS:
        raise ServesimError(f"unknown router '{name}'; known: {', '.join(sorted(_ROUTERS))}")
    return _ROUTERS[name](seed)


class Router:
    name = ""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def route(self, req: Request, replicas: list[Replica]) -> int:
        raise NotImplementedError


def queued_tokens(replica: Replica) -> int:
    """Work waiting at a replica in tokens: KV held by running requests plus prompts not yet started."""
    waiting = sum(r.target - r.computed for r in replica.waiting) + sum(r.prompt_len for r in replica.incoming)
    return replica.kv.used * replica.block_size + waiting
