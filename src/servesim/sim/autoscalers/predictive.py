"""Predictive scaling from the workload's known rate shape: provision for the rate one cold start ahead.

The count is ceil(rate(t + lead) / `replica_rps` x `headroom`), where rate is the
workload's rate shaped by its `rate_shape` (a forecast that is exact about the shape, as a
day's traffic pattern learned from history would be), `replica_rps` the requests per second
one replica serves within the SLO (required: e.g. `servesim search`'s capacity), `lead`
the cold start plus one check interval, and `headroom` 1.1.
"""

import math

from servesim.errors import ServesimError
from servesim.sim.autoscale import FleetView, Policy, forecast_rate, register


@register
class Predictive(Policy):
    name = "predictive"

    def __init__(self, cfg, scenario, cold_start_s):
        super().__init__(cfg, scenario, cold_start_s)
        self.scenario = scenario
        self.rps = self.option("replica_rps", None)
        if self.rps is None or float(self.rps) <= 0:
            raise ServesimError("the predictive autoscaler needs autoscale.options.replica_rps, the requests per "
                                "second one replica serves within the SLO (servesim search finds it)")  # fmt: skip
        self.rps = float(self.rps)
        self.headroom = self.option("headroom", 1.1)

    def desired(self, view: FleetView) -> int:
        ahead = forecast_rate(self.scenario, view.t + self.cold_start_s + self.cfg.interval_s)
        return math.ceil(ahead * self.headroom / self.rps)
