"""Reactive scaling on load and queue, with cooldowns (the Kubernetes HPA's rule).

The replica count that would bring the serving replicas' mean load (the larger of KV cache
held or wanted and batch slots used; a busy-time share would read 100% with one request
running) to `target_load` (default 0.6): ceil(serving x load / target), one more while
requests wait past
`queue_per_replica` (4) per serving replica. It scales up at most once per
`scale_up_cooldown_s` (30 s) and down by one replica at a time, only after
`scale_down_cooldown_s` (120 s) without a change, and never while requests wait.
"""

import math

from servesim.sim.autoscale import FleetView, Policy, register


@register
class Reactive(Policy):
    name = "reactive"

    def __init__(self, cfg, scenario, cold_start_s):
        super().__init__(cfg, scenario, cold_start_s)
        self.target = self.option("target_load", 0.6)
        self.queue = self.option("queue_per_replica", 4.0)
        self.cooldown = self.option("scale_down_cooldown_s", 120.0)
        self.up_cooldown = self.option("scale_up_cooldown_s", 30.0)
        self.last_change = -math.inf
        self.last = None

    def desired(self, view: FleetView) -> int:
        have = view.serving + view.starting
        if self.last is not None and have != self.last:
            self.last_change = view.t
        want = math.ceil(view.serving * view.load / self.target) if view.serving else (1 if view.outstanding else 0)
        if view.serving and view.waiting > self.queue * view.serving:
            want = max(want, view.serving + 1)
        if want > have and view.t - self.last_change < self.up_cooldown:
            want = have  # the last change has not shown its effect yet
        elif want < have:  # down one at a time, after the cooldown, with nothing waiting
            want = have - 1 if view.t - self.last_change >= self.cooldown and not view.waiting else have
        self.last = want
        return want
