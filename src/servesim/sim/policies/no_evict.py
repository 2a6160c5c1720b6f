"""Admission that never evicts: TensorRT-LLM's GUARANTEED_NO_EVICT capacity policy (its default; TensorRT-LLM
docs, "Useful Runtime Options").

A waiting request starts only when the KV blocks of its whole life (prompt and every
output token) fit beside what the running requests will still grow into, so a decode
never runs out of blocks and nothing is preempted. vLLM admits on the prompt alone and
preempts (recomputing) when decodes outgrow the cache; under long prompts that fill it,
the two differ most. Output lengths are taken as known, as a request's max_tokens is.
Everything else is vLLM's scheduling.
"""

from __future__ import annotations

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.scheduler import register
from servesim.sim.sequence import Sequence


@register
class NoEvictScheduler(VLLMScheduler):
    name = "no_evict"
    room: int | None = None  # free blocks less the running requests' growth, while this step admits

    def schedule_prefills(self):
        self.room = None
        return super().schedule_prefills()

    def admit(self, seq: Sequence, budget: int, chunked: bool = True) -> int:
        s = self.state
        life = s.blocks_for  # blocks of a whole request
        need = life(seq.prompt_len + seq.output_len)
        if s.kv.free() < need:  # the running requests' growth (never negative) only adds to the shortfall
            return 0
        if self.room is None:
            self.room = s.kv.free() - sum(life(r.prompt_len + r.output_len) - s.held(r) for r in s.running.values())
        if self.room < need:
            return 0
        chunk = super().admit(seq, budget, chunked)
        if chunk:  # the blocks it took and the growth it adds come to its whole life (shared prefixes: recount)
            self.room = None if seq.shared_blocks else self.room - need
        return chunk
