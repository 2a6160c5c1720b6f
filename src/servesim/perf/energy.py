"""Power and energy of an iteration, and what a power cap does to it.

Board power while an iteration runs is the idle power plus the extra power of its
compute-bound and memory-bound work, weighted by the time each takes. Measured
profiles give the three levels (NVML, under a GEMM loop, a copy loop and at rest);
without one, the datasheet TDP stands for compute-bound work and the H200 profile's
ratio of memory-bound to compute-bound power (567 W / 691 W = 0.82) scales it for
memory-bound work.

A power cap lowers the clock until the iteration's mean power fits. Compute-bound work
slows in proportion to the clock; memory-bound work is paced by HBM, so it slows only a
little, and half of its extra power follows the clock. This is why capping hurts prefill
more than decode (POLCA, Patel et al., ASPLOS 2024; Splitwise, Patel et al., ISCA 2024).
The exponents are modelling assumptions, stated below, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servesim.hardware import GPUSpec
from servesim.perf.base import OpCost

MEMORY_TO_COMPUTE_POWER = 0.82  # measured on H200: copy loop 567 W vs GEMM loop 691 W
CLOCK_POWER_EXPONENT = 3.0  # dynamic power ~ f V^2 with V roughly proportional to f near the top of DVFS
MEMORY_CLOCK_SHARE = 0.5  # share of memory-bound work's extra power that follows the SM clock
MEMORY_SLOWDOWN = 0.15  # memory-bound time grows by this fraction of the compute-bound slow-down
MIN_CLOCK = 0.3


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
        comp = sum(o.seconds for o in ops if o.bound == "compute")
        mem = sum(o.seconds for o in ops if o.bound == "memory")
        return self.mean_watts(comp, mem, sum(o.seconds for o in ops) - comp - mem)

    def joules(self, ops: list[OpCost]) -> float:
        return self.watts(ops) * sum(o.seconds for o in ops)

    def mean_watts(self, comp, mem, other, clock: float = 1.0):
        """Mean power over compute-bound, memory-bound and other (comm, CPU) seconds at full clock."""
        comp_t, mem_t = stretch(comp, mem, clock)
        f = clock**CLOCK_POWER_EXPONENT
        extra_mem = (self.memory_w - self.idle_w) * (1 - MEMORY_CLOCK_SHARE + MEMORY_CLOCK_SHARE * f)
        energy = comp_t * (self.compute_w - self.idle_w) * f + mem_t * extra_mem
        total = comp_t + mem_t + other  # scalar or array (runs of decode iterations)
        if isinstance(total, np.ndarray):
            return self.idle_w + energy / np.maximum(total, 1e-30)
        return self.idle_w + energy / max(total, 1e-30)  # (a numpy call costs more than the iteration's sums)

    def linear(self, comp: float, other: float, clock: float = 1.0) -> tuple[float, float, float, float]:
        """(a, b, e0, e1): at `clock`, an iteration with these compute-bound and other seconds and s seconds
        in all at full clock lasts a + b s and uses e0 + e1 s joules per GPU (power is linear in its parts)."""
        sf = stretch(0.0, 1.0, clock)[1]  # memory-bound seconds stretch by this
        comp_t, f = comp / clock, clock**CLOCK_POWER_EXPONENT
        extra_mem = (self.memory_w - self.idle_w) * (1 - MEMORY_CLOCK_SHARE + MEMORY_CLOCK_SHARE * f)
        a, b = comp_t + other - (comp + other) * sf, sf
        e0 = self.idle_w * a + comp_t * (self.compute_w - self.idle_w) * f - extra_mem * sf * (comp + other)
        return a, b, e0, self.idle_w * b + extra_mem * sf

    @property
    def min_cap_w(self) -> float:
        """The lowest cap every iteration can keep: compute- or memory-bound work at the lowest clock."""
        return float(max(self.mean_watts(1.0, 0.0, 0.0, MIN_CLOCK), self.mean_watts(0.0, 1.0, 0.0, MIN_CLOCK)))

    def clock_for(self, comp: float, mem: float, other: float, cap_w: float) -> float:
        """The highest clock (fraction of full) at which the iteration's mean power fits the cap."""
        if self.mean_watts(comp, mem, other) <= cap_w:
            return 1.0
        lo, hi = MIN_CLOCK, 1.0
        for _ in range(20):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.mean_watts(comp, mem, other, mid) <= cap_w else (lo, mid)
        return lo

    def capped(self, comp: float, mem: float, other: float, cap_w: float) -> tuple[float, float, float]:
        """(seconds, mean watts, clock) of the iteration under a per-GPU power cap."""
        clock = self.clock_for(comp, mem, other, cap_w)
        comp_t, mem_t = stretch(comp, mem, clock)
        return comp_t + mem_t + other, self.mean_watts(comp, mem, other, clock), clock


def stretch(comp, mem, clock: float):
    """Compute-bound and memory-bound seconds at a lowered clock (scalars or arrays)."""
    return comp / clock, mem * (1 + MEMORY_SLOWDOWN * (1 / clock - 1))


NO_POWER = PowerModel(0.0, 0.0, 0.0, "none")  # for replicas whose energy nobody asked about
