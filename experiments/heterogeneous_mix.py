"""Heterogeneous GPU mixes: how much the cheapest mix saves against the best single GPU type.

Claim (Griggs et al., "Mélange: Cost Efficient Large Language Model Serving by Exploiting
GPU Heterogeneity", arXiv 2404.14527): choosing a mix of GPU types per request size cuts
deployment cost by up to 77% in conversational settings (and 33% and 51% in their other
two) against the best single type, because small requests are cheapest on small GPUs and
large ones on large GPUs.

Here (`search/mix.py`, the same method as `servesim search --mix`): Llama-3.1-8B on the
Azure LLM inference 2023 conversation and code traces (their prompt and output lengths,
Poisson arrivals at each target rate), A100-80GB, H100-SXM, H200 and L40S at the GPU
catalog's hourly prices, SLO P90 TTFT 2 s and P90 TPOT 80 ms. Each bucket's capacity per
GPU is simulated, an integer program picks the fleet, and both the mix and the best single
type are simulated end to end to confirm the SLOs. Headline: the verified mix's price per
hour against the best verified single type's, per trace and rate. Needs the traces
(`../shared/data/traces/`).

    python experiments/heterogeneous_mix.py [--rates 5,20,60] [--requests 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from servesim.config import Scenario, WorkloadConfig
from servesim.search.capacity import parse_targets
from servesim.search.mix import parse_options, search_mix

# the small run CI checks (experiments/record.py)
CHECK = ["--rates", "40", "--requests", "150", "--verify-requests", "600", "--traces", "conv"]

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
GPUS = ["a100", "h100-sxm", "h200", "l40s"]
SLO = "p90_ttft:2000 p90_tpot:80"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="5,20,60")
    ap.add_argument("--requests", type=int, default=300, help="requests per capacity simulation")
    ap.add_argument("--verify-requests", type=int, default=2000)
    ap.add_argument("--traces", default="conv,code")
    args = ap.parse_args()
    print(f"llama-3.1-8b, {SLO}; GPUs {', '.join(GPUS)} at catalog prices")
    print("trace | rate (req/s) | cheapest verified fleet | $/h | best single type | $/h | saving")
    for name in args.traces.split(","):
        path = TRACES / f"AzureLLMInferenceTrace_{name}.csv"
        if not path.is_file():
            print(f"{name} | trace not found at {path}")
            continue
        wl = WorkloadConfig(trace=path, trace_sample="random", num_requests=args.verify_requests)
        base = Scenario(model="llama-3.1-8b", workload=wl)
        for rate in (float(x) for x in args.rates.split(",")):
            out = search_mix(base, parse_options(GPUS, [1]), rate, parse_targets([SLO]), args.requests,
                             verify_requests=args.verify_requests)  # fmt: skip
            m, s = out["mix"], out["best_single"]
            single = f"{s['fleet']} | {s['usd_per_hour']:.2f} | {out['saving']:.1%}" if s else "none verified | |"
            print(f"{name} | {rate:g} | {m['fleet']} | {m['usd_per_hour']:.2f} | {single}")


if __name__ == "__main__":
    main()
