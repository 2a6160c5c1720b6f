"""Serverless: no replica while there is no traffic, a cold start when it comes back.

As `reactive` while requests are in the fleet; once none has been for `idle_s` (default
60 s), every replica stops. An arrival with no replica serving waits at the router and
starts one at once (`Autoscaler.on_held`), paying the cold start in its TTFT. Use it with
min_replicas = 0.
"""

from pydantic import Field

from servesim.sim.autoscale import FleetView, register
from servesim.sim.autoscalers.reactive import Reactive, ReactiveOptions


class ScaleToZeroOptions(ReactiveOptions):
    idle_s: float = Field(60.0, ge=0, description="seconds without traffic before every replica stops")


@register
class ScaleToZero(Reactive):
    name = "scale_to_zero"
    Options = ScaleToZeroOptions

    def __init__(self, cfg, scenario, cold_start_s):
        super().__init__(cfg, scenario, cold_start_s)
        self.idle_since = None

    def desired(self, view: FleetView) -> int:
        if view.outstanding:
            self.idle_since = None
            return super().desired(view)
        self.idle_since = view.t if self.idle_since is None else self.idle_since
        return 0 if view.t - self.idle_since >= self.opts.idle_s else view.serving + view.starting
