"""The event queue every deployment runs on: events in time order, ties by rank then insertion.

An event is a time, a rank (what goes first at equal times: arrivals, then controllers,
then KV caches landing), a handler and its argument.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

ARRIVAL, CONTROL, LANDING = 0, 1, 2


class EventQueue:
    __slots__ = ("_heap", "_seq")

    def __init__(self):
        self._heap: list = []
        self._seq = 0

    def schedule(self, t: float, rank: int, handler: Callable, arg=None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, rank, self._seq, handler, arg))

    def extend(self, events) -> None:
        """Schedule many (t, rank, handler, arg) events at once."""
        for t, rank, handler, arg in events:
            self._seq += 1
            self._heap.append((t, rank, self._seq, handler, arg))
        heapq.heapify(self._heap)

    def peek(self) -> float:
        """Time of the next event, inf if none."""
        return self._heap[0][0] if self._heap else math.inf

    def pop(self) -> tuple[float, Callable, object]:
        t, _, _, handler, arg = heapq.heappop(self._heap)
        return t, handler, arg

    def args(self, rank: int) -> list:
        """The arguments of the pending events of one rank, in no particular order."""
        return [e[4] for e in self._heap if e[1] == rank]

    def __len__(self) -> int:
        return len(self._heap)
