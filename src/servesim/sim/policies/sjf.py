"""Shortest job first: the waiting request with the least (predicted) work left is admitted first.

Job size is the output still to generate (or the prompt, or both), as a length predictor
sees it (`predictors.py`): the oracle is the upper bound that length-prediction schedulers
approach; `noisy` with Kendall's tau is the learning-to-rank scheduler of Fu et al.
("Efficient LLM Scheduling by Learning to Rank", NeurIPS 2024), whose ranker reaches a tau
of about 0.5-0.6 on chat data. A request waiting longer than `max_wait_s` goes first, so
long jobs cannot starve (the paper's starvation prevention, by waiting time). Everything
else is vLLM's scheduling; a preempted request re-enters the queue by its size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.predictors import Predictor, PredictorConfig
from servesim.sim.queue import KeyedQueue
from servesim.sim.scheduler import register


class SJFOptions(PredictorConfig):
    size: Literal["output", "prompt", "total"] = "output"
    max_wait_s: float | None = Field(None, gt=0, description="a request waiting longer goes first (no starvation)")


def job_size(opts: SJFOptions):
    """The queue key: work left by the policy's measure, the output as predicted."""
    if opts.size == "prompt":
        return lambda r: r.prompt_len
    predict = Predictor(opts)
    left = lambda r: max(predict(r) - r.generated, 0.0)  # noqa: E731
    return left if opts.size == "output" else lambda r: r.prompt_len + left(r)


@register
class SJFScheduler(VLLMScheduler):
    name = "sjf"
    Options = SJFOptions

    def make_queue(self) -> KeyedQueue:
        return KeyedQueue(job_size(self.opts), by_arrival=self.opts.max_wait_s is not None)

    def next_waiting(self):
        s, wait = self.state, self.opts.max_wait_s
        if wait is not None:
            oldest = s.waiting.oldest()
            if s.now - oldest.arrival > wait:
                return oldest
        return s.waiting.peek()
