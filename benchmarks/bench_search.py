"""Deployment-search speed: 324 candidates for llama-3.1-70b, timed end to end on local cores.

GPUs H100, H200, A100; TP 2/4/8; 1-4 replicas; max_num_seqs 64/128/256; max_num_batched_tokens
2048/4096/8192; chat traffic (Azure-conversation lengths); SLO P90 TTFT <= 2 s and P90 TPOT
<= 50 ms; objective goodput per dollar. Candidates that cannot hold the model are pruned
without simulating. A fresh results store is used, so nothing is reused.

    python benchmarks/bench_search.py [--workers 2] [--num-requests 300]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from servesim import EngineConfig, LengthDist, Scenario, WorkloadConfig
from servesim.search import SearchSpace, parse_targets, run_search
from servesim.search.pareto import rank

CHAT_IN = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)
CHAT_OUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--num-requests", type=int, default=300)
    ap.add_argument("--rate-tol", type=float, default=0.05)
    args = ap.parse_args()
    # one performance model for every GPU, so the ranking compares like with like
    base = Scenario(
        model="llama-3.1-70b",
        engine=EngineConfig(max_model_len=16384),
        perf_model="roofline",
        workload=WorkloadConfig(input=CHAT_IN, output=CHAT_OUT, seed=1),
        router="least_tokens",
    )
    space = SearchSpace(
        gpus=["h100-sxm", "h200", "a100-80gb-sxm"],
        tp=[2, 4, 8],
        replicas=[1, 2, 3, 4],
        max_num_seqs=[64, 128, 256],
        max_num_batched_tokens=[2048, 4096, 8192],
    )
    targets = parse_targets(["p90_ttft:2000 p90_tpot:50"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = run_search(base, space, targets, f"{tmp}/store.sqlite", args.num_requests, args.rate_tol, args.workers)
        wall = time.perf_counter() - t0
    results = out["results"]
    pruned = sum(1 for r in results if not r["feasible"])
    sims = sum(r.get("sims", 0) for r in results)
    ranked = rank(results, "goodput_per_dollar")
    print(
        f"{out['candidates']} candidates ({pruned} pruned: model does not fit), {sims} simulations, "
        f"{args.workers} workers, {args.num_requests} requests per simulation"
    )
    print(f"search wall time: {wall:.1f} s  ({out['candidates'] / wall:.1f} candidates/s)")
    for r in ranked[:5]:
        print(
            f"  {r['label']}: {r['capacity']:.2f} req/s, {r['goodput_per_dollar']:.0f} requests/$, "
            f"P90 TTFT {r['ttft_p90_ms']:.0f} ms, P90 TPOT {r['tpot_p90_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
