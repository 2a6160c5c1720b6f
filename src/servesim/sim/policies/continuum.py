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

The expected duration is, by default (`predictor = "mean"`), the mean of the tool calls
that have returned on this engine so far, as a system learning from history would: a
call's duration joins the history when its tool returns (folded in as calls finish), and
before any has returned the pin is the longest, `max_ttl_s`. Tool calls carry no name
here, so there is one history for all of them. `predictor = "oracle"` takes each call's own
duration, which the simulator knows before it happens and a real system does not: an upper
bound, not Continuum. Calls expected to wait longer than `max_ttl_s` (a human's think time)
are not pinned. The paper's TTL also weighs the reload cost against the memory held; here
that choice is `max_ttl_s`.
"""

from __future__ import annotations

import heapq
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.queue import KeyedQueue
from servesim.sim.scheduler import register
from servesim.sim.sequence import Sequence


class ContinuumOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: float | None = Field(None, ge=0, description="a fixed TTL; default: the expected tool time with slack")
    predictor: Literal["mean", "oracle"] = Field("mean", description="expected tool time: the mean of those "
                                                 "returned so far, or (an upper bound) the call's own")  # fmt: skip
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
        self.gaps, self.seen = 0.0, 0  # tool times returned so far (the `mean` predictor)
        self.pending: list[tuple[float, float]] = []  # (when it returns, duration) of tool calls under way

    @property
    def offload(self) -> bool:
        return self.opts.offload

    def make_queue(self):
        return KeyedQueue(program_arrival) if self.opts.program_fcfs else super().make_queue()

    def retention(self, seq: Sequence) -> float:
        o = self.opts
        if o.ttl_s is not None:
            return o.ttl_s
        if o.predictor == "oracle":
            expected = min(c.delay for c in seq.req.children)
        else:
            expected = self.gaps / self.seen if self.seen else o.max_ttl_s
        return expected * (1 + o.slack) if expected <= o.max_ttl_s else 0.0

    def finished(self, seq: Sequence) -> None:
        """The history learns a tool call's duration once it has returned: those returned by this finish join it,
        and this call's tool call starts."""
        t, pending = seq.rec.finish, self.pending
        while pending and pending[0][0] <= t:
            self.gaps, self.seen = self.gaps + heapq.heappop(pending)[1], self.seen + 1
        if seq.req.children:
            gap = min(c.delay for c in seq.req.children)
            heapq.heappush(pending, (t + gap, gap))
