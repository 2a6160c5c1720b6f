"""Virtual Token Counter: fair share among tenants (Sheng et al., "Fairness in Serving Large Language
Models", OSDI 2024).

Each tenant has a counter of the service it has received, in weighted tokens (input x
w_in + output x w_out, divided by its fair-share weight). The next request admitted is the
oldest of the backlogged tenant with the smallest counter, so a tenant sending more than
its share waits while the others are served. A tenant that comes back after having nothing
queued or running has its counter lifted to the smallest among the backlogged, so it
cannot bank service while idle. Input tokens count as their prefill chunks are scheduled,
output tokens as they are made (those of requests still running, read from the iteration
counter; a preempted request's tokens count again when it finishes). Everything else is
vLLM's scheduling.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from servesim.errors import ServesimError
from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.scheduler import register
from servesim.sim.sequence import Sequence


class VTCOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    w_in: float = Field(1.0, ge=0, description="service per input token (the paper's 1)")
    w_out: float = Field(2.0, ge=0, description="service per output token (the paper's 2)")
    weights: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, min_length=1, description="fair-share weight of each tenant (> 0), in the workload's order (default: "
        "equal)")  # fmt: skip


class TenantQueues:
    """Waiting requests in one first-come-first-served queue per tenant; `peek` asks `pick` which tenant."""

    def __init__(self, pick: Callable[[list[int]], int], on_push: Callable[[Sequence], None]):
        self.queues: dict[int, deque] = {}
        self.n = 0
        self.pick = pick  # tenants with sequences waiting -> the one to serve
        self.on_push = on_push  # called with a sequence about to join

    def push(self, seq: Sequence) -> None:
        self.on_push(seq)
        self.queues.setdefault(seq.req.tenant, deque()).append(seq)
        self.n += 1

    def requeue(self, seq: Sequence) -> None:
        self.queues.setdefault(seq.req.tenant, deque()).appendleft(seq)
        self.n += 1

    def peek(self) -> Sequence:
        return self.queues[self.pick([t for t, q in self.queues.items() if q])][0]

    def remove(self, seq: Sequence) -> None:
        q = self.queues[seq.req.tenant]
        if q[0] is seq:
            q.popleft()
        else:
            q.remove(seq)
        self.n -= 1

    def __iter__(self) -> Iterator[Sequence]:
        return iter([r for q in self.queues.values() for r in q])

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0


@register
class VTCScheduler(VLLMScheduler):
    name = "vtc"
    Options = VTCOptions

    @classmethod
    def check_workload(cls, opts, workload) -> None:
        tenants = workload.tenants or []
        if opts is not None and opts.weights and len(opts.weights) != len(tenants):
            raise ServesimError(f"scheduler_options of vtc: {len(opts.weights)} weights for {len(tenants)} tenants; "
                                "give one weight per [[workload.tenants]] entry")  # fmt: skip

    def __init__(self, state, engine, options=None):
        self.counted: dict[int, float] = {}  # tenant -> service of scheduled input and finished output
        super().__init__(state, engine, options)

    @property
    def steady(self) -> bool:
        """Counters grow with every token, so with two tenants waiting the next pick may change any iteration."""
        return sum(1 for q in self.state.waiting.queues.values() if q) < 2

    def make_queue(self) -> TenantQueues:
        return TenantQueues(self.least_served, self.lift)

    def counters(self) -> dict[int, float]:
        """Each tenant's counter now, over its weight: what was counted, plus the output of its sequences
        still running."""
        s, w_out, weights = self.state, self.opts.w_out, self.opts.weights
        c = dict(self.counted)
        for r in s.running.values():
            t = r.req.tenant
            c[t] = c.get(t, 0.0) + w_out * s.made(r)
        if weights:
            c = {t: v / weights[t] if t < len(weights) else v for t, v in c.items()}
        return c

    def least_served(self, tenants: list[int]) -> int:
        if len(tenants) == 1:
            return tenants[0]
        c = self.counters()
        return min(tenants, key=lambda t: (c.get(t, 0.0), t))

    def lift(self, seq: Sequence) -> None:
        """A tenant with nothing queued or running comes back: no credit for the time it was away."""
        s, t = self.state, seq.req.tenant
        if s.waiting.queues.get(t) or any(r.req.tenant == t for r in s.running.values()):
            return
        c = self.counters()
        busy = [c.get(u, 0.0) for u, q in s.waiting.queues.items() if q and u != t]
        busy += [c.get(r.req.tenant, 0.0) for r in s.running.values() if r.req.tenant != t]
        if busy and min(busy) > c.get(t, 0.0):
            w = self.opts.weights[t] if self.opts.weights and t < len(self.opts.weights) else 1.0
            self.counted[t] = self.counted.get(t, 0.0) + (min(busy) - c.get(t, 0.0)) * w

    def finished(self, seq: Sequence) -> None:
        self._count(seq, self.opts.w_out * seq.output_len)

    def admit(self, seq: Sequence, budget: int, chunked: bool = True) -> int:
        chunk = super().admit(seq, budget, chunked)
        self._count(seq, self.opts.w_in * chunk)
        return chunk

    def continue_prefill(self, seq: Sequence, budget: int) -> int:
        chunk = super().continue_prefill(seq, budget)
        self._count(seq, self.opts.w_in * chunk)
        return chunk

    def _count(self, seq: Sequence, service: float) -> None:
        t = seq.req.tenant
        self.counted[t] = self.counted.get(t, 0.0) + service
