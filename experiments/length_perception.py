"""Response length perception and sequence scheduling (Zheng et al., NeurIPS 2023).

Claim (abstract): grouping queries with similar predicted response lengths into micro-batches
"achieves an 86% improvement in inference throughput" over the unscheduled baseline, with a
Vicuna-7B that predicts its own response length.

Here: static (request-level) batching, as in the paper, of ShareGPT-shaped requests sent at
once to Llama-3.1-8B on one H100, batches of 16. The baseline batches in arrival order; the
mechanism groups by predicted length (`static` with `group = true`), with a bucketed
predictor that names the right length range 80% of the time, and with the oracle. Same
requests. Headline metric: throughput (requests/s), and its ratio to the baseline. For
scale: vLLM's continuous batching on the same requests.

    python experiments/length_perception.py [--requests 2000] [--batch 16]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import Scenario

CHECK = ["--requests", "300"]  # the small run CI checks (experiments/record.py)


def run(requests: int, batch: int, seed: int = 0) -> dict[str, dict]:
    base = Scenario(workload={"num_requests": requests, "arrival": "burst", "seed": seed})
    buckets = {"predictor": "buckets", "buckets": [32, 64, 128, 256, 512], "accuracy": 0.8}
    policies = {
        "static, arrival order": ("static", {}),
        "static, grouped (buckets, 80%)": ("static", {"group": True, **buckets}),
        "static, grouped (oracle)": ("static", {"group": True}),
        "vllm continuous batching": ("vllm", {}),
    }
    out = {}
    for label, (name, opts) in policies.items():
        engine = base.engine.model_copy(update={"scheduler": name, "scheduler_options": opts, "max_num_seqs": batch})
        out[label] = simulate(base.model_copy(update={"engine": engine})).summary()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    rows = run(args.requests, args.batch)
    ref = rows["static, arrival order"]["request_throughput"]
    print(f"llama-3.1-8b on h100-sxm, {args.requests} ShareGPT-shaped requests at once, batches of {args.batch}")
    print("policy | req/s | vs arrival order | output tok/s | mean batch")
    for label, s in rows.items():
        print(f"{label} | {s['request_throughput']:.2f} | {s['request_throughput'] / ref - 1:+.0%} | "
              f"{s['output_throughput']:,.0f} | {s['batch_size']['mean']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
