"""Sarathi-Serve: stall-free batching with a fixed token budget (the chunk size).

Decodes are never paused for a prefill; prefills are cut into chunks so that each
iteration carries at most `chunk_size` tokens (Agrawal et al., OSDI 2024). It is the
vLLM policy with the budget set by `chunk_size` instead of `max_num_batched_tokens`.
"""

from __future__ import annotations

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.scheduler import register


@register
class SarathiScheduler(VLLMScheduler):
    name = "sarathi"

    def token_budget(self) -> int:
        return self.cfg.chunk_size
