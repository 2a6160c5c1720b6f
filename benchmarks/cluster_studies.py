"""Three cluster studies produced by servesim (docs/clusters.md records their output).

    python benchmarks/cluster_studies.py [--requests N]

(a) Llama-3.1-70B on 8 H100s: TP8 x1 vs TP4 x2 vs TP2 x4 replicas, chat traffic, over rates.
(b) Co-located vs disaggregated prefill/decode at equal GPU count (4 H100s, Llama-3.1-8B) for
    long prompts with Azure code-trace lengths: goodput under a TTFT and TPOT SLO.
(c) Four replicas under bursty load with a tight KV cache, with and without live migration
    (the setup of experiments/llumnix.py, which reproduces Llumnix with it).

Study (b)'s deployments, with DistServe's goodput and SLO-scale metrics, are experiments/distserve.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from servesim import SLO, EngineConfig, LengthDist, Scenario, WorkloadConfig, simulate
from servesim.config import PoolConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import llumnix  # noqa: E402

CHAT_IN = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)  # Azure conversation trace
CHAT_OUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)
AZURE_CODE = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "AzureLLMInferenceTrace_code.csv"
# Azure code trace shape, used when the trace file is absent: context mean 2048, generated mean 28
CODE_IN = LengthDist(dist="lognormal", mean=2048, sigma=0.9, min=3, max=7437)
CODE_OUT = LengthDist(dist="lognormal", mean=28, sigma=1.0, min=1, max=1899)


def row(*cells):
    print(" | ".join(str(c) for c in cells))


def study_a(n: int):
    print("\n(a) llama-3.1-70b on 8x H100: parallelism layouts, chat traffic (Azure conversation lengths)")
    row("layout", "rate req/s", "throughput req/s", "output tok/s", "TPOT median ms", "TPOT p99 ms", "TTFT p99 ms")
    for rate in (10, 20, 40):
        for tp, reps in ((8, 1), (4, 2), (2, 4)):
            engine = EngineConfig(tp=tp, max_model_len=16384)
            wl = WorkloadConfig(num_requests=n, rate=rate, input=CHAT_IN, output=CHAT_OUT, seed=1)
            s = simulate(Scenario(model="llama-3.1-70b", gpu="h100", engine=engine, replicas=reps,
                                  router="least_tokens", workload=wl)).summary()  # fmt: skip
            tpot, ttft = s["tpot_ms"], s["ttft_ms"]
            row(f"TP{tp} x{reps}", rate, f"{s['request_throughput']:.2f}", f"{s['output_throughput']:.0f}",
                f"{tpot['median']:.1f}", f"{tpot['p99']:.1f}", f"{ttft['p99']:.0f}")  # fmt: skip


def study_b(n: int):
    trace = AZURE_CODE if AZURE_CODE.is_file() else None
    source = "Azure code trace rows" if trace else "Azure-code-like lognormal lengths"
    slo = SLO(ttft_ms=2000, tpot_ms=30)
    print(f"\n(b) llama-3.1-8b on 4x H100, long prompts ({source}); SLO TTFT<=2000 ms, TPOT<=30 ms")
    row("deployment", "rate req/s", "goodput req/s", "TTFT p90 ms", "TPOT p90 ms", "ITL p99 ms")
    engine = EngineConfig(max_num_batched_tokens=8192)
    for rate in (10, 20, 30, 40):
        wl = WorkloadConfig(num_requests=n, rate=rate, seed=2, input=CODE_IN, output=CODE_OUT, trace=trace,
                            trace_sample="random")  # fmt: skip
        deployments = {
            "co-located 4 replicas": Scenario(workload=wl, slo=slo, replicas=4, router="least_tokens", engine=engine),
            "disaggregated 2P2D": Scenario(workload=wl, slo=slo, engine=engine,
                                           prefill=PoolConfig(replicas=2, engine=engine),
                                           decode=PoolConfig(replicas=2, engine=engine)),
            "disaggregated 3P1D": Scenario(workload=wl, slo=slo, engine=engine,
                                           prefill=PoolConfig(replicas=3, engine=engine),
                                           decode=PoolConfig(replicas=1, engine=engine)),
        }  # fmt: skip
        for name, sc in deployments.items():
            s = simulate(sc).summary()
            row(name, rate, f"{s['request_goodput']:.2f}", f"{s['ttft_ms']['p90']:.0f}", f"{s['tpot_ms']['p90']:.1f}",
                f"{s['itl_ms']['p99']:.1f}")  # fmt: skip


def study_c(n: int):
    # the scenario is experiments/llumnix.py's (the Llumnix reproduction, which adds least-KV-load dispatch)
    print("\n(c) llama-3.1-8b, 4x H100 replicas with a tight KV cache (gpu_memory_utilization 0.27), bursty load")
    row("migration", "preemptions", "migrations", "TTFT p99 ms", "TPOT p99 ms", "E2EL p99 ms", "KV use per replica")
    for mode in (None, "live"):
        s = simulate(llumnix.scenario(n, 14.0, "round_robin", mode)).summary()
        kv = ", ".join(f"{r['kv_cache']['mean_usage']:.2f}" for r in s["replicas"])
        row("on" if mode else "off", s["preemptions"], s["migrations"], f"{s['ttft_ms']['p99']:.0f}",
            f"{s['tpot_ms']['p99']:.1f}", f"{s['e2el_ms']['p99']:.0f}", kv)  # fmt: skip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    study_a(args.requests)
    study_b(args.requests)
    study_c(args.requests)
    print(f"\nall studies: {time.perf_counter() - t0:.1f} s wall")


if __name__ == "__main__":
    main()
