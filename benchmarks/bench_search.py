"""Deployment-search speed: 324 candidates for llama-3.1-70b, timed end to end on local cores.

GPUs H100, H200, A100; TP 2/4/8; 1-4 replicas; max_num_seqs 64/128/256; max_num_batched_tokens
2048/4096/8192; chat traffic (Azure-conversation lengths); SLO P90 TTFT <= 2 s and P90 TPOT
<= 50 ms; objective goodput per dollar. Candidates that cannot hold the model are pruned
without simulating. A fresh results store is used, so nothing is reused.

With `--reference-requests N` the same search runs again as a slow reference (N requests
per simulation, rate tolerance `--reference-rate-tol`), and the script reports how well the
fast search ranks: Kendall's tau of the reference's top 20 as the fast search scores
them, how many of the reference's top 20 (top 5) the fast top 20 (top 5) holds, and the
median relative difference of the capacity each found.

    python benchmarks/bench_search.py [--workers 2] [--num-requests 500] [--rate-tol 0.03]
                                      [--reference-requests 1200 --reference-rate-tol 0.02]
                                      [--trace ../shared/data/traces/AzureLLMInferenceTrace_conv.csv]

With `--trace` the lengths are drawn from a trace (rows in order, Poisson arrivals at each rate tried).
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


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b of two scorings of the same items (ties count for neither side)."""
    conc = disc = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = ((conc + disc + tx) * (conc + disc + ty)) ** 0.5
    return (conc - disc) / denom if denom else 1.0


def compare(fast: list[dict], ref: list[dict], objective: str = "goodput_per_dollar", top: int = 20) -> None:
    """How the fast search ranks the reference's best candidates."""
    fast_by = {r["label"]: r for r in fast}
    ref_rank = rank(ref, objective)[:top]
    fast_rank = rank(fast, objective)
    ref_scores = [r[objective] for r in ref_rank]
    fast_scores = [fast_by.get(r["label"], {}).get(objective, 0.0) for r in ref_rank]
    tau = kendall_tau(ref_scores, fast_scores)
    both = [r for r in rank(ref, objective) if r["label"] in fast_by and objective in fast_by[r["label"]]]
    tau_all = kendall_tau([r[objective] for r in both], [fast_by[r["label"]][objective] for r in both])
    held = len({r["label"] for r in ref_rank} & {r["label"] for r in fast_rank[:top]})
    held5 = len({r["label"] for r in ref_rank[:5]} & {r["label"] for r in fast_rank[:5]})
    caps = [
        abs(fast_by[r["label"]]["capacity"] - r["capacity"]) / r["capacity"]
        for r in rank(ref, objective)
        if r["label"] in fast_by and fast_by[r["label"]].get("capacity")
    ]
    caps.sort()
    print(f"ranking vs reference: Kendall tau of the reference top {top} = {tau:.3f}, of all {len(both)} = "
          f"{tau_all:.3f}; "
          f"fast top {top} holds {held}/{top} of them, fast top 5 holds {held5}/5; "
          f"best: fast {fast_rank[0]['label']}, reference {ref_rank[0]['label']}")  # fmt: skip
    if caps:
        print(f"capacity found, fast vs reference: median relative difference {100 * caps[len(caps) // 2]:.1f}%, "
              f"P90 {100 * caps[int(0.9 * (len(caps) - 1))]:.1f}% over {len(caps)} feasible candidates")  # fmt: skip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--num-requests", type=int, default=500)
    ap.add_argument("--rate-tol", type=float, default=0.03)
    ap.add_argument("--reference-requests", type=int, default=0, help="also run a slow reference search")
    ap.add_argument("--reference-rate-tol", type=float, default=0.02)
    ap.add_argument("--trace", help="draw prompt and output lengths from this trace instead (Poisson arrivals)")
    args = ap.parse_args()
    workload = WorkloadConfig(input=CHAT_IN, output=CHAT_OUT, seed=1)
    if args.trace:
        workload = WorkloadConfig(trace=args.trace, arrival="poisson", seed=1)
    # one performance model for every GPU, so the ranking compares like with like
    base = Scenario(
        model="llama-3.1-70b",
        engine=EngineConfig(max_model_len=16384),
        perf_model="roofline",
        workload=workload,
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
    if args.reference_requests:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            ref = run_search(base, space, targets, f"{tmp}/ref.sqlite", args.reference_requests,
                             args.reference_rate_tol, args.workers)  # fmt: skip
            print(f"reference search ({args.reference_requests} requests per simulation, rate tolerance "
                  f"{args.reference_rate_tol}): {time.perf_counter() - t0:.1f} s")  # fmt: skip
        compare(results, ref["results"])


if __name__ == "__main__":
    main()
