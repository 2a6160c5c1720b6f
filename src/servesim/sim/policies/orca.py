"""Orca: iteration-level scheduling without chunking (Yu et al., OSDI 2022).

New requests join the running batch at any iteration, but each prompt is prefilled
whole in one iteration. A prompt that does not fit the remaining token budget waits;
one longer than the whole budget runs alone rather than never.
"""

from __future__ import annotations

from servesim.sim.scheduler import Plan, Scheduler, register


@register
class OrcaScheduler(Scheduler):
    name = "orca"

    def schedule_prefills(self) -> Plan:
        s = self.state
        budget = self.cfg.max_num_batched_tokens - s.dec.n
        plan: Plan = []
        if self.preempted:
            return plan
        while s.waiting and len(s.running) < self.cfg.max_num_seqs:
            seq = s.waiting.peek()
            room = budget if plan else max(budget, seq.target)
            chunk = self.admit(seq, room, chunked=False)
            if not chunk:
                break
            plan.append((seq, chunk))
            budget -= chunk
        return plan
