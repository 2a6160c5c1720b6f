"""Llumnix (Sun et al., "Llumnix: Dynamic Scheduling for Large Language Model Serving", OSDI 2024,
arXiv 2406.03243).

Claim (abstract): rescheduling requests across model instances at runtime by live
migration of their KV cache, for load balancing and de-fragmentation, "improves tail
latencies by an order of magnitude" over state-of-the-art serving systems.

Here (docs/clusters.md study (c)): four Llama-3.1-8B replicas on H100s (profiled) with a
deliberately small KV cache (`gpu_memory_utilization` 0.27), bursty arrivals (gamma, shape
0.2) at 14 req/s, heavy-tailed lengths (lognormal, prompts mean 1,500, answers mean 400).
Requests are dispatched round robin or to the replica with the least KV load
(`least_tokens`: KV tokens held plus prompt tokens queued, close to Llumnix's own
dispatching and to its INFaaS++ baseline), each without and with live migration
(`sim/migration.py`: every 0.1 s the replicas with the highest and lowest KV load are
compared and, past a gap of 20% of the cache, the shortest decoding request moves, paused
only for its last block), and once with stop-and-copy migration (paused for the whole
copy). Headline: P99 TTFT and E2EL, preemptions.

    python experiments/llumnix.py [--requests 3000] [--rate 14]
"""

from __future__ import annotations

import argparse
import sys
import time

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, MigrationConfig, Scenario, WorkloadConfig

CHECK = ["--requests", "1000"]  # the small run CI checks (experiments/record.py)

# label: (router, migration mode or None)
RUNS = {
    "round robin": ("round_robin", None),
    "round robin + live migration": ("round_robin", "live"),
    "round robin + stop-and-copy migration": ("round_robin", "stop"),
    "least kv load": ("least_tokens", None),
    "least kv load + live migration": ("least_tokens", "live"),
}


def scenario(requests: int, rate: float, router: str, mode: str | None) -> Scenario:
    wl = WorkloadConfig(num_requests=requests, rate=rate, arrival="gamma", burstiness=0.2, seed=3,
                        input=LengthDist(mean=1500, sigma=1.2, max=16000),
                        output=LengthDist(mean=400, sigma=1.2, max=4000))  # fmt: skip
    migration = MigrationConfig(enabled=mode is not None, mode=mode or "live")
    engine = EngineConfig(gpu_memory_utilization=0.27, max_model_len=20000)
    return Scenario(model="llama-3.1-8b", gpu="h100-sxm", workload=wl, replicas=4, router=router, engine=engine,
                    migration=migration)  # fmt: skip


def run(requests: int, rate: float) -> dict[str, dict]:
    return {label: simulate(scenario(requests, rate, *how)).summary() for label, how in RUNS.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=14.0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    rows = run(a.requests, a.rate)
    print(f"llama-3.1-8b, 4 h100-sxm replicas, gpu_memory_utilization 0.27, {a.requests} requests at {a.rate:g} "
          "req/s, gamma arrivals (shape 0.2), prompts mean 1500 tokens, answers mean 400")  # fmt: skip
    print("dispatch and migration | preemptions | migrations | P99 TTFT ms | mean TTFT ms | P99 TPOT ms | "
          "P99 E2EL ms | mean E2EL ms | KV use per replica")  # fmt: skip
    for label, s in rows.items():
        kv = ", ".join(f"{r['kv_cache']['mean_usage']:.2f}" for r in s["replicas"])
        print(f"{label} | {s['preemptions']} | {s['migrations']} | {s['ttft_ms']['p99']:.0f} | "
              f"{s['ttft_ms']['mean']:.0f} | {s['tpot_ms']['p99']:.1f} | {s['e2el_ms']['p99']:.0f} | "
              f"{s['e2el_ms']['mean']:.0f} | {kv}")  # fmt: skip
    for base in ("round robin", "least kv load"):
        off, on = rows[base], rows[f"{base} + live migration"]
        print(f"{base}, live migration on against off: P99 TTFT {off['ttft_ms']['p99'] / on['ttft_ms']['p99']:.1f}x "
              f"lower, P99 E2EL {off['e2el_ms']['p99'] / on['e2el_ms']['p99']:.1f}x lower, P99 TPOT "
              f"{off['tpot_ms']['p99'] / on['tpot_ms']['p99']:.2f}x lower, preemptions "
              f"{off['preemptions'] / max(on['preemptions'], 1):.1f}x fewer")  # fmt: skip
    print(f"wall {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
