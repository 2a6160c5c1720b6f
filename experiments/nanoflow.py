"""NanoFlow: overlapping compute-, memory- and network-bound operators inside one GPU.

Claim (Zhu et al., OSDI 2025): splitting each iteration into nano-batches and running their
operators concurrently on SM partitions gives 1.91x the throughput of vLLM, reaching 68.5%
of the optimal (compute-bound) throughput.

Here: Llama-3.1-8B on one H100 (profiled; measured SM-share curves), offline (all requests
at once, 1,024 prompt and 512 output tokens, max_num_seqs 512 so that iterations are large
enough for GEMMs to be compute-bound), vLLM's sequential iteration against 2 and 4
nano-batches. Headline: output and total tokens per second.

    python experiments/nanoflow.py [--requests 2000]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, Scenario, WorkloadConfig

CHECK = ["--requests", "300"]  # the small run CI checks (experiments/record.py)

PROMPT, OUTPUT, MAX_SEQS, MAX_TOKENS = 1024, 512, 512, 8192


def run(nano: int, requests: int) -> dict:
    wl = WorkloadConfig(num_requests=requests, rate=float("inf"), input=LengthDist(dist="fixed", mean=PROMPT),
                        output=LengthDist(dist="fixed", mean=OUTPUT, max=OUTPUT))  # fmt: skip
    e = EngineConfig(nano_batches=nano, max_num_seqs=MAX_SEQS, max_num_batched_tokens=MAX_TOKENS)
    return simulate(Scenario(model="llama-3.1-8b", gpu="h100-sxm", engine=e, workload=wl)).summary()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    n = ap.parse_args().requests
    base = None
    print(f"llama-3.1-8b on h100-sxm, offline: {n} requests of {PROMPT} prompt / {OUTPUT} output tokens at once, "
          f"max_num_seqs {MAX_SEQS}, max_num_batched_tokens {MAX_TOKENS}")
    print("engine | output tok/s | total tok/s | vs sequential")
    for nano in (1, 2, 4):
        s = run(nano, n)
        base = base or s["total_token_throughput"]
        name = "sequential (vllm)" if nano == 1 else f"nanoflow, {nano} nano-batches"
        print(f"{name} | {s['output_throughput']:.0f} | {s['total_token_throughput']:.0f} | "
              f"{s['total_token_throughput'] / base:.2f}")


if __name__ == "__main__":
    main()
