"""The cheapest mix of GPU types that serves a workload's rate under its SLOs (`servesim search --mix`).

Griggs et al., "Mélange: Cost Efficient LLM Serving by Exploiting GPU Heterogeneity" (arXiv
2404.14527): which GPU serves a request cheapest depends on its size, so a fleet that mixes
types can cost less than the best single type. As there, in three steps:

1. Sizes. The workload's requests are split into buckets by prompt and output length.
2. Capacity. For each GPU option (a GPU type at a TP size) and bucket, the highest rate of
   that bucket's requests one replica serves under the SLOs (`capacity.find_capacity`,
   simulated with requests drawn from the bucket's own).
3. Mix. An integer program picks replica counts n_g and each bucket's split x_bg over the
   options: minimise the fleet's price per hour subject to every bucket's rate being
   served and each option's load, sum over b of x_bg / capacity_gb, fitting in n_g
   replicas (scipy's `milp`, HiGHS).

The chosen fleet is then simulated end to end on the whole workload, behind the
`size_aware` router; while the SLOs fail there, the program is solved again with every
capacity derated 10% more. The best single-type fleet is found and checked the same way;
the answer is the cheapest verified fleet (a single type if no mix beats it), and the
saving is its price against the best single type's.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servesim.config import Scenario, ServicePool, WorkloadConfig
from servesim.errors import ServesimError
from servesim.search.capacity import PERCENTILES, SLOTarget, acceptable, find_capacity
from servesim.sim.deployment import infeasible

INPUT_EDGES = (512, 2048, 8192)  # prompt-length bucket edges (tokens)
OUTPUT_EDGES = (128, 512)  # output-length bucket edges
MIN_SHARE = 0.01  # buckets with fewer of the requests join their neighbour
MAX_RATE = 1e5  # requests per second a mixed fleet is sized for at most (a few thousand replicas)
GROW = 6  # re-solves at most while verifying a fleet
DERATE = 0.1  # capacities lowered by this much more at each re-solve


@dataclass
class Bucket:
    name: str
    inputs: np.ndarray
    outputs: np.ndarray
    share: float  # of the workload's requests


@dataclass(frozen=True)
class Option:
    gpu: str
    tp: int

    @property
    def label(self) -> str:
        return f"{self.gpu}" + (f":tp{self.tp}" if self.tp > 1 else "")


def size_buckets(ins: np.ndarray, outs: np.ndarray) -> list[Bucket]:
    """The requests split by prompt and output length (edges INPUT_EDGES, OUTPUT_EDGES); a bucket holding under
    MIN_SHARE of them is merged into the one before it (or after, for the first)."""
    i_bin = np.searchsorted(INPUT_EDGES, ins, side="left")
    o_bin = np.searchsorted(OUTPUT_EDGES, outs, side="left")
    cells = []
    for i in range(len(INPUT_EDGES) + 1):
        for o in range(len(OUTPUT_EDGES) + 1):
            mask = (i_bin == i) & (o_bin == o)
            if mask.any():
                cells.append([_span(i, INPUT_EDGES) + " in, " + _span(o, OUTPUT_EDGES) + " out", mask])
    merged: list[list] = []
    for name, mask in cells:
        if merged and mask.mean() < MIN_SHARE:
            merged[-1][1] = merged[-1][1] | mask
        elif merged and merged[-1][1].mean() < MIN_SHARE:
            merged[-1] = [name, merged[-1][1] | mask]
        else:
            merged.append([name, mask])
    return [Bucket(name, ins[m], outs[m], float(m.mean())) for name, m in merged]


def _span(k: int, edges: tuple[int, ...]) -> str:
    lo = 1 if k == 0 else edges[k - 1] + 1
    return f"{lo}-{edges[k]}" if k < len(edges) else f"{lo}+"


def parse_options(gpus: list[str], tps: list[int]) -> list[Option]:
    return [Option(g, tp) for g in gpus for tp in tps]


def one_replica(base: Scenario, opt: Option, workload: WorkloadConfig | None = None) -> Scenario:
    """The base scenario served by one replica of `opt` (and `workload`, where given)."""
    update = {"gpu": opt.gpu, "engine": base.engine.model_copy(update={"tp": opt.tp}), "replicas": 1, "pools": None}
    return base.model_copy(update=update | ({"workload": workload} if workload else {}))


def fleet_pools(base: Scenario, counts: dict[Option, int]) -> list[ServicePool]:
    """A fleet of these counts as the pools of a scenario, each on the base engine at its option's TP."""
    return [ServicePool(gpu=o.gpu, replicas=n, name=o.label, engine=base.engine.model_copy(update={"tp": o.tp}))
            for o, n in counts.items()]  # fmt: skip


def bucket_capacity(base: Scenario, opt: Option, bucket: Bucket, targets: list[SLOTarget], requests: int,
                    rel_tol: float, folder: Path) -> float:  # fmt: skip
    """Requests/s of `bucket` one replica of `opt` (one the base workload fits) serves under the SLOs."""
    trace = folder / f"{bucket.name.replace(' ', '_').replace(',', '')}.csv"
    if not trace.exists():  # the bucket's own lengths, as an Azure-format trace the workload samples from
        pairs = zip(bucket.inputs, bucket.outputs, strict=True)
        rows = [f"2023-11-16 18:00:{k % 60:02d}.000,{i},{o}" for k, (i, o) in enumerate(pairs)]
        trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")

    def at(rate: float) -> Scenario:
        wl = WorkloadConfig(num_requests=requests, rate=rate, trace=trace, trace_format="azure",
                            trace_sample="random", seed=base.workload.seed)  # fmt: skip
        return one_replica(base, opt, wl)

    return float(find_capacity(at, targets, rel_tol)["capacity"])


def solve(rates: list[float], caps: dict[Option, list[float]], price: dict[Option, float]) -> dict[Option, int] | None:
    """Replica counts of the cheapest fleet that carries every bucket's rate (None if none can)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    opts = [o for o in caps if any(c > 0 for c in caps[o])]
    B, G = len(rates), len(opts)
    if not G:
        return None
    # variables: n_g (G), then x_bg (B x G, row-major by bucket)
    nv = G + B * G
    cost = np.zeros(nv)
    cost[:G] = [price[o] for o in opts]
    rows, lo, hi = [], [], []
    for b in range(B):  # every bucket's rate is served
        row = np.zeros(nv)
        row[G + b * G : G + (b + 1) * G] = 1.0
        rows.append(row), lo.append(rates[b]), hi.append(rates[b])
    for g, o in enumerate(opts):  # load of option g within its replicas
        row = np.zeros(nv)
        row[g] = -1.0
        for b in range(B):
            row[G + b * G + g] = 1.0 / caps[o][b] if caps[o][b] > 0 else 0.0
        rows.append(row), lo.append(-np.inf), hi.append(0.0)
    upper = np.full(nv, np.inf)
    for b in range(B):  # a bucket an option cannot serve gets none of it
        for g, o in enumerate(opts):
            if caps[o][b] <= 0:
                upper[G + b * G + g] = 0.0
    integrality = np.r_[np.ones(G), np.zeros(B * G)]
    res = milp(cost, constraints=LinearConstraint(np.array(rows), lo, hi), integrality=integrality,
               bounds=Bounds(np.zeros(nv), upper))  # fmt: skip
    if not res.success:
        return None
    return {o: int(round(res.x[g])) for g, o in enumerate(opts) if round(res.x[g]) > 0}


Verified = tuple[dict[Option, int], dict, float]  # replica counts, the passing run's summary, the derating it took


def verify(base: Scenario, rates: list[float], caps: dict[Option, list[float]], price: dict[Option, float],
           rate: float, targets: list[SLOTarget], requests: int) -> Verified | None:  # fmt: skip
    """The cheapest fleet of these options on paper, simulated on the whole workload at `rate`; while the SLOs
    fail, solved again with every capacity derated by DERATE more (at most GROW times). Returns the counts, the
    passing run's summary and the derating it needed, or None."""
    from servesim.api import simulate

    for step in range(GROW + 1):
        derate = (1 - DERATE) ** step
        counts = solve(rates, {o: [c * derate for c in cs] for o, cs in caps.items()}, price)
        if counts is None:
            return None
        wl = base.workload.model_copy(update={"rate": rate, "num_requests": requests, "arrival": "poisson"})
        sc = base.model_copy(update={"pools": fleet_pools(base, counts), "replicas": 1, "workload": wl,
                                     "router": base.router or "size_aware"})  # fmt: skip
        result = simulate(Scenario.model_validate(sc.model_dump(exclude_none=True)))
        if acceptable(result, targets):
            return counts, result.summary(), derate
    return None


def fleet_label(counts: dict[Option, int]) -> str:
    return " + ".join(f"{n} x {o.label}" for o, n in counts.items())


def fleet_price(counts: dict[Option, int], price: dict[Option, float]) -> float:
    return sum(n * price[o] for o, n in counts.items())


def search_mix(base: Scenario, options: list[Option], rate: float, targets: list[SLOTarget], requests: int = 300,
               rel_tol: float = 0.05, verify_requests: int = 2000, log=lambda msg: None) -> dict:  # fmt: skip
    """The cheapest fleet mixing `options` that serves `rate` requests/s of the base scenario's workload under
    `targets`, verified by simulation, against the cheapest verified single-option fleet."""
    from servesim.hardware import get_gpu
    from servesim.sim.deployment import gpu_price
    from servesim.workload.generate import lengths

    if not 0 < rate <= MAX_RATE:
        raise ServesimError(f"--rate for --mix must be a positive number of requests per second, at most "
                            f"{MAX_RATE:,.0f}, not {rate:g}")  # fmt: skip
    ins, outs = lengths(base.workload, max(2000, verify_requests))
    buckets = size_buckets(ins, outs)
    rates = [rate * b.share for b in buckets]
    price = {o: gpu_price(base, get_gpu(o.gpu, base.gpu_file)) * o.tp for o in options}
    caps: dict[Option, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for o in options:
            why = infeasible(one_replica(base, o))
            if why:
                log(f"{o.label}: left out ({why})")
                continue
            caps[o] = [bucket_capacity(base, o, b, targets, requests, rel_tol, Path(tmp)) for b in buckets]
            log(f"{o.label}: capacity per bucket " + ", ".join(f"{c:.2f}" for c in caps[o]) + " req/s")
    mix = verify(base, rates, caps, price, rate, targets, verify_requests)
    singles = []
    for o in caps:  # each option alone: the fleets a planner would otherwise buy
        alone = verify(base, rates, {o: caps[o]}, price, rate, targets, verify_requests)
        if alone is not None:
            singles.append(alone)
    if mix is None and not singles:
        raise ServesimError("no fleet of these GPUs serves the workload under the SLOs, on paper or in simulation; "
                            "loosen --slo, lower --rate or add larger GPUs or TP sizes")  # fmt: skip
    best = min(singles, key=lambda v: fleet_price(v[0], price), default=None)
    if mix is None or (best is not None and fleet_price(best[0], price) < fleet_price(mix[0], price)):
        mix = best  # a single type is a mix too: the cheapest verified fleet wins
    mix, mix_summary, mix_derate = mix
    log(f"cheapest verified fleet: {fleet_label(mix)}")
    best_single = None if best is None else {
        "fleet": fleet_label(best[0]), "usd_per_hour": fleet_price(best[0], price), "capacity_derated_to": best[2],
        "summary": _slo_view(best[1], targets)}  # fmt: skip
    usd = fleet_price(mix, price)
    out = {
        "rate": rate,
        "slo": [str(t) for t in targets],
        "buckets": [{"name": b.name, "share": b.share, "rate": r} for b, r in zip(buckets, rates, strict=True)],
        "capacity": {o.label: c for o, c in caps.items()},
        "price_per_replica_hour": {o.label: price[o] for o in caps},
        "mix": {"fleet": fleet_label(mix), "counts": {o.label: n for o, n in mix.items()},
                "pools": [p.model_dump(exclude_none=True) for p in fleet_pools(base, mix)], "usd_per_hour": usd,
                "capacity_derated_to": mix_derate, "summary": _slo_view(mix_summary, targets)},
        "best_single": best_single,
    }
    if best_single:
        out["saving"] = 1 - usd / best_single["usd_per_hour"]
    return out


def _slo_view(s: dict, targets: list[SLOTarget]) -> dict:
    view = {str(t).split(":")[0] + "_ms": s[f"{t.metric}_ms"][PERCENTILES[t.stat]] for t in targets}
    view.update(completed=s["completed"], output_throughput=s["output_throughput"], usd=s["cost"]["total_usd"])
    return view
