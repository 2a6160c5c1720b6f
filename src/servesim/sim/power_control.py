"""POLCA-style power control of an oversubscribed cluster (Patel et al., ASPLOS 2024).

The cluster's power budget is smaller than the sum of its GPUs' TDPs. Every `interval_s`
the controller reads the power (GPUs and hosts) of the replicas it keeps over the last
interval. After power has stayed above `high` x budget for `reaction_s`, it caps the GPUs
of as many more replicas as the overshoot needs (estimated from their mean draw) at
`throttle_cap_w`, lowest priority first: the pool of lowest `power_priority` (a decode pool
before its prefill pool, a batch tier before an interactive one), then the highest-numbered
replica; below `low` x budget it lifts the most recent cap, back to the replica's own
static cap. It records how often and how long caps applied. A replica is capped whole:
with pipeline parallelism its micro-batch streams share its GPUs, and all take the cap.
One controller keeps the cluster's budget (`--power-budget`); a pool with its own budget
has its own controller over its replicas.
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
    def __init__(self, cfg: PowerConfig, host_w: float, budget_w: float | None = None, replicas: set[int] | None = None,
                 name: str = "power_control"):  # fmt: skip
        """Keep `budget_w` (default cfg.budget_w) over the replicas numbered in `replicas` (default all) and the
        `host_w` their hosts draw; `name` keys its figures in the summary."""
        self.cfg, self.host_w, self.name = cfg, host_w, name
        self.budget_w = cfg.budget_w if budget_w is None else budget_w
        self.members = replicas
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
        if t <= self.last_t:
            return
        by_replica: dict[int, list[Replica]] = {}
        for rep, r in zip(cluster.replicas, cluster.replica_of, strict=True):
            if self.members is None or r in self.members:
                by_replica.setdefault(r, []).append(rep)
        replicas = [rep for group in by_replica.values() for rep in group]
        # the order caps are applied in: lowest power priority first, then the highest-numbered replica
        groups = [by_replica[r] for r in sorted(by_replica, key=lambda r: (by_replica[r][0].power_priority, -r))]
        energy = self._energy(replicas, t)
        watts = (energy - self.last_j) / (t - self.last_t)
        self.capped_replica_s += len(self.capped) * (t - self.last_t)
        self.any_capped_s += (t - self.last_t) if self.capped else 0.0
        self.last_t, self.last_j, self.peak_w = t, energy, max(self.peak_w, watts)
        budget = self.budget_w
        if watts > self.cfg.high * budget:
            self.high_since = t if self.high_since is None else self.high_since
            uncapped = [g for g in groups if g not in self.capped]
            if t - self.high_since >= self.cfg.reaction_s and uncapped:
                cap = self.cfg.throttle_cap_w
                gpu_w = (watts - self.host_w) / sum(r.gpus for r in replicas)
                saving = max(gpu_w - cap, 0.05 * gpu_w) * sum(r.gpus for r in uncapped[0])  # per replica capped
                count = min(len(uncapped), max(1, math.ceil((watts - self.cfg.high * budget) / saving)))
                for target in uncapped[:count]:
                    for rep in target:
                        rep.set_power_cap(min(cap, rep.static_cap_w or math.inf))
                    self.capped.append(target)
                self.actions += 1
                self.high_since = t  # wait a reaction time before capping more
        else:
            self.high_since = None
            if watts < self.cfg.low * budget and self.capped:
                for rep in self.capped.pop():
                    rep.set_power_cap(rep.static_cap_w)

    def report(self, end: float) -> dict:
        return {self.name: {
            "budget_w": self.budget_w,
            "cap_actions": self.actions,
            "capped_replica_s": self.capped_replica_s,
            "time_capped_fraction": self.any_capped_s / end if end else 0.0,
            "peak_interval_power_w": self.peak_w,
        }}  # fmt: skip
