"""Power and energy of an iteration.

Board power while an iteration runs is the idle power plus the extra power of its
compute-bound and memory-bound operators, weighted by the time each takes. Measured
profiles give the three levels (NVML, under a GEMM loop, a copy loop and at rest);
without one, the datasheet TDP stands for compute-bound work and the H200 profile's
ratio of memory-bound to compute-bound power (567 W / 691 W = 0.82) scales it for
memory-bound work.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.hardware import GPUSpec
from servesim.perf.base import OpCost

MEMORY_TO_COMPUTE_POWER = 0.82  # measured on H200: copy loop 567 W vs GEMM loop 691 W


@dataclass(frozen=True)
class PowerModel:
    idle_w: float
    compute_w: float
    memory_w: float
    source: str

    @classmethod
    def for_gpu(cls, gpu: GPUSpec, profile=None) -> PowerModel:
        power = getattr(profile, "power", None) or {}
        if {"idle", "compute", "memory"} <= set(power):
            return cls(power["idle"], power["compute"], power["memory"], "measured")
        return cls(gpu.idle_w, gpu.tdp_w, MEMORY_TO_COMPUTE_POWER * gpu.tdp_w, "datasheet")

    def watts(self, ops: list[OpCost]) -> float:
        """Mean board power of one GPU over an iteration with these operators."""
        total = sum(o.seconds for o in ops)
        if total <= 0:
            return self.idle_w
        busy = {"compute": self.compute_w, "memory": self.memory_w}
        return sum(o.seconds * busy.get(o.bound, self.idle_w) for o in ops) / total

    def joules(self, ops: list[OpCost]) -> float:
        return self.watts(ops) * sum(o.seconds for o in ops)
