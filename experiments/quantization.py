"""Weight-only quantization: W4A16 wins at small batch, W8A8 (FP8) at large batch.

Claim ("Give Me BF16 or Give Me Death"? Accuracy-performance trade-offs in LLM quantization,
Kurtic et al., arXiv 2411.02355): W4A16 is the most cost-efficient for synchronous
(latency-bound, small-batch) serving; W8A8 (FP8 on Hopper) for asynchronous high-throughput
serving, where W4A16's dequantisation makes it compute-bound earlier.

Here: Llama-3.1-8B on one H100 (profiled; W4A16/W8A16 GEMMs by the fitted roofline with the
measured W4A16 weight-streaming rate, perf/quant.py). B requests of 1,024 prompt and 256
output tokens sent at once: TPOT at B = 1 and output throughput at B = 1,024.

    python experiments/quantization.py [--big 1024]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, Scenario, WorkloadConfig

CHECK = ["--big", "256"]  # the small run CI checks (experiments/record.py)

SCHEMES = {"bf16": {}, "W4A16 (awq)": {"quantization": "awq"},
           "W8A16 (gptq 8-bit)": {"quantization": "gptq", "quantization_bits": 8},
           "W8A8 (fp8)": {"quantization": "fp8"}}  # fmt: skip


def run(scheme: dict, batch: int) -> dict:
    wl = WorkloadConfig(num_requests=batch, rate=float("inf"), input=LengthDist(dist="fixed", mean=1024),
                        output=LengthDist(dist="fixed", mean=256, max=256))  # fmt: skip
    sc = Scenario(model="llama-3.1-8b", gpu="h100-sxm", engine=EngineConfig(**scheme), workload=wl)
    return simulate(sc).summary()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=1024)
    big = ap.parse_args().big
    print(f"scheme | TPOT ms at 1 | output tok/s at {big} | KV tokens")
    for name, scheme in SCHEMES.items():
        one, many = run(scheme, 1), run(scheme, big)
        print(f"{name} | {one['tpot_ms']['mean']:.2f} | {many['output_throughput']:.0f} | "
              f"{many['memory']['kv_cache_tokens']}")


if __name__ == "__main__":
    main()
