"""Static (request-level) batching: a batch is formed only when the engine is idle.

Up to `max_num_seqs` waiting requests are prefilled together, then decoded until the
last of them finishes; nothing joins a batch in flight (FasterTransformer-style).
"""

from __future__ import annotations

from servesim.sim.scheduler import Plan, Scheduler, register


@register
class StaticScheduler(Scheduler):
    name = "static"

    def schedule_prefills(self) -> Plan:
        s = self.state
        plan: Plan = []
        if s.running:
            return plan
        while s.waiting and len(plan) < self.cfg.max_num_seqs:
            req = s.waiting.peek()
            chunk = self.admit(req, req.target, chunked=False)
            if not chunk:
                break
            plan.append((req, chunk))
        return plan

    def arrivals_matter(self) -> bool:
        return not self.state.running
