"""Capacity: the highest request rate at which a deployment still meets its latency SLOs.

The rate is found by bisection. The first bracket comes from a hint (such as the
capacity of the same deployment with one replica, scaled by the replica count) or from
the throughput of one run with every request arriving at once; the upper end is raised
until the SLOs fail there, so the bracket always holds the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servesim.api import simulate
from servesim.errors import ServesimError

METRICS = ("ttft", "tpot", "itl", "e2el")
GROWTH = 1.25  # overloaded: requests in flight at the last arrival exceed this x those halfway (+ SLACK)
SLACK = 8
FLOOR = 1e-3  # bisection gives up on rates under this share of its first upper bound (an SLO no rate meets)


def sustained(df) -> bool:
    """Whether the load is carried: in steady state the requests in flight stay flat (Little's law),
    under overload they keep growing. Compared as the mean over the last tenth of the arrivals against the mean
    over the tenth around their middle (single instants swing with Poisson arrivals: at 5 req/s on an
    idle-ish replica, 3 in flight at one instant and 12 at another)."""
    end = float(df.arrival_s.max())
    if end <= 0:
        return True
    arrivals = np.sort(np.asarray(df.arrival_s, dtype=float))
    finishes = np.sort(np.nan_to_num(np.asarray(df.finish_s, dtype=float), nan=np.inf))

    def in_flight(lo: float, hi: float) -> float:
        t = np.linspace(lo * end, hi * end, 64)
        return float(np.mean(np.searchsorted(arrivals, t, "right") - np.searchsorted(finishes, t, "right")))

    return in_flight(0.9, 1.0) <= GROWTH * in_flight(0.45, 0.55) + SLACK


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


def acceptable(result, targets: list[SLOTarget], burst: bool = False) -> bool:
    """Every SLO met, no request refused, and (a short run can meet latency targets while queues
    still grow) the load carried."""
    s = result.summary()
    carried = burst or sustained(result.records)
    return all(t.met(s) for t in targets) and s["failed"] == 0 and carried


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
                ms = math.nan
            if not 0 < ms < math.inf:
                raise ServesimError(f"SLO '{part}': '{val}' is not a positive number of milliseconds") from None
            out.append(SLOTarget(metric, stat, ms))
    if not out:
        raise ServesimError("give at least one SLO, e.g. --slo 'p90_ttft:2000 p90_tpot:50'")
    return out


def find_capacity(scenario_at, targets: list[SLOTarget], rel_tol: float = 0.05, hint: float | None = None) -> dict:
    """Bisect the rate; `scenario_at(rate)` builds the scenario. Returns capacity and the runs made."""
    runs = []

    def run(rate: float) -> dict:
        result = simulate(scenario_at(rate))
        s = result.summary()
        ok = acceptable(result, targets, burst=math.isinf(rate))
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
                lo, hi, best = 1.1 * hint, 1.5 * hint, high
    else:  # start from the throughput of everything arriving at once
        lo, hi = 0.0, run(float("inf"))["summary"]["request_throughput"]
    for _ in range(8):  # raise the upper end until the SLOs fail there
        top = run(hi)
        if not top["ok"]:
            break
        lo, hi, best = hi, hi * 1.5, top
    floor = FLOOR * hi  # below this share of the first bracket, the SLOs are taken to fail at any rate (capacity 0)
    while hi > 0 and (hi - lo) / hi > rel_tol and hi > floor:
        mid = (lo + hi) / 2
        r = run(mid)
        if r["ok"]:
            lo, best = mid, r
        else:
            hi = mid
    return {"capacity": lo, "summary": best["summary"] if best else None, "runs": runs}
