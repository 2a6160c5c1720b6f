"""Sarathi-Serve (Agrawal et al., "Taming Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve",
OSDI 2024, arXiv 2403.02310).

Claim (abstract): chunked-prefills with stall-free schedules, which add new requests to a
batch "without pausing ongoing decodes", yield "2.6x higher serving capacity" for
Mistral-7B on a single A100 (3.7x for Yi-34B on two A100s) than vLLM, under tail latency
(P99 time-between-tokens) constraints.

Here: Llama-3.1-8B on one H100 (profiled), Poisson arrivals of chat requests with long
prompts (lognormal, mean 2,000 tokens) and answers (mean 400). Serving capacity is the
highest rate at which the P99 time between tokens (ITL) stays within a TBT SLO, the median
TTFT within 2 s and the load is carried (`servesim.search.capacity`, bisection to 2%),
for a strict and a relaxed TBT SLO. Policies on the same requests: whole prompts joining
the running batch (Orca, and vLLM before chunked prefill: every prompt stalls the decodes
beside it), request-level batches that never interrupt decodes (FasterTransformer:
decode-prioritising, new requests wait for the whole batch), vLLM V1's chunked prefill at
its default 8,192-token budget, and Sarathi-Serve's stall-free batching with token budgets
of 512 and 2,048 (`sim/policies/sarathi.py`). Then every policy at one rate: its TBT tail
and TTFT.

    python experiments/sarathi_serve.py [--requests 2000] [--strict-ms 50] [--relaxed-ms 250] [--rate 4]
"""

from __future__ import annotations

import argparse
import sys
import time

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, Scenario, WorkloadConfig
from servesim.search.capacity import find_capacity, parse_targets

CHECK = ["--requests", "400"]  # the small run CI checks (experiments/record.py)

PROMPTS = LengthDist(mean=2000, sigma=0.9, min=16, max=16000)
ANSWERS = LengthDist(mean=400, sigma=0.7, min=4, max=4000)
# label: (scheduler, its options)
POLICIES = {
    "whole prompts (orca, vllm v0)": ("orca", {}),
    "request-level batches (fastertransformer)": ("static", {}),
    "chunked, 8192 budget (vllm v1)": ("vllm", {}),
    "sarathi-serve, budget 512": ("sarathi", {"chunk_size": 512}),
    "sarathi-serve, budget 2048": ("sarathi", {"chunk_size": 2048}),
}
BASELINE, SARATHI = "whole prompts (orca, vllm v0)", ("sarathi-serve, budget 512", "sarathi-serve, budget 2048")


def scenario(policy: str, requests: int, rate: float) -> Scenario:
    name, opts = POLICIES[policy]
    engine = EngineConfig(scheduler=name, scheduler_options=opts, max_model_len=20000)
    wl = WorkloadConfig(num_requests=requests, rate=rate, input=PROMPTS, output=ANSWERS, seed=1)
    return Scenario(model="llama-3.1-8b", gpu="h100-sxm", engine=engine, workload=wl)


def capacity(policy: str, requests: int, tbt_ms: float) -> tuple[float, dict | None]:
    """The highest rate within P99 TBT <= tbt_ms and median TTFT <= 2 s, and the summary there."""
    found = find_capacity(lambda rate: scenario(policy, requests, rate),
                          parse_targets([f"p99_itl:{tbt_ms:g} p50_ttft:2000"]), rel_tol=0.02)  # fmt: skip
    return found["capacity"], found["summary"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--strict-ms", type=float, default=50.0, help="strict P99 TBT SLO")
    ap.add_argument("--relaxed-ms", type=float, default=250.0, help="relaxed P99 TBT SLO")
    ap.add_argument("--rate", type=float, default=4.0, help="the rate every policy is compared at, req/s")
    a = ap.parse_args()
    t0 = time.perf_counter()
    print(f"llama-3.1-8b on h100-sxm, {a.requests} requests per run, prompts mean 2000 tokens, answers mean 400; "
          f"capacity: P99 TBT <= {a.strict_ms:g} ms (strict) or {a.relaxed_ms:g} ms (relaxed), median TTFT <= "
          "2000 ms")  # fmt: skip
    print("policy | capacity req/s, strict | P99 TBT ms there | capacity req/s, relaxed | P99 TBT ms there")
    cap: dict[tuple[str, str], float] = {}
    for policy in POLICIES:
        cells = []
        for slo, ms in (("strict", a.strict_ms), ("relaxed", a.relaxed_ms)):
            cap[policy, slo], s = capacity(policy, a.requests, ms)
            cells += [f"{cap[policy, slo]:.2f}", f"{s['itl_ms']['p99']:.0f}" if s else "-"]
        print(" | ".join([policy, *cells]))
    for slo in ("strict", "relaxed"):
        best = max(SARATHI, key=lambda p: cap[p, slo])
        base = max((p for p in POLICIES if p not in SARATHI), key=lambda p: cap[p, slo])
        print(f"{slo} SLO: {best} serves {cap[best, slo] / cap[base, slo]:.2f}x the capacity of the best "
              f"baseline ({base}), {cap[best, slo] / cap[BASELINE, slo]:.2f}x that of whole prompts")  # fmt: skip
    print(f"\nat {a.rate:g} req/s: policy | P99 TBT ms | median TBT ms | median TTFT ms | P99 TTFT ms | "
          "throughput req/s")  # fmt: skip
    tail = {}
    for policy in POLICIES:
        s = simulate(scenario(policy, a.requests, a.rate)).summary()
        tail[policy] = s["itl_ms"]["p99"]
        print(f"{a.rate:g}/s {policy} | {s['itl_ms']['p99']:.1f} | {s['itl_ms']['median']:.1f} | "
              f"{s['ttft_ms']['median']:.0f} | {s['ttft_ms']['p99']:.0f} | {s['request_throughput']:.2f}")  # fmt: skip
    for policy in SARATHI:
        print(f"at {a.rate:g} req/s {policy}: P99 TBT {tail[BASELINE] / tail[policy]:.2f}x lower than whole prompts, "
              f"{tail['chunked, 8192 budget (vllm v1)'] / tail[policy]:.2f}x lower than vllm v1")  # fmt: skip
    print(f"wall {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
