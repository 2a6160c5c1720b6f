"""POLCA-style power control of an oversubscribed cluster (Patel et al., ASPLOS 2024).

The cluster's power budget is smaller than the sum of its GPUs' TDPs. Every `interval_s`
the controller reads cluster power (GPUs and hosts) over the last interval. After power
has stayed above `high` x budget for `reaction_s`, it caps the GPUs of as many more
replicas as the overshoot needs (estimated from their mean draw) at `throttle_cap_w`,
lowest priority first (the highest-numbered replica); below `low` x budget it lifts the
most recent cap. It records how often and how long caps applied. A replica is capped
whole: with pipeline parallelism its micro-batch streams share its GPUs, and all take the cap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from servesim.config import PowerConfig
from servesim.sim.controller import Controller
from servesim.sim.replica import Replica

if TYPE_CHECKING:
    from servesim.sim.cluster import Cluster


class PowerController(Controller):
    def __init__(self, cfg: PowerConfig, host_w: float, static_cap_w: float | None = None):
        self.cfg, self.host_w, self.static_cap = cfg, host_w, static_cap_w
        self.capped: list[list[Replica]] = []  # replicas capped (each its engines: with PP, its streams)
        self.last_t = self.last_j = 0.0
        self.high_since: float | None = None
        self.actions = 0
        self.capped_replica_s = 0.0
        self.any_capped_s = 0.0
        self.peak_w = 0.0

    @property
    def interval_s(self) -> float:
        return self.cfg.interval_s

    def first_check(self, t0: float) -> float:
        return self.cfg.interval_s

    def _energy(self, replicas: list[Replica], t: float) -> float:
        idle = sum(r.power.idle_w * r.gpus * max(t - r.meter.busy_s, 0.0) for r in replicas)
        return sum(r.meter.energy_j for r in replicas) + idle + self.host_w * t

    def step(self, t: float, cluster: Cluster) -> None:
        replicas = cluster.replicas
        if t <= self.last_t:
            return
        groups: list[list[Replica]] = [[] for _ in range(cluster.replica_of[-1] + 1)]
        for rep, r in zip(replicas, cluster.replica_of, strict=True):
            groups[r].append(rep)
        energy = self._energy(replicas, t)
        watts = (energy - self.last_j) / (t - self.last_t)
        self.capped_replica_s += len(self.capped) * (t - self.last_t)
        self.any_capped_s += (t - self.last_t) if self.capped else 0.0
        self.last_t, self.last_j, self.peak_w = t, energy, max(self.peak_w, watts)
        budget = self.cfg.budget_w
        if watts > self.cfg.high * budget:
            self.high_since = t if self.high_since is None else self.high_since
            uncapped = [g for g in groups if g not in self.capped]
            if t - self.high_since >= self.cfg.reaction_s and uncapped:
                cap = min(self.cfg.throttle_cap_w, self.static_cap or float("inf"))
                gpu_w = (watts - self.host_w) / sum(r.gpus for r in replicas)
                saving = max(gpu_w - cap, 0.05 * gpu_w) * sum(r.gpus for r in uncapped[-1])  # per replica capped
                count = min(len(uncapped), max(1, math.ceil((watts - self.cfg.high * budget) / saving)))
                for target in uncapped[-count:]:
                    for rep in target:
                        rep.set_power_cap(cap)
                    self.capped.append(target)
                self.actions += 1
                self.high_since = t  # wait a reaction time before capping more
        else:
            self.high_since = None
            if watts < self.cfg.low * budget and self.capped:
                for rep in self.capped.pop():
                    rep.set_power_cap(self.static_cap)

    def report(self, end: float) -> dict:
        return {"power_control": {
            "budget_w": self.cfg.budget_w,
            "cap_actions": self.actions,
            "capped_replica_s": self.capped_replica_s,
            "time_capped_fraction": self.any_capped_s / end if end else 0.0,
            "peak_interval_power_w": self.peak_w,
        }}  # fmt: skip
