"""TetriInfer (Hu et al., "Inference without Interference: Disaggregate LLM Inference for Mixed Downstream
Workloads", arXiv 2401.11181).

Claim (abstract): partitioning prompts into fixed-size chunks "so that the accelerator
always runs close to its computation-saturated limit", disaggregating prefill and decode
instances, and a two-level scheduler "augmented with predicted resource usage to avoid
decode scheduling hotspots" improve TTFT, job completion time (JCT) and performance per
dollar: "it uses 38% less resources all the while lowering average TTFT and average JCT by
97% and 47%".

Here: Llama-3.1-8B on four H100s (profiled), a mix of TetriInfer's four workload classes
at equal rates (Poisson): light or heavy prefill (prompts lognormal, mean 300 or 3,000
tokens) with light or heavy decode (answers mean 60 or 800). Deployments at equal GPUs:
four co-located vLLM replicas (chunked prefill, 8,192-token budget), the same with whole
prompts (vLLM before chunked prefill, `orca`), and TetriInfer's shape: two prefill
instances running prompts in fixed chunks of 1,024 tokens (where prefill throughput
saturates on this GPU: `servesim step --prefill N` gives 34k tokens/s at 512, 36k from
1,024 on) handing on to two decode instances placed by predicted decode work
(`length_aware`: a bucket predictor right 80% of the time), and, as its ablation, the same
placed by KV load (`least_tokens`). Each at the full KV cache and with a small one
(`gpu_memory_utilization` 0.35: the regime where decode memory binds). Headline: mean TTFT,
mean JCT (end-to-end latency), and dollars per thousand requests.

    python experiments/tetriinfer.py [--requests 3000] [--rate 30] [--memory 0.9,0.35]
"""

from __future__ import annotations

import argparse
import sys
import time

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, PoolConfig, Scenario, TenantConfig, WorkloadConfig

CHECK = ["--requests", "1000"]  # the small run CI checks (experiments/record.py)

PROMPTS = {"L": LengthDist(mean=300, sigma=0.5, max=4000), "H": LengthDist(mean=3000, sigma=0.5, max=12000)}
ANSWERS = {"L": LengthDist(mean=60, sigma=0.5, max=1000), "H": LengthDist(mean=800, sigma=0.5, max=4000)}
CHUNK = 1024
VLLM, TETRI, ABLATION = "vllm x4", "tetriinfer 2P2D", "2P2D, least-tokens decode placement"


def workload(requests: int, rate: float) -> WorkloadConfig:
    classes = [TenantConfig(name=f"{p}P{d}D", rate=rate / 4, input=PROMPTS[p], output=ANSWERS[d])
               for p in "LH" for d in "LH"]  # fmt: skip
    return WorkloadConfig(num_requests=requests, tenants=classes)


def deployments(wl: WorkloadConfig, memory: float) -> dict[str, Scenario]:
    e = EngineConfig(gpu_memory_utilization=memory, max_model_len=16384)
    chunks = e.model_copy(update={"max_num_batched_tokens": CHUNK})
    base = dict(model="llama-3.1-8b", gpu="h100-sxm", workload=wl)
    return {
        VLLM: Scenario(replicas=4, router="least_tokens", engine=e, **base),
        "vllm v0 x4 (whole prompts)": Scenario(replicas=4, router="least_tokens",
                                               engine=e.model_copy(update={"scheduler": "orca"}), **base),
        TETRI: Scenario(prefill=PoolConfig(replicas=2, engine=chunks),
                        decode=PoolConfig(replicas=2, engine=e, router="length_aware"), **base),
        ABLATION: Scenario(prefill=PoolConfig(replicas=2, engine=chunks),
                           decode=PoolConfig(replicas=2, engine=e, router="least_tokens"), **base),
    }  # fmt: skip


def per_request(s: dict) -> float:
    """Dollars of GPU time per completed request."""
    return s["cost"]["total_usd"] / s["completed"]


def change(s: dict, ref: dict, metric: str, stat: str) -> float:
    return s[metric][stat] / ref[metric][stat] - 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=30.0, help="all four classes together, req/s")
    ap.add_argument("--memory", default="0.9,0.35", help="gpu_memory_utilization values, comma list")
    a = ap.parse_args()
    t0 = time.perf_counter()
    print(f"llama-3.1-8b on 4 h100-sxm, {a.requests} requests at {a.rate:g} req/s, four classes at equal rates: "
          f"prompts mean 300 or 3000 tokens x answers mean 60 or 800; prefill chunks of {CHUNK}")  # fmt: skip
    print("memory deployment | mean TTFT ms | P99 TTFT ms | mean JCT s | P99 TPOT ms | preemptions | "
          "throughput req/s | $ per 1k requests")  # fmt: skip
    for memory in [float(m) for m in a.memory.split(",")]:
        s = {}
        for name, sc in deployments(workload(a.requests, a.rate), memory).items():
            s[name] = x = simulate(sc).summary()
            print(f"{memory:g} {name} | {x['ttft_ms']['mean']:.0f} | {x['ttft_ms']['p99']:.0f} | "
                  f"{x['e2el_ms']['mean'] / 1e3:.2f} | {x['tpot_ms']['p99']:.1f} | {x['preemptions']} | "
                  f"{x['request_throughput']:.2f} | {per_request(x) * 1000:.3f}")  # fmt: skip
        t, v = s[TETRI], s[VLLM]
        print(f"memory {memory:g}, {TETRI} against {VLLM}: mean TTFT {change(t, v, 'ttft_ms', 'mean'):+.0%}, mean "
              f"JCT {change(t, v, 'e2el_ms', 'mean'):+.0%}, P99 TPOT {change(t, v, 'tpot_ms', 'p99'):+.0%}, $ per "
              f"request {per_request(t) / per_request(v) - 1:+.0%}; its length-aware decode placement against "
              f"least-tokens: mean JCT {s[ABLATION]['e2el_ms']['mean'] / t['e2el_ms']['mean']:.2f}x lower")  # fmt: skip
    print(f"wall {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
