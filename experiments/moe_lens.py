"""MoE-Lens: an analytic bound on (MoE) serving throughput against what the engine achieves.

Claim (Yu et al., arXiv 2504.09345): a model of memory capacity, bandwidth and compute
predicts the throughput a well-built MoE serving system achieves within 94% (their engine
reaches 94% of the model's bound on average).

Here (bound.py, `servesim bound`): for each deployment, the batch the KV cache holds
at the workload's mean lengths, the bound on output tokens/s at datasheet peaks
(`hardware`) and priced by the deployment's performance model (`predicted`: what the
engine should reach with full batches and no scheduling loss), and the
simulated offline throughput (all requests at once) beside them. One H100, profiled,
1,024-token prompts and 256-token answers.

    python experiments/moe_lens.py [--requests 2000]
"""

from __future__ import annotations

import argparse

from servesim.bound import bound_report
from servesim.config import LengthDist, Scenario, WorkloadConfig

MODELS = ["qwen3-30b-a3b", "llama-3.1-8b"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    n = ap.parse_args().requests
    print("model | batch | hardware tok/s | predicted tok/s | simulated tok/s | simulated / predicted")
    for model in MODELS:
        wl = WorkloadConfig(num_requests=n, input=LengthDist(dist="fixed", mean=1024),
                            output=LengthDist(dist="fixed", mean=256, max=256))  # fmt: skip
        d = bound_report(Scenario(model=model, gpu="h100-sxm", workload=wl))
        print(f"{model} | {d['batch']} | {d['hardware_output_tokens_s']:.0f} | {d['predicted_output_tokens_s']:.0f} "
              f"| {d['simulated_output_tokens_s']:.0f} | {d['simulated_over_predicted']:.1%}")


if __name__ == "__main__":
    main()
