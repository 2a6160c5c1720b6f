"""The scheduler interface, the mechanics every policy shares, and the policy registry.

Each iteration the replica asks its scheduler for a plan: the prefill chunks to run
beside the decoding requests. The base class reserves the decodes' KV blocks first
(preempting, newest first, when they do not fit), as vLLM does; a policy decides
which prefill chunks join the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servesim.registry import Registry
from servesim.sim.request import Request

if TYPE_CHECKING:
    from servesim.sim.replica import Replica

Plan = list[tuple[Request, int]]
SCHEDULERS = Registry("scheduler", "servesim.sim.policies")
register = SCHEDULERS.register
scheduler_names = SCHEDULERS.names


def make_scheduler(name: str, replica: Replica) -> Scheduler:
    return SCHEDULERS.make(name, replica)


class Scheduler:
    name = ""

    def __init__(self, replica: Replica):
        self.r = replica
        self.cfg = replica.engine
        self.preempted = False  # set when the current step preempted a request

    # ----- the policy's part -----
    def schedule(self) -> Plan:
        """Reserve this iteration's decode blocks, then choose prefill chunks."""
        self.preempted = False
        self.reserve_decodes()
        self.admit_transferred()
        return self.schedule_prefills()

    def schedule_prefills(self) -> Plan:
        raise NotImplementedError

    def arrivals_matter(self) -> bool:
        """Could a new arrival change the next plan? If not, decode runs skip over arrivals."""
        r = self.r
        return not r.waiting and len(r.running) < self.cfg.max_num_seqs

    # ----- shared mechanics -----
    def reserve_decodes(self) -> None:
        r = self.r
        need = r.dec.blocks_needed_at(r.it)
        while need > r.kv.free():
            victim = r.last_running()
            if victim.decoding and (victim.base + r.it) % r.block_size == 0:
                need -= 1  # it was one of the decodes that needed a block now
            r.preempt(victim)
            self.preempted = True
        r.kv.allocate(need)
        r.decodes_reserved = True

    def admit_transferred(self) -> None:
        """Start waiting requests whose KV cache was transferred in: they decode from this iteration."""
        r = self.r
        if self.preempted:
            return
        for req in [q for q in r.waiting if q.kv_ready]:
            if len(r.running) >= self.cfg.max_num_seqs or not r.kv.allocate(r.blocks_for(req.computed + 1)):
                return
            r.start_decoding(req)

    def continue_prefill(self, req: Request, budget: int) -> int:
        """Grow a running prefill by up to `budget` tokens, preempting newer requests if needed.

        Returns the chunk scheduled, 0 if `req` itself had to be preempted.
        """
        r = self.r
        chunk = min(req.target - req.computed, budget)
        need = r.blocks_for(req.computed + chunk) - req.blocks
        while need > r.kv.free():
            victim = r.last_running()
            r.preempt(victim)
            self.preempted = True
            if victim is req:
                return 0
        r.kv.allocate(need)
        req.blocks += need
        return chunk

    def admit(self, req: Request, budget: int, chunked: bool = True) -> int:
        """Start the waiting request at the head of the queue with a chunk of up to `budget`.

        Returns the chunk, or 0 (leaving it waiting) if it does not fit.
        """
        r = self.r
        kv = r.kv
        hits = kv.match(req.hash_ids, (req.target - 1) // r.unit_tokens) if req.hash_ids else []
        hit_tokens = len(hits) * r.unit_tokens
        todo = req.target - hit_tokens
        if not chunked and todo > budget:
            kv.unref(hits)
            return 0
        chunk = min(todo, budget)
        hit_blocks = len(hits) * kv.unit_blocks
        need = r.blocks_for(hit_tokens + chunk) - hit_blocks
        if not kv.allocate(need):
            kv.unref(hits)
            return 0
        r.start(req, hits, hit_tokens, need)
        return chunk
