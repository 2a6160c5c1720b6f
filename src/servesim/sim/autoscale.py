"""Replicas started and stopped during a run: a scaling policy decides how many, a start costs a cold start.

Every `interval_s` the autoscaler shows its policy the fleet (`FleetView`: replicas serving
and starting, their load (KV cache and batch slots in use), requests waiting) and moves
the fleet toward the count it asks for, within [min_replicas, max_replicas]. A replica it
starts is billed from that moment (GPU-time, idle power), loads its weights over
`load_gbs` per GPU and warms up for `warmup_s`, and only then takes requests. One it stops
takes no new requests, finishes those it holds, and is billed until the check that finds it
empty. With no replica serving, arrivals wait at the router (`Stage.held`) and the first of
them starts one at once (scale from zero): that wait is part of their TTFT, reported as the
cold starts' share of it. Each policy is one module in `sim/autoscalers/`, registered by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from servesim.config import AutoscaleConfig, Scenario, validation_message
from servesim.errors import ServesimError
from servesim.registry import Registry
from servesim.sim.controller import Controller

if TYPE_CHECKING:
    from servesim.sim.replica import Replica
# (the `cluster` its methods take is `sim.cluster.Cluster`, not imported here: that module imports join_figures)

POLICIES = Registry("autoscaler", "servesim.sim.autoscalers", "servesim.autoscalers")
register = POLICIES.register


@dataclass(frozen=True)
class FleetView:
    """What a policy sees at each check."""

    t: float
    serving: int  # replicas taking requests
    starting: int  # replicas in their cold start
    load: float  # mean over the serving replicas of max(KV cache held or wanted, running / max_num_seqs)
    waiting: int  # requests queued on serving replicas or held at the router
    outstanding: int  # requests anywhere in the fleet, running included


class Policy:
    """A scaling policy: the replica count it wants now (the autoscaler clamps it and applies it). Its settings
    (`autoscale.options`) are checked against its `Options` model."""

    name = ""
    Options: type[BaseModel] = BaseModel

    def __init__(self, cfg: AutoscaleConfig, scenario: Scenario, cold_start_s: float):
        self.cfg, self.cold_start_s = cfg, cold_start_s
        try:
            self.opts = self.Options(**cfg.options)
        except ValidationError as e:
            raise ServesimError(validation_message(e, f"autoscale.options of {self.name}")) from None

    def desired(self, view: FleetView) -> int:
        raise NotImplementedError


class Autoscaler(Controller):
    def __init__(self, cfg: AutoscaleConfig, policy: Policy, cold_start_s: float):
        self.cfg, self.policy, self.cold_start_s = cfg, policy, cold_start_s
        self.starting: set[Replica] = set()  # in their cold start
        self.draining: list[Replica] = []
        self.cold_starts = 0
        self.held_s = 0.0  # arrivals' waits for a replica to serve them (scale from zero)
        self.held = 0
        self.low = self.high = None  # fewest and most replicas billed at a check
        self.ramps: list[tuple[float, float]] = []  # each start's cold start: (asked, ready)

    @property
    def interval_s(self) -> float:
        return self.cfg.interval_s

    def first_check(self, t0: float) -> float:
        return t0 + self.cfg.interval_s

    def step(self, t: float, cluster) -> None:
        stage = cluster.stages[0]
        for rep in [r for r in self.draining if not r.outstanding]:
            rep.retire(t)
            self.draining.remove(rep)
        serving = stage.active
        # (a replica's busy share says little: one running request keeps it busy all the time)
        load = [max(r.state.kv_load(), len(r.state.running) / r.state.max_num_seqs) for r in serving]
        view = FleetView(t, len(serving), len(self.starting), sum(load) / len(load) if load else 0.0,
                         sum(len(r.state.waiting) + len(r.state.incoming) for r in serving) + len(stage.held),
                         sum(r.outstanding for r in stage.replicas) + len(stage.held))  # fmt: skip
        want = max(self.cfg.min_replicas, min(self.cfg.max_replicas, self.policy.desired(view)))
        have = view.serving + view.starting
        if want > have:
            self.start(cluster, t, want - have)
        elif want < view.serving and not stage.held:  # (never below the starting ones: they are paid for)
            for rep in sorted(serving, key=lambda r: (r.outstanding, -r.index))[: view.serving - want]:
                cluster.drain(rep)
                self.draining.append(rep)
        billed = len(stage.active) + len(self.starting) + len(self.draining)
        self.low, self.high = min(self.low if self.low is not None else billed, billed), max(self.high or 0, billed)

    def start(self, cluster, t: float, count: int) -> None:
        """Start up to `count` stopped replicas: billed now, serving after the cold start."""
        stage = cluster.stages[0]
        idle = [r for r in stage.replicas if r not in stage.active and r not in self.starting
                and r not in self.draining]  # fmt: skip
        for rep in idle[:count]:
            rep.provision(t)
            self.starting.add(rep)
            self.ramps.append((t, t + self.cold_start_s))
            self.cold_starts += 1
            cluster.when_ready(rep, t + self.cold_start_s, self._ready)

    def _ready(self, t: float, rep: Replica, cluster) -> None:
        self.starting.discard(rep)
        for req in cluster.activate(rep, t):  # the arrivals that waited for a replica
            self.held_s += t - req.arrival
            self.held += 1

    def on_held(self, t: float, cluster) -> None:
        """An arrival found no replica serving: start one at once unless one is starting."""
        if not self.starting:
            self.start(cluster, t, 1)

    def report(self, end: float) -> dict:
        return {"autoscale": {
            "policy": self.policy.name,
            "cold_start_s": self.cold_start_s,
            "cold_starts": self.cold_starts,
            "min_replicas_billed": self.low,
            "max_replicas_billed": self.high,
            "held_requests": self.held,
            "held_s_total": self.held_s,
            "ramps": [list(r) for r in self.ramps],
        }}  # fmt: skip

    def notes(self) -> list[str]:
        return [f"autoscaling ({self.policy.name}): a cold start takes {self.cold_start_s:.1f} s (weights at "
                f"{self.cfg.load_gbs:g} GB/s per GPU, then {self.cfg.warmup_s:g} s of warm-up); "
                f"cold starts: {self.cold_starts}"]


def join_figures(parts: list[dict]) -> dict:
    """The autoscalers' figures of independent groups (partitions) as one: counts and times added, ramps listed
    together, the policy and the cold start as each group has them."""
    first = parts[0]
    out = {}
    for k, v in first.items():
        if isinstance(v, list):
            out[k] = [x for part in parts for x in part[k]]
        elif k in ("cold_starts", "held_requests", "held_s_total", "min_replicas_billed", "max_replicas_billed",
                   "throttle_events", "throttled_replica_s"):  # (the last two: sim/thermal.py's, per device)
            out[k] = sum(part[k] for part in parts if part[k] is not None)
        else:
            out[k] = v
    return out


def forecast_rate(scenario: Scenario, t: float) -> float:
    """The workload's expected arrival rate at time t: its rate, shaped by rate_shape where it has one."""
    wl = scenario.workload
    if not wl.rate_shape or math.isinf(wl.rate):
        return wl.rate
    shape = [x / (sum(wl.rate_shape) / len(wl.rate_shape)) for x in wl.rate_shape]
    k = int((t % wl.rate_period_s) / (wl.rate_period_s / len(shape)))
    return wl.rate * shape[min(k, len(shape) - 1)]
