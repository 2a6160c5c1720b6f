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

from pydantic import BaseModel, ConfigDict, Field

from servesim.sim.autoscale import FleetView, Policy, register


class ReactiveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    target_load: float = Field(0.6, gt=0, le=1, description="the serving replicas' mean load to keep")
    queue_per_replica: float = Field(4.0, gt=0, description="waiting requests per serving replica that add one")
    scale_down_cooldown_s: float = Field(120.0, ge=0, description="no change this long before a scale-down")
    scale_up_cooldown_s: float = Field(30.0, ge=0, description="no change this long before a scale-up")


@register
class Reactive(Policy):
    name = "reactive"
    Options = ReactiveOptions

    def __init__(self, cfg, scenario, cold_start_s):
        super().__init__(cfg, scenario, cold_start_s)
        self.last_change = -math.inf
        self.last = None

    def desired(self, view: FleetView) -> int:
        o, have = self.opts, view.serving + view.starting
        if self.last is not None and have != self.last:
            self.last_change = view.t
        want = math.ceil(view.serving * view.load / o.target_load) if view.serving else (1 if view.outstanding else 0)
        if view.serving and view.waiting > o.queue_per_replica * view.serving:
            want = max(want, view.serving + 1)
        since = view.t - self.last_change
        if want > have and since < o.scale_up_cooldown_s:
            want = have  # the last change has not shown its effect yet
        elif want < have:  # down one at a time, after the cooldown, with nothing waiting
            want = have - 1 if since >= o.scale_down_cooldown_s and not view.waiting else have
        self.last = want
        return want
