"""Layered prefill: prompts advance by groups of layers instead of by token chunks.

Chunked prefill bounds each iteration's work by cutting a prompt into token chunks; for a
mixture-of-experts model every chunk activates most experts, so each chunk reloads their
weights. Layered prefill (arXiv 2510.08055, "From Tokens to Layers") bounds it instead by
running the whole prompt through one group of `groups` consecutive layers per iteration,
beside the decodes (which run every layer): a prompt takes `groups` iterations, and each
layer's experts are loaded once for it. The cycle of prompts in flight starts together and
admits no newcomer until it is done; it takes prompts in queue order while their tokens fit
`groups` x the token budget left by the decodes (so each iteration does about the work of
one chunked-prefill iteration), the first one even if longer.

KV blocks grow by 1/groups of each prompt per iteration, as its KV bytes do (each group
writes its layers' cache for every token). The iteration is priced with
`Batch.prefill_layers` = 1/groups (`RooflineModel._layered`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from servesim.perf.batch import Batch
from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.scheduler import Plan, register


class LayeredOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: int = Field(4, ge=1, le=64, description="layer groups a prompt passes through, one per iteration")


@register
class LayeredPrefillScheduler(VLLMScheduler):
    name = "layered_prefill"
    Options = LayeredOptions
    prices_plan = True

    def __init__(self, state, engine, options=None):
        super().__init__(state, engine, options)
        self.cycle: dict[int, tuple[int, int]] = {}  # request id -> (tokens cached before, prompt tokens to compute)

    def schedule_prefills(self) -> Plan:
        s, g = self.state, self.opts.groups
        plan: Plan = []
        for seq in list(s.prefilling):  # the cycle in flight: one more group each
            if seq.id not in s.running:  # preempted to make room for one before it
                continue
            start, todo = self.cycle[seq.id]
            step = min(-(-todo // g), seq.target - seq.computed)
            chunk = self.continue_prefill(seq, step)
            if not chunk:
                break
            plan.append((seq, chunk))
        if plan or self.preempted or s.prefilling:
            return plan
        room = g * (self.token_budget() - s.dec.n)
        self.cycle.clear()
        while s.waiting and len(s.running) < self.cfg.max_num_seqs:
            seq = s.waiting.peek()
            before = seq.computed
            todo = seq.target - before
            if plan and todo > room:
                break
            chunk = self.admit(seq, -(-todo // g))
            if not chunk:
                break
            start = seq.computed  # after the prefix cache's hits (the chunk counts when it has run)
            # with hits, a group's share of what is left (the blocks taken for the larger first guess are given
            # back as the prompt grows into them)
            chunk = min(chunk, -(-(seq.target - start) // g))
            self.cycle[seq.id] = (start, seq.target - start)
            plan.append((seq, chunk))
            room -= seq.target - start
        return plan

    def plan_batch(self, plan: Plan, decodes: int, ctx_sum: int) -> Batch:
        """The iteration: each prompt of the cycle whole, through 1/groups of the layers."""
        lens = tuple(self.cycle[r.id][1] for r, _ in plan)
        ctx = tuple(self.cycle[r.id][0] for r, _ in plan)
        return Batch(decodes, ctx_sum, lens, ctx, prefill_layers=1.0 / self.opts.groups)
