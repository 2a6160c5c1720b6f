"""Thermal throttling of an edge device: full clocks while a heat budget lasts, then held at its sustained power.

A phone or a fanless board can draw its peak power only for a while: its chassis dissipates
`sustained_w` indefinitely, and the heat of drawing more accumulates until the SoC's governor
lowers the clocks. Phone measurements show it within tens of seconds to minutes of continuous
LLM inference: MELT (Laskaridis et al., MobiCom 2024, arXiv 2403.12844) finds that thermal
behaviour rules out continuous on-device execution on phones and Jetsons, and Tummalapalli et al.
(arXiv 2603.23640, 2026) see an iPhone 16 Pro lose nearly half its decode throughput within two
runs of a 258-token prompt and a Galaxy S24 Ultra's GPU pinned to a frequency floor.

The model is a heat budget per device (replica), not a temperature: energy drawn above
`sustained_w` accumulates, and drains while the device draws below it (idle, or light load),
never below zero. The budget holds `boost_s x (tdp_w - sustained_w)` joules: `boost_s` seconds at
full power from cold. When it is full, the device is capped at `sustained_w` through the replica's
power cap, so iterations slow as `perf.energy.PowerModel` says a capped clock slows them; the cap
is lifted once the budget has drained to `RESUME_FRACTION` of its size (a governor's hysteresis
between its trip and clear points; the half is an assumption, not a measurement). Power is read
every `INTERVAL_S`, the POLCA controller's period. A cap below what the device draws at its lowest
clock is kept as far as the lowest clock allows (`PowerModel.min_cap_w`), and a note says so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from servesim.hardware import GPUSpec
from servesim.sim.controller import Controller

if TYPE_CHECKING:
    from servesim.sim.cluster import Cluster
    from servesim.sim.replica import Replica

INTERVAL_S = 0.5  # how often the device's power is read (POLCA's controller period, sim/power_control.py)
RESUME_FRACTION = 0.5  # full clocks return once the heat budget has drained to this share (assumed)


class ThermalController(Controller):
    interval_s = INTERVAL_S

    def __init__(self, gpu: GPUSpec, replicas: set[int], name: str = "thermal"):
        """Throttle each of `replicas` (numbers in the cluster), devices of kind `gpu` with a `sustained_w`;
        `name` keys its figures in the summary."""
        if gpu.sustained_w is None:
            raise ValueError(f"{gpu.name} has no sustained_w: it does not throttle")
        self.gpu, self.members, self.name = gpu, replicas, name
        self.sustained_w = gpu.sustained_w
        self.capacity_j = gpu.boost_s * (gpu.tdp_w - gpu.sustained_w)
        self.heat: dict[int, float] = dict.fromkeys(replicas, 0.0)  # joules stored above sustained, per device
        self.last_j: dict[int, float] = dict.fromkeys(replicas, 0.0)
        self.throttled: set[int] = set()
        self.throttled_s: dict[int, float] = dict.fromkeys(replicas, 0.0)
        self.first_s: dict[int, float] = {}  # when each device first throttled
        self.events = 0
        self.last_t = 0.0
        self.floor_w: float | None = None  # what a capped device still draws when sustained_w is below its floor

    def first_check(self, t0: float) -> float:
        return INTERVAL_S

    def step(self, t: float, cluster: Cluster) -> None:
        dt = t - self.last_t
        if dt <= 0:
            return
        groups: dict[int, list[Replica]] = {}
        for rep, r in zip(cluster.replicas, cluster.replica_of, strict=True):
            if r in self.members:
                groups.setdefault(r, []).append(rep)
        for r, reps in groups.items():
            gpus = sum(rep.gpus for rep in reps)
            energy = sum(rep.meter.energy_j + rep.power.idle_w * rep.gpus * max(t - rep.meter.busy_s, 0.0)
                         for rep in reps)  # fmt: skip
            watts = (energy - self.last_j[r]) / dt / gpus  # per device, over the last interval
            self.last_j[r] = energy
            if r in self.throttled:
                self.throttled_s[r] += dt
            self.heat[r] = min(max(self.heat[r] + (watts - self.sustained_w) * dt, 0.0), self.capacity_j)
            if r not in self.throttled and self.heat[r] >= self.capacity_j and watts > self.sustained_w:
                self.throttled.add(r)
                self.events += 1
                self.first_s.setdefault(r, t)
                for rep in reps:
                    rep.set_power_cap(min(self.sustained_w, rep.static_cap_w or math.inf))
                    if rep.power.min_cap_w > self.sustained_w:
                        self.floor_w = rep.power.min_cap_w
            elif r in self.throttled and self.heat[r] <= RESUME_FRACTION * self.capacity_j:
                self.throttled.discard(r)
                for rep in reps:
                    rep.set_power_cap(rep.static_cap_w)
        self.last_t = t

    def report(self, end: float) -> dict:
        return {self.name: {
            "sustained_w": self.sustained_w,
            "boost_s": self.gpu.boost_s,
            "throttle_events": self.events,
            "throttled_replica_s": sum(self.throttled_s.values()),
            "replica_throttled_s": [self.throttled_s[r] for r in sorted(self.members)],
            "replica_first_throttle_s": [self.first_s.get(r) for r in sorted(self.members)],
        }}  # fmt: skip

    def notes(self) -> list[str]:
        if not self.events:
            return []
        first = min(self.first_s.values())
        total = sum(self.throttled_s.values())
        line = (f"thermal: {self.gpu.name} used up its heat budget ({self.gpu.boost_s:g} s at full power from "
                f"cold) {first:.1f} s into the run and was held at its sustained {self.sustained_w:g} W; "
                f"throttles: {self.events}, {total:.1f} device-seconds throttled in all")  # fmt: skip
        if self.floor_w is not None:
            line += (f"; at its lowest clock it still draws {self.floor_w:.1f} W, so it was held there, above "
                     f"{self.sustained_w:g} W")  # fmt: skip
        return [line]
