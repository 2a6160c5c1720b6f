"""Reactive scaling on utilisation and queue, with cooldowns (the Kubernetes HPA's rule).

The replica count that would bring the serving replicas' mean busy share to `target_busy`
(default 0.7): ceil(serving x busy / target), one more while requests wait past
`queue_per_replica` (4) per serving replica. It scales up at once and down by one replica
at a time, only after `scale_down_cooldown_s` (120 s) without a change, and never while
requests wait.
"""

import math

from servesim.sim.autoscale import FleetView, Policy, register


@register
class Reactive(Policy):
    name = "reactive"

    def __init__(self, cfg, scenario, cold_start_s):
        super().__init__(cfg, scenario, cold_start_s)
        self.target = self.option("target_busy", 0.7)
        self.queue = self.option("queue_per_replica", 4.0)
        self.cooldown = self.option("scale_down_cooldown_s", 120.0)
        self.last_change = -math.inf
        self.last = None

    def desired(self, view: FleetView) -> int:
        have = view.serving + view.starting
        if self.last is not None and have != self.last:
            self.last_change = view.t
        want = math.ceil(view.serving * view.busy / self.target) if view.serving else (1 if view.outstanding else 0)
        if view.serving and view.waiting > self.queue * view.serving:
            want = max(want, view.serving + 1)
        if want < have:  # down one at a time, after the cooldown, with nothing waiting
            want = have - 1 if view.t - self.last_change >= self.cooldown and not view.waiting else have
        self.last = want
        return want
