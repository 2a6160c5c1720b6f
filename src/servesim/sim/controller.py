"""The controller protocol: something that looks at the running deployment every `interval_s` and acts.

Live migration (`migration.py`), POLCA power capping (`power_control.py`) and semi-PD's
SM split (`semi_pd.py`) are controllers. The cluster schedules each one's first look at
`first_check(t0)`, then calls `step(t, cluster)` every `interval_s` while requests remain;
after the run, `report(end)` gives the figures it adds to the summary (by name) and
`notes()` what it did, in words.
"""

from __future__ import annotations


class Controller:
    interval_s: float = 1.0

    def first_check(self, t0: float) -> float:
        """When to look first, given the first arrival."""
        return t0

    def step(self, t: float, cluster) -> None:
        """Look at the cluster (`sim.cluster.Cluster`, every replica brought up to t) and act."""
        raise NotImplementedError

    def report(self, end: float) -> dict:
        """Figures for the summary, by name (none by default)."""
        return {}

    def on_held(self, t: float, cluster) -> None:
        """An arrival found no replica serving (an autoscaled fleet at zero); most controllers ignore it."""

    def notes(self) -> list[str]:
        """What it did, in words, for the run's notes (none by default)."""
        return []
