"""Simulation speed: 10,000 requests with Azure-conversation-like lengths, llama-3.1-8b on one H100.

Capacity is measured first (all requests at once); the timed run offers 80% of it as a
Poisson stream. Both the H100 and the H200 have measured profiles (used by default);
`--perf-model roofline` prices with the roofline instead. Prints wall
time and simulated requests per wall-second. Lengths are lognormal with the means and
log-spreads of the Azure LLM inference 2023 conversation trace (context mean 1155,
sigma 0.99; generated mean 211, sigma 0.86; clipped to its range).

    python benchmarks/bench_sim.py [--requests 10000] [--repeat 3] [--gpu h200] [--perf-model roofline]
"""

from __future__ import annotations

import argparse
import platform
import time

from servesim import LengthDist, Scenario, WorkloadConfig, simulate
from servesim.sim import replica

AZURE_CONV_INPUT = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)
AZURE_CONV_OUTPUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)


GPU = "h100-sxm"
PERF = "auto"


def scenario(n: int, rate: float, arrival: str = "poisson") -> Scenario:
    wl = WorkloadConfig(
        num_requests=n, rate=rate, arrival=arrival, input=AZURE_CONV_INPUT, output=AZURE_CONV_OUTPUT, seed=1
    )
    return Scenario(model="llama-3.1-8b", gpu=GPU, workload=wl, perf_model=PERF)


def main() -> None:
    global GPU, PERF
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gpu", default="h100-sxm")
    ap.add_argument("--perf-model", default="auto", help="auto (the GPU's profile) | profiled | roofline")
    args = ap.parse_args()
    GPU, PERF = args.gpu, args.perf_model

    cap = simulate(scenario(args.requests, float("inf"), "burst")).summary()["request_throughput"]
    rate = 0.8 * cap
    print(f"{GPU}: capacity {cap:.2f} req/s (all at once); offered load {rate:.2f} req/s")

    sim_walls, metric_walls = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = simulate(scenario(args.requests, rate))
        t1 = time.perf_counter()
        summary = result.summary()
        t2 = time.perf_counter()
        sim_walls.append(t1 - t0)
        metric_walls.append(t2 - t1)
    best = min(sim_walls)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"performance model: {result.perf_model}")
    print(
        f"simulated {summary['completed']} requests, {summary['iterations']} iterations, "
        f"{summary['duration_s']:.0f} s of serving; mean batch {summary['batch_size']['mean']:.1f}"
    )
    print(
        f"simulation wall time (best of {args.repeat}): {best:.3f} s "
        f"-> {args.requests / best:,.0f} simulated requests per wall-second"
    )
    print(
        f"metrics (summary, ITL percentiles) wall time: {min(metric_walls):.3f} s; "
        f"end to end {args.requests / (best + min(metric_walls)):,.0f} requests per wall-second"
    )

    # the same run with every decode iteration stepped through the event loop
    saved, replica.MAX_RUN = replica.MAX_RUN, 1
    t0 = time.perf_counter()
    stepped = simulate(scenario(args.requests, rate)).summary()
    slow = time.perf_counter() - t0
    replica.MAX_RUN = saved
    assert stepped["completed"] == summary["completed"]
    print(f"step by step (no decode fast-forward): {slow:.3f} s -> fast-forward is {slow / best:.1f}x faster")


if __name__ == "__main__":
    main()
