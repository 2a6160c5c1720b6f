"""Kinetics (Sadhukhan et al., "Kinetics: Rethinking Test-Time Scaling Laws", arXiv 2506.05333).

Claim (abstract): in test-time scaling (best-of-N samples, long chains of thought),
"attention, rather than parameter count, emerges as the dominant cost factor"; cost
models that count only the parameters' FLOPs (2 x params per token) miss the KV-cache
memory traffic that grows with samples and generation length.

Here: Llama-3.1-8B on one H100 serves 4 prompts of 1,024 tokens, all at once, each with N
parallel samples (n = N, sharing the prompt's blocks) of L generated tokens, for N in 1,
8, 32 and L in 1k, 4k, 16k. Headline metrics: GPU time per generated token, its growth
over L = 1k at the same N (a parameter-FLOPs model predicts none), and the attention share
of a decode iteration at the run's mean batch and mean context (the performance model's
per-operator breakdown).

    python experiments/kinetics.py [--prompts 4] [--samples 1,8,32] [--lengths 1024,4096,16384] [--model M]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import LengthDist, Scenario, WorkloadConfig
from servesim.perf.batch import Batch
from servesim.perf.step import price_step

CHECK = ["--samples", "1,8", "--lengths", "1024,8192"]  # the small run CI checks (experiments/record.py)

MODEL, GPU, PROMPT = "llama-3.1-8b", "h100-sxm", 1024


def run(prompts: int, samples: list[int], lengths: list[int], model: str = MODEL) -> dict[tuple[int, int], dict]:
    out = {}
    for n in samples:
        for length in lengths:
            wl = WorkloadConfig(num_requests=prompts, rate=float("inf"), n=n,
                                input=LengthDist(dist="fixed", mean=PROMPT),
                                output=LengthDist(dist="fixed", mean=length, max=length))  # fmt: skip
            s = simulate(Scenario(model=model, gpu=GPU, workload=wl)).summary()
            batch = max(1, round(s["batch_size"]["mean"]))
            step = price_step(model, GPU, Batch.decode(batch, PROMPT + length // 2))
            out[n, length] = {
                "duration_s": s["duration_s"],
                "ms_per_token": 1000 * s["duration_s"] / s["total_output_tokens"],
                "attention_share": step["breakdown"]["attention"] / step["seconds"],
                "batch": s["batch_size"]["mean"],
                "kv_max": s["kv_cache"]["max_usage"],
                "preemptions": s["preemptions"],
                # every sample's KV at its end, the prompt's blocks shared by its samples, against the cache's size
                "kv_tokens": prompts * (PROMPT + n * length),
                "kv_cache_tokens": s["memory"]["kv_cache_tokens"],
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", default="1,8,32")
    ap.add_argument("--lengths", default="1024,4096,16384")
    ap.add_argument("--model", default=MODEL, help="a catalog model that fits one H100")
    args = ap.parse_args()
    samples = [int(x) for x in args.samples.split(",")]
    lengths = [int(x) for x in args.lengths.split(",")]
    rows = run(args.prompts, samples, lengths, args.model)
    print(f"{args.model} on {GPU}, {args.prompts} prompts of {PROMPT} tokens at once, N samples of L tokens each")
    print("N x L | time s | GPU ms per generated token | vs L = first | attention share of a decode step | "
          "mean batch | KV peak | preemptions | samples' KV tokens | vs KV cache")  # fmt: skip
    for (n, length), r in rows.items():
        base = rows[n, lengths[0]]["ms_per_token"]
        print(f"{n} x {length} | {r['duration_s']:.1f} | {r['ms_per_token']:.3f} | {r['ms_per_token'] / base:.2f}x | "
              f"{r['attention_share']:.0%} | {r['batch']:.0f} | {r['kv_max']:.0%} | {r['preemptions']} | "
              f"{r['kv_tokens']} | {r['kv_tokens'] / r['kv_cache_tokens']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
