"""The waiting queue of a replica, with pluggable ordering (as vLLM V1's request queue has).

`FCFSQueue` serves in arrival order and puts a preempted sequence back at the front, as
vLLM's recompute preemption does. `KeyedQueue` serves the smallest `key(sequence)` first
(priority, shortest job, ...); a preempted sequence re-enters by its key, as in vLLM's
priority queue. Both let a policy take any sequence out, not only the head.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator

from servesim.sim.sequence import Sequence


class FCFSQueue(deque):
    """First come, first served (a deque: the replica's hot loop tests and counts it at C speed)."""

    push = deque.append
    requeue = deque.appendleft  # a preempted sequence goes back to the front

    def peek(self) -> Sequence:
        return self[0]


class KeyedQueue:
    """Smallest `key(sequence)` first; ties in the order sequences were pushed. With `by_arrival`, `oldest()`
    also gives the earliest-arrived waiting sequence (a starvation guard's candidate)."""

    __slots__ = ("key", "_heap", "_live", "_seq", "_arrivals")

    def __init__(self, key: Callable[[Sequence], object], by_arrival: bool = False):
        self.key = key
        self._heap: list = []
        self._live: dict[int, int] = {}  # sequence id -> sequence number of its live heap entry
        self._seq = 0
        self._arrivals: list | None = [] if by_arrival else None

    def push(self, seq: Sequence) -> None:
        self._seq += 1
        self._live[seq.id] = self._seq
        heapq.heappush(self._heap, (self.key(seq), self._seq, seq))
        if self._arrivals is not None:
            heapq.heappush(self._arrivals, (seq.arrival, self._seq, seq))

    requeue = push

    def _top(self, heap: list):
        live = self._live
        while heap and live.get(heap[0][2].id) != heap[0][1]:
            heapq.heappop(heap)  # an entry whose sequence was taken out
        return heap[0]

    def peek(self) -> Sequence:
        return self._top(self._heap)[2]

    def oldest(self) -> Sequence:
        return self._top(self._arrivals)[2]

    def remove(self, seq: Sequence) -> None:
        del self._live[seq.id]

    def __iter__(self) -> Iterator[Sequence]:
        live = self._live
        return iter([e[2] for e in sorted(self._heap) if live.get(e[2].id) == e[1]])

    def __len__(self) -> int:
        return len(self._live)

    def __bool__(self) -> bool:
        return bool(self._live)


WaitingQueue = FCFSQueue | KeyedQueue
