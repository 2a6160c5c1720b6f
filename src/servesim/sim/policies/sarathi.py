"""Sarathi-Serve: stall-free batching with a fixed token budget (the chunk size).

Decodes are never paused for a prefill; prefills are cut into chunks so that each
iteration carries at most `chunk_size` tokens (Agrawal et al., OSDI 2024). It is the
vLLM policy with the budget set by `chunk_size` instead of `max_num_batched_tokens`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from servesim.errors import ServesimError
from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.scheduler import register


class SarathiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_size: int = Field(512, ge=1, description="tokens per iteration, decodes included")


@register
class SarathiScheduler(VLLMScheduler):
    name = "sarathi"
    Options = SarathiOptions

    @classmethod
    def check(cls, engine, opts) -> None:
        if opts.chunk_size < engine.max_num_seqs:  # a full batch of decodes alone would exceed the budget
            raise ServesimError(
                f"sarathi chunk_size ({opts.chunk_size}) must be >= max_num_seqs ({engine.max_num_seqs}); "
                "raise chunk_size (-O chunk_size=N) or lower --max-num-seqs"
            )

    def token_budget(self) -> int:
        return self.opts.chunk_size
