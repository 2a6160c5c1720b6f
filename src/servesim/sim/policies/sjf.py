"""Shortest job first: the waiting request with the least work left is admitted first.

Job size is known in advance here (an oracle, the upper bound that length-prediction
schedulers such as Fu et al., "Efficient LLM Scheduling by Learning to Rank", NeurIPS
2024, approach): the output tokens still to generate, the prompt, or both. Everything
else is vLLM's scheduling; a preempted request re-enters the queue by its size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.queue import KeyedQueue
from servesim.sim.scheduler import register

SIZES = {
    "output": lambda r: r.output_len - r.generated,
    "prompt": lambda r: r.prompt_len,
    "total": lambda r: r.prompt_len + r.output_len - r.generated,
}


class SJFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: Literal["output", "prompt", "total"] = "output"


@register
class SJFScheduler(VLLMScheduler):
    name = "sjf"
    Options = SJFOptions

    @classmethod
    def make_queue(cls, opts: SJFOptions) -> KeyedQueue:
        return KeyedQueue(SIZES[opts.size])
