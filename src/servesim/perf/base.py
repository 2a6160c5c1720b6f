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
    """Predicts how long one engine iteration takes on one replica."""

    @abstractmethod
    def breakdown(self, batch: Batch) -> list[OpCost]:
        """Per-operator costs; their seconds sum to `iteration_time(batch)`."""

    def iteration_time(self, batch: Batch) -> float:
        return sum(op.seconds for op in self.breakdown(batch))

    def decode_times(self, num_seqs: int, ctx_sums: np.ndarray) -> np.ndarray:
        """Times of consecutive decode-only iterations of `num_seqs` requests.

        ctx_sums[k] is the decode_ctx_sum of iteration k. Subclasses vectorise this;
        the simulator calls it to advance many decode iterations at once.
        """
        return np.array([self.iteration_time(Batch(num_seqs, int(c))) for c in ctx_sums])
