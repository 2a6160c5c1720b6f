"""Contexts of finished program calls kept for the call after them (Continuum's KV retention).

When a program's call finishes and another will follow it (after a tool call or a
user's think time), a retention policy (`Scheduler.retention`) may keep its context:

* pinned on the GPU: one more reference on its prefix-cache entries, so they count as
  used, not evictable. A pin goes when the next call starts (it references the entries
  itself), when its time-to-live lapses (checked at each iteration's start), or when
  blocks are needed (`Scheduler.preempt` drops the pin that would lapse first before it
  preempts anyone);
* or, with `offload`, copied to the CPU tier (`kv_swap.py`, sharing its capacity with
  swapped requests) and copied back, beyond what the GPU cache still holds, when the next
  call is admitted.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servesim.sim.sequence import Sequence


class Kept:
    """The kept contexts of one replica; `state` is its `ReplicaState` (KV cache, CPU tier, copy time)."""

    def __init__(self, state):
        self.state = state
        self.offload = False  # keep contexts in the CPU tier instead of pinning them on the GPU
        self.pins: dict[int, list] = {}  # finished call's id -> the prefix-cache entries it pins
        self.expiry: list[tuple[float, int]] = []  # (time the pin lapses, call id), a heap
        self.pinned_for: dict[int, list[int]] = {}  # waiting call's id -> ids of the pinned calls it continues
        self.offloaded: dict[int, tuple[int, int]] = {}  # finished call's id -> (units, blocks) on the host
        self.offloaded_for: dict[int, list[int]] = {}  # waiting call's id -> the offloaded calls it continues

    def keep(self, seq: Sequence, until: float) -> None:
        """Keep a finished call's context (its cached entries) for the calls after it, until `until`."""
        if self.offload:
            self._offload(seq)
        else:
            self._pin(seq, until)

    # ----- pinned on the GPU -----
    def _pin(self, seq: Sequence, until: float) -> None:
        self.state.kv.ref(seq.entries)
        self.pins[seq.id] = list(seq.entries)
        heapq.heappush(self.expiry, (until, seq.id))
        for child in seq.req.children:
            self.pinned_for.setdefault(child.id, []).append(seq.id)

    def unpin(self, call_id: int) -> bool:
        """Let a finished call's pinned KV go (it stays cached, evictable); False if it had gone already."""
        entries = self.pins.pop(call_id, None)
        if entries is None:
            return False
        self.state.kv.unref(entries)
        return True

    def continued(self, seq: Sequence) -> None:
        """A call whose context is pinned starts: it references the context itself, the pin goes."""
        for parent in self.pinned_for.pop(seq.id, ()):
            self.unpin(parent)

    def expire(self, now: float) -> None:
        """Drop the pins whose time-to-live has passed."""
        expiry = self.expiry
        while expiry and expiry[0][0] <= now:
            self.unpin(heapq.heappop(expiry)[1])

    def next_expiry(self) -> float:
        expiry = self.expiry
        while expiry and expiry[0][1] not in self.pins:
            heapq.heappop(expiry)  # released before its time
        return expiry[0][0] if expiry else math.inf

    def drop_pin(self) -> bool:
        """Under memory pressure, release the pin that would lapse first; False if there is none."""
        while self.expiry:
            if self.unpin(heapq.heappop(self.expiry)[1]):
                return True
        return False

    # ----- offloaded to the CPU tier -----
    def _offload(self, seq: Sequence) -> None:
        """Copy a finished call's context to the CPU tier, if it has room, for its next call to load back."""
        s = self.state
        units = (seq.prompt_len + seq.output_len - 1) // s.unit_tokens
        blocks = units * s.kv.unit_blocks
        if s.swap is None or s.host_used + blocks > s.swap.host_blocks:
            return
        s.host_used += blocks
        s.copy(blocks)
        self.offloaded[seq.id] = (units, blocks)
        for child in seq.req.children:
            self.offloaded_for.setdefault(child.id, []).append(seq.id)

    def loadable(self, seq: Sequence, hit_units: int) -> tuple[int, list | None]:
        """Units of `seq`'s context an offloaded copy adds to the GPU cache's hit, and the calls it continues."""
        parents = self.offloaded_for.get(seq.id)
        if parents is None:
            return 0, None
        units = max((self.offloaded[p][0] for p in parents if p in self.offloaded), default=0)
        return max(0, min(units, (seq.target - 1) // self.state.unit_tokens) - hit_units), parents

    def load(self, seq: Sequence, parents: list, units: int) -> None:
        """Copy `units` of an offloaded context back for the call that continues it; the CPU copies go."""
        s = self.state
        del self.offloaded_for[seq.id]
        for p in parents:
            if p in self.offloaded:
                s.host_used -= self.offloaded.pop(p)[1]
        if units:
            s.copy(units * s.kv.unit_blocks)
