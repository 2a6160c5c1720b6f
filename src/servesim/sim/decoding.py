"""The decoding sequences of a replica, tracked in aggregate.

Every decoding sequence gains one token per iteration, so nothing about it needs
touching until it finishes or is preempted. A sequence stores `base` with
computed = base + it; the set keeps the count, the sum of bases, how many requests
sit at each position within a block (`phase`), and a heap of finish iterations.
From these, the KV-cache growth and attention context of any run of iterations
follow in closed form.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servesim.sim.sequence import Sequence


class DecodingSet:
    def __init__(self, block_size: int):
        self.B = block_size
        self.n = 0
        self.base_sum = 0
        self.phase = [0] * block_size  # sequences by base % B
        self._heap: list = []
        self._count = 0

    def add(self, seq: Sequence, it: int) -> None:
        """Start decoding at iteration `it`; the prefill's token is already counted."""
        seq.base = seq.computed - it
        seq.finish_it = it - 1 + seq.output_len - seq.generated
        seq.epoch += 1
        seq.decoding = True
        self.n += 1
        self.base_sum += seq.base
        self.phase[seq.base % self.B] += 1
        self._count += 1
        heapq.heappush(self._heap, (seq.finish_it, self._count, seq.epoch, seq))

    def remove(self, seq: Sequence) -> None:
        seq.decoding = False
        self.n -= 1
        self.base_sum -= seq.base
        self.phase[seq.base % self.B] -= 1

    def ctx_sum(self, it: int) -> int:
        """Attention context of iteration `it`: each request's cached tokens plus its new one."""
        return self.base_sum + self.n * (it + 1)

    def _live_top(self):
        heap = self._heap
        while heap:
            _, _, epoch, seq = heap[0]
            if seq.decoding and seq.epoch == epoch:
                return heap[0]
            heapq.heappop(heap)
        return None

    def next_finish(self) -> int:
        top = self._live_top()
        return top[0] if top else 1 << 62

    def pop_finished(self, last_it: int) -> list[Sequence]:
        """The requests whose last token came from iteration `last_it` (the caller removes them)."""
        done = []
        while True:
            top = self._live_top()
            if top is None or top[0] > last_it:
                return done
            heapq.heappop(self._heap)
            done.append(top[3])

    # ----- KV-cache growth -----
    def _needs(self, start: int, count: int | None = None):
        """New blocks needed at iterations start, start+1, ... (count of them, a whole block cycle by default)."""
        B, phase = self.B, self.phase
        return (phase[(-j) % B] for j in range(start, start + (B if count is None else count)))

    def blocks_needed_at(self, it: int) -> int:
        return self.phase[(-it) % self.B]

    def blocks_needed(self, start: int, count: int) -> int:
        """New blocks needed over `count` iterations from `start`."""
        if count <= 0 or not self.n:
            return 0
        full, rest = divmod(count, self.B)
        return full * self.n + sum(self._needs(start, rest))

    def iterations_fitting(self, start: int, free: int, enough: int = 1 << 62) -> int:
        """How many iterations from `start` can run before growth exceeds `free` blocks (or at least `enough`)."""
        if not self.n:
            return 1 << 62
        full, rem = divmod(free, self.n)
        if full * self.B >= enough:  # whole block rounds for every request cover it
            return full * self.B
        k = 0
        for need in self._needs(start):
            rem -= need
            if rem < 0:
                break
            k += 1
        return full * self.B + k
