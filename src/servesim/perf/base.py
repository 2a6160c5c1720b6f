"""The interface every performance model implements: a batch in, seconds out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from servesim.perf.batch import Batch


@dataclass(frozen=True, slots=True)
class OpCost:
    """Time of one operator class over all layers, with the work that set it."""

    name: str
    seconds: float
    flops: float = 0.0
    bytes: float = 0.0
    bound: str = "-"  # "compute", "memory", "comm", "overhead"


class PerfModel(ABC):
    """Predicts how long one engine iteration takes on one replica.

    A model implements `breakdown`; the simulator calls `split` (once per iteration) and
    `decode_split` (once per run of decode iterations), which subclasses make fast.
    """

    @abstractmethod
    def breakdown(self, batch: Batch) -> list[OpCost]:
        """Per-operator costs; their seconds sum to `iteration_time(batch)`."""

    def split(self, batch: Batch) -> tuple[float, float, float]:
        """(compute-bound, memory-bound, other) seconds of an iteration (other: collectives, CPU)."""
        ops = self.breakdown(batch)
        comp = sum(o.seconds for o in ops if o.bound == "compute")
        mem = sum(o.seconds for o in ops if o.bound == "memory")
        return comp, mem, sum(o.seconds for o in ops) - comp - mem

    def decode_split(self, num_seqs: int, ctx_sums: np.ndarray) -> tuple[float, np.ndarray, float]:
        """`split` of consecutive decode-only iterations of `num_seqs` requests, ctx_sums[k] being the
        decode_ctx_sum of iteration k; only the memory-bound part varies (decode attention reads the cache)."""
        parts = [self.split(Batch(num_seqs, int(c))) for c in ctx_sums]
        return parts[0][0], np.array([p[1] for p in parts]), parts[0][2]

    def iteration_time(self, batch: Batch) -> float:
        return sum(self.split(batch))

    def decode_times(self, num_seqs: int, ctx_sums: np.ndarray) -> np.ndarray:
        """Times of consecutive decode-only iterations (see `decode_split`)."""
        comp, mem, other = self.decode_split(num_seqs, ctx_sums)
        return comp + mem + other
