"""Autellix PLAS: program-level least attained service, in a multi-level queue.

Luo et al., "Autellix: An Efficient Serving Engine for LLM Agents as General Programs"
(arXiv 2502.13965). A call's priority comes from its program's attained service, the
work of the program's calls that have finished (here, their prompt plus output tokens),
so short programs overtake long ones without anyone predicting lengths (it is
non-clairvoyant). Services are put in discrete levels, level k holding services below
quantum x 2^k (the paper's queues with geometrically growing quanta); calls in one level
go first come, first served, and the preemption victim is the running call of the highest
level (the newest of them). The paper also demotes a call while it runs and preempts at
arrival with swapping; here priority is fixed when a call enters the queue and preemption
happens only when blocks run out.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.queue import KeyedQueue
from servesim.sim.scheduler import register
from servesim.sim.sequence import Sequence


class AutellixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantum_tokens: int = Field(2048, ge=1, description="service of the first level; each next one doubles")
    levels: int = Field(8, ge=1, description="number of queue levels (the last holds everything above)")


@register
class AutellixScheduler(VLLMScheduler):
    name = "autellix"
    Options = AutellixOptions

    def make_queue(self) -> KeyedQueue:
        opts = self.opts
        return KeyedQueue(lambda r: (level(r, opts), r.arrival))

    def pick_victim(self) -> Sequence:
        running = list(self.state.running.values())
        top = max(level(r, self.opts) for r in running)
        return next(r for r in reversed(running) if level(r, self.opts) == top)


def level(seq: Sequence, opts: AutellixOptions) -> int:
    """The queue level of a call: by its program's attained service (a lone request has none)."""
    program = seq.req.program
    service = program.service if program is not None else 0
    if service < opts.quantum_tokens:
        return 0
    return min(int(math.log2(service / opts.quantum_tokens)) + 1, opts.levels - 1)
