"""A request's progress on one replica, as the engine tracks a sequence: what it has computed and generated,
the blocks it holds, and where it stands in the decoding aggregate.

A replica's `ReplicaState` makes a sequence when the replica receives a request and is the
only one to change it (through its `DecodingSet` for a decoding stint, and its `Meter` for
the running sums a stint's energy is settled from). A request handed to another replica
(disaggregated decode, live migration) leaves this sequence behind and gets a new one
there, carrying its progress. Policies and routers read sequences; `seq.req` is the
request as the workload described it, `seq.rec` its record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servesim.sim.request import Request


class Sequence:
    """While prefilling, `computed` counts tokens whose KV is cached and `blocks` the blocks held. While
    decoding, both follow from the replica's iteration counter `it`: computed = base + it,
    blocks = ceil(computed / block_size)."""

    __slots__ = (
        "req", "rec", "id", "prompt_len", "output_len", "arrival", "ready", "kv_ready",
        "computed", "generated", "blocks", "shared_blocks", "entries", "swapped",
        "base", "finish_it", "epoch", "decoding", "seg_start", "j_mark", "usd_mark",
    )  # fmt: skip

    def __init__(self, req: Request, ready: float, computed: int = 0, generated: int = 0, kv_ready: bool = False):
        self.req, self.rec = req, req.record
        self.id, self.prompt_len, self.output_len = req.id, req.prompt_len, req.output_len  # (the request's, at hand)
        self.arrival = req.record.arrival
        self.ready = ready  # when this replica may start it
        self.kv_ready = kv_ready  # its KV cache is here already (transferred in, or swapped out to the host)
        self.computed = computed
        self.generated = generated
        self.blocks = 0
        self.shared_blocks = 0  # blocks of `entries`, held through the prefix cache
        self.entries: list = []  # prefix-cache entries it references
        self.swapped = 0  # blocks of its KV waiting in the CPU tier (preempted by swapping)
        self.base = 0
        self.finish_it = -1
        self.epoch = 0
        self.decoding = False
        self.seg_start = -1  # the iteration that made its first token here
        self.j_mark = self.usd_mark = 0.0  # the meter's running sums when its decoding stint began

    @property
    def target(self) -> int:
        """Tokens the prefill must have computed before the next token is sampled."""
        return self.prompt_len + self.generated

    def __repr__(self) -> str:
        return f"Sequence({self.id}, in={self.prompt_len}, out={self.output_len}, gen={self.generated})"
