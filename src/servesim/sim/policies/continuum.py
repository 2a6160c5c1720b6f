"""Continuum: keep an agent's KV cache pinned through its tool calls, for a time-to-live.

Li et al., "Continuum: Efficient and Robust Multi-Turn LLM Agent Scheduling with KV Cache
Time-to-Live" (arXiv 2511.02230). When a program's call finishes and the program goes on
after a tool call, vLLM frees the call's KV cache (it stays cached only until something
needs the room) and the next call queues behind newer requests. Continuum pins the
finished context in GPU memory for a TTL chosen from the tool call's expected duration, so
the next call finds it, and orders the queue by program arrival (program-level
first-come-first-served) so a program that has started keeps going. A pin lapses at its
TTL, when the next call starts, or when running requests need the blocks (before anyone is
preempted), so a wrong guess costs memory for a bounded time. With `offload` the context
goes to the CPU tier instead (copied out when the call finishes, back when the next call
starts, at the host link's cost, `kv_swap.py`), as a CPU-offloading KV store would; the
paper compares the two.

The expected duration is the tool call's own (`predictor = "oracle"`) or the mean of the
gaps seen so far (`"mean"`, as a system learning from history would); calls expected to
wait longer than `max_ttl_s` (a human's think time) are not pinned. The paper's TTL also
weighs the reload cost against the memory held; here that choice is `max_ttl_s`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.queue import KeyedQueue
from servesim.sim.scheduler import register
from servesim.sim.sequence import Sequence


class ContinuumOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: float | None = Field(None, ge=0, description="a fixed TTL; default: the expected tool time with slack")
    predictor: Literal["oracle", "mean"] = Field("oracle", description="expected tool time: the call's own, "
                                                 "or the mean of those seen so far")  # fmt: skip
    slack: float = Field(0.2, ge=0, description="TTL = expected tool time x (1 + slack)")
    max_ttl_s: float = Field(10.0, ge=0, description="no pin where the expected gap is longer")
    program_fcfs: bool = Field(True, description="order the queue by program arrival")
    offload: bool = Field(False, description="keep the context in the CPU tier (engine.swap_space) instead of "
                          "pinning it on the GPU, and copy it back when the next call starts")  # fmt: skip


def program_arrival(seq: Sequence) -> tuple[float, float]:
    prog = seq.req.program
    return (prog.arrival if prog is not None else seq.arrival), seq.arrival


@register
class ContinuumScheduler(VLLMScheduler):
    name = "continuum"
    Options = ContinuumOptions

    def __init__(self, state, engine, options=None):
        super().__init__(state, engine, options)
        self.gaps, self.seen = 0.0, 0  # tool times observed (the `mean` predictor)

    @property
    def offload(self) -> bool:
        return self.opts.offload

    def make_queue(self):
        return KeyedQueue(program_arrival) if self.opts.program_fcfs else super().make_queue()

    def retention(self, seq: Sequence) -> float:
        o = self.opts
        if o.ttl_s is not None:
            return o.ttl_s
        actual = min(c.delay for c in seq.req.children)
        if o.predictor == "oracle":
            expected = actual
        else:
            expected = self.gaps / self.seen if self.seen else o.max_ttl_s
            self.gaps, self.seen = self.gaps + actual, self.seen + 1  # known once the tool returns
        return expected * (1 + o.slack) if expected <= o.max_ttl_s else 0.0
