"""Simulation core: requests, KV cache, schedulers and the replica event loop."""

from servesim.sim.kv_cache import KVCache
from servesim.sim.replica import Replica
from servesim.sim.request import Request
from servesim.sim.scheduler import Scheduler, make_scheduler, register, scheduler_names

__all__ = ["KVCache", "Replica", "Request", "Scheduler", "make_scheduler", "register", "scheduler_names"]
