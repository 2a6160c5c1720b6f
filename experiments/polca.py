"""POLCA (Patel et al., "POLCA: Power Oversubscription in LLM Cloud Providers", arXiv 2308.12908).

Claim (abstract): inference clusters seldom draw their provisioned power, so a power
budget can be oversubscribed with a controller that caps GPUs when the cluster nears it;
"we can deploy 30% more servers in the same GPU cluster for inference, with minimal
performance loss".

Here (docs/energy.md, "POLCA"): Llama-3.1-8B replicas on H100s (roofline model and
datasheet power levels, as when the study was first run), chat traffic with
Azure-conversation lengths at 14 req/s per replica (Poisson), a cluster budget of 6,800 W:
eight GPUs at their 700 W TDP plus their hosts' share (1,200 W per 8-GPU node). Then 10,
11 and 12 replicas under the same budget with the power controller (`sim/power_control.py`:
every 0.5 s it reads cluster power; after 1 s above 95% of the budget it caps replicas'
GPUs at 450 W, below 85% it lifts a cap), and the same fleets without it, to show what
they would draw. Headline: throughput, peak power, share of 1 s windows over the budget,
P99 latencies against the eight replicas provisioned at TDP.

    python experiments/polca.py [--requests-per-replica 750] [--replicas 10,11,12]
"""

from __future__ import annotations

import argparse
import sys
import time

from servesim.api import simulate
from servesim.config import SLO, EngineConfig, LengthDist, PowerConfig, Scenario, WorkloadConfig
from servesim.hardware import get_gpu

CHECK = ["--requests-per-replica", "150", "--replicas", "11"]  # the small run CI checks (experiments/record.py)

CHAT_IN = LengthDist(mean=1155, sigma=0.99, min=2, max=14050)  # Azure LLM inference 2023, conversation
CHAT_OUT = LengthDist(mean=211, sigma=0.86, min=7, max=1000)
BASE_REPLICAS, RATE_PER_REPLICA, THROTTLE_W = 8, 14.0, 450.0
HOST_SHARE_W = 1200 / 8  # one 8-GPU node's host power, per GPU
BUDGET_W = BASE_REPLICAS * (get_gpu("h100-sxm").tdp_w + HOST_SHARE_W)  # provisioned for every GPU at TDP


def scenario(replicas: int, requests: int, controller: bool = True) -> Scenario:
    """`replicas` of Llama-3.1-8B at RATE_PER_REPLICA each; under BUDGET_W with the controller, or unbudgeted."""
    power = PowerConfig(budget_w=BUDGET_W, throttle_cap_w=THROTTLE_W, interval_s=0.5, reaction_s=1.0) if controller \
        else PowerConfig()  # fmt: skip
    wl = WorkloadConfig(num_requests=requests, rate=RATE_PER_REPLICA * replicas, input=CHAT_IN, output=CHAT_OUT,
                        seed=1)  # fmt: skip
    return Scenario(model="llama-3.1-8b", gpu="h100-sxm", engine=EngineConfig(max_model_len=16384), workload=wl,
                    slo=SLO(tpot_ms=50, ttft_ms=2000), replicas=replicas, router="least_tokens",
                    perf_model="roofline", power=power)  # fmt: skip


def measure(replicas: int, requests: int, controller: bool = True) -> dict:
    """The run's summary, with the share of 1 s windows whose cluster power exceeded BUDGET_W."""
    result = simulate(scenario(replicas, requests, controller))
    s = result.summary()
    s["over_budget"] = float((result.power_series(1.0).cluster_w > BUDGET_W).mean())
    return s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests-per-replica", type=int, default=750)
    ap.add_argument("--replicas", default="10,11,12", help="oversubscribed fleet sizes, comma list")
    a = ap.parse_args()
    t0 = time.perf_counter()
    counts = [int(x) for x in a.replicas.split(",")]
    print(f"llama-3.1-8b on h100-sxm replicas (roofline, datasheet power), {RATE_PER_REPLICA:g} req/s and "
          f"{a.requests_per_replica} requests per replica; budget {BUDGET_W:.0f} W = {BASE_REPLICAS} GPUs at "
          f"TDP + hosts; the controller caps GPUs at {THROTTLE_W:.0f} W")  # fmt: skip
    print("replicas | load req/s | throughput req/s | avg W | peak W (1 s) | 1 s windows over budget | time capped | "
          "TTFT p99 ms | TPOT p99 ms | E2EL p99 ms")  # fmt: skip
    runs = [(BASE_REPLICAS, True)] + [(n, c) for n in counts for c in (True, False)]
    out = {}
    for n, controller in runs:
        s = out[n, controller] = measure(n, a.requests_per_replica * n, controller)
        capped = f"{s['power_control']['time_capped_fraction']:.1%}" if controller else "-"
        label = f"{n}" if controller else f"{n}, no controller"
        print(f"{label} | {RATE_PER_REPLICA * n:.0f} | {s['request_throughput']:.1f} | "
              f"{s['energy']['avg_power_w']:.0f} | {s['energy']['peak_power_w']:.0f} | {s['over_budget']:.1%} | "
              f"{capped} | {s['ttft_ms']['p99']:.0f} | {s['tpot_ms']['p99']:.1f} | "
              f"{s['e2el_ms']['p99']:.0f}")  # fmt: skip
    base = out[BASE_REPLICAS, True]
    for n in counts:
        s, free = out[n, True], out[n, False]
        more = lambda key, stat, s=s: s[key][stat] / base[key][stat] - 1  # noqa: E731
        print(f"{n} replicas under the budget: {n / BASE_REPLICAS - 1:+.1%} servers, "
              f"{s['request_throughput'] / base['request_throughput'] - 1:+.1%} throughput, P99 TTFT "
              f"{more('ttft_ms', 'p99'):+.0%}, P99 TPOT {more('tpot_ms', 'p99'):+.0%} against {BASE_REPLICAS} at "
              f"TDP ({s['tpot_ms']['p99'] / free['tpot_ms']['p99'] - 1:+.0%} against the same fleet uncapped); "
              f"{s['over_budget']:.1%} of windows over budget with the controller, {free['over_budget']:.1%} "
              "without")  # fmt: skip
    print(f"wall {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
