"""Capacity: the highest request rate at which a deployment still meets its latency SLOs.

The rate is found by bisection. Its upper bound comes from one run with every request
arriving at once (no rate can beat that throughput), or from a hint, such as the
capacity of the same deployment with one replica scaled by the replica count.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.api import simulate
from servesim.errors import ServesimError

METRICS = ("ttft", "tpot", "itl", "e2el")
PERCENTILES = {"p50": "median", "p90": "p90", "p99": "p99", "mean": "mean"}


@dataclass(frozen=True)
class SLOTarget:
    metric: str  # ttft | tpot | itl | e2el
    stat: str  # p50 | p90 | p99 | mean
    ms: float

    def met(self, summary: dict) -> bool:
        value = summary[f"{self.metric}_ms"][PERCENTILES[self.stat]]
        return value is not None and value <= self.ms

    def __str__(self) -> str:
        return f"{self.stat}_{self.metric}:{self.ms:g}"


def parse_targets(items: list[str]) -> list[SLOTarget]:
    """Parse 'p90_ttft:2000 p99_tpot:50' (milliseconds)."""
    out = []
    for item in items:
        for part in item.replace(",", " ").split():
            name, sep, val = part.partition(":")
            stat, _, metric = name.lower().partition("_")
            if not sep or stat not in PERCENTILES or metric not in METRICS:
                raise ServesimError(
                    f"SLO '{part}' must look like p90_ttft:2000 (p50|p90|p99|mean, ttft|tpot|itl|e2el, ms)"
                )
            try:
                ms = float(val.removesuffix("ms"))
            except ValueError:
                raise ServesimError(f"SLO '{part}': '{val}' is not a number of milliseconds") from None
            out.append(SLOTarget(metric, stat, ms))
    if not out:
        raise ServesimError("give at least one SLO, e.g. --slo 'p90_ttft:2000 p90_tpot:50'")
    return out


def find_capacity(scenario_at, targets: list[SLOTarget], rel_tol: float = 0.05, hint: float | None = None) -> dict:
    """Bisect the rate; `scenario_at(rate)` builds the scenario. Returns capacity and the runs made."""
    runs = []

    def run(rate: float) -> dict:
        s = simulate(scenario_at(rate)).summary()
        ok = all(t.met(s) for t in targets) and s["failed"] == 0
        record = {"rate": rate, "ok": ok, "throughput": s["request_throughput"]}
        record.update({str(t).split(":")[0] + "_ms": s[f"{t.metric}_ms"][PERCENTILES[t.stat]] for t in targets})
        runs.append(record)
        return {"ok": ok, "summary": s}

    best = None
    if hint:  # bracket around the hint first: two runs usually settle the bounds
        low = run(0.85 * hint)
        if not low["ok"]:
            lo, hi = 0.0, 0.85 * hint
        else:
            high = run(1.1 * hint)
            if not high["ok"]:
                lo, hi, best = 0.85 * hint, 1.1 * hint, low
            else:
                ceiling = run(float("inf"))["summary"]["request_throughput"]
                lo, hi, best = 1.1 * hint, max(ceiling, 1.5 * hint), high
    else:  # nothing sustains more than the throughput of everything arriving at once
        lo, hi = 0.0, run(float("inf"))["summary"]["request_throughput"]
    while hi > 0 and (hi - lo) / hi > rel_tol:
        mid = (lo + hi) / 2
        r = run(mid)
        if r["ok"]:
            lo, best = mid, r
        else:
            hi = mid
    return {"capacity": lo, "summary": best["summary"] if best else None, "runs": runs}
