"""Predictive scaling from the workload's known rate shape: provision for the rate one cold start ahead.

The count is ceil(rate(t + lead) / `replica_rps` x `headroom`), where rate is the
workload's rate shaped by its `rate_shape` (a forecast that is exact about the shape, as a
day's traffic pattern learned from history would be), `replica_rps` the requests per second
one replica serves within the SLO (required: e.g. `servesim search`'s capacity), `lead`
the cold start plus one check interval, and `headroom` 1.1.
"""

import math

from pydantic import BaseModel, ConfigDict, Field

from servesim.errors import ServesimError
from servesim.sim.autoscale import FleetView, Policy, forecast_rate, register


class PredictiveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    replica_rps: float = Field(gt=0, description="requests per second one replica serves within the SLO")
    headroom: float = Field(1.1, ge=1, le=10, description="replicas provisioned over the forecast's need")


@register
class Predictive(Policy):
    name = "predictive"
    Options = PredictiveOptions

    def __init__(self, cfg, scenario, cold_start_s):
        if "replica_rps" not in cfg.options:
            raise ServesimError("the predictive autoscaler needs autoscale.options.replica_rps, the requests per "
                                "second one replica serves within the SLO (servesim search finds it)")  # fmt: skip
        super().__init__(cfg, scenario, cold_start_s)
        self.scenario = scenario

    def desired(self, view: FleetView) -> int:
        ahead = forecast_rate(self.scenario, view.t + self.cold_start_s + self.cfg.interval_s)
        return math.ceil(ahead * self.opts.headroom / self.opts.replica_rps)
