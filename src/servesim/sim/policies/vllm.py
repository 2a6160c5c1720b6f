"""vLLM V1 scheduling: continuous batching with chunked prefill.

Per iteration, within `max_num_batched_tokens` and `max_num_seqs`: every decoding
request first, then running (partially prefilled) requests in admission order, then
waiting requests in queue order, the last one cut to the remaining budget. A step that
had to preempt admits nobody new.
"""

from __future__ import annotations

from servesim.sim.scheduler import Plan, Scheduler, register


@register
class VLLMScheduler(Scheduler):
    name = "vllm"

    def token_budget(self) -> int:
        return self.cfg.max_num_batched_tokens

    def schedule_prefills(self) -> Plan:
        s = self.state
        budget = self.token_budget() - s.dec.n
        plan: Plan = []
        for seq in list(s.prefilling):
            if budget <= 0:
                break
            chunk = self.continue_prefill(seq, budget)
            if not chunk:
                break
            plan.append((seq, chunk))
            budget -= chunk
        if self.preempted:
            return plan
        while s.waiting and budget > 0 and len(s.running) < self.cfg.max_num_seqs:
            seq = self.next_waiting()
            chunk = self.admit(seq, budget)
            if not chunk:
                break
            plan.append((seq, chunk))
            budget -= chunk
        return plan

    def next_waiting(self):
        """The waiting request to admit next: the head of the queue."""
        return self.state.waiting.peek()
