"""vLLM V1 scheduling: continuous batching with chunked prefill.

Per iteration, within `max_num_batched_tokens` and `max_num_seqs`: every decoding
request first, then running (partially prefilled) requests in admission order, then
waiting requests first-come first-served, the last one cut to the remaining budget.
A step that had to preempt admits nobody new.
"""

from __future__ import annotations

from servesim.sim.scheduler import Plan, Scheduler, register


@register
class VLLMScheduler(Scheduler):
    name = "vllm"

    def token_budget(self) -> int:
        return self.cfg.max_num_batched_tokens

    def schedule_prefills(self) -> Plan:
        r = self.r
        budget = self.token_budget() - r.dec.n
        plan: Plan = []
        for req in list(r.prefilling):
            if budget <= 0:
                break
            chunk = self.continue_prefill(req, budget)
            if not chunk:
                break
            plan.append((req, chunk))
            budget -= chunk
        if self.preempted:
            return plan
        while r.waiting and budget > 0 and len(r.running) < self.cfg.max_num_seqs:
            req = r.waiting[0]
            chunk = self.admit(req, budget)
            if not chunk:
                break
            plan.append((req, chunk))
            budget -= chunk
        return plan
