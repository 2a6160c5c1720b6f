"""Autoscaling a fleet through a day against provisioning for the peak, and what cold starts cost.

Claims (the serverless and elastic-serving literature, e.g. DeepFlow, Hu et al., arXiv
2501.14417): scaling with the load saves much of a peak-provisioned fleet's GPU time, and
the cold start is the price of elasticity, in latency during ramps and in capacity held
back while replicas warm up.

Here: Llama-3.1-70B at TP4 on H100s (profiled), requests with the Azure 2023 conversation
trace's lengths (sampled at random; lognormal stand-ins when the trace is absent), Poisson
arrivals whose rate follows an assumed diurnal shape (`DAY`, as `benchmarks/bench_scale.py`:
0.28x the mean at night, 1.45x through the working day) over a day, streamed. The static
fleet is sized for the peak: ceil(peak rate x 1.25 / one replica's capacity), the capacity
found by `servesim search`'s bisection under the SLO (P90 TTFT 2 s, P90 TPOT 100 ms), with
25% headroom. The
autoscaled fleets start at the night's size; `predictive` provisions for the rate one cold
start ahead, `reactive` follows utilisation. Cold starts of 5, 30 and 120 s (weights
and warm-up together). Headline: GPU-hours and cost against the static fleet, and SLO
attainment (the share of requests meeting both targets).

    python experiments/autoscaling.py [--mean-rate 24] [--hours 6]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from servesim.api import simulate
from servesim.config import SLO, AutoscaleConfig, EngineConfig, LengthDist, Scenario, WorkloadConfig
from servesim.search.capacity import find_capacity, parse_targets

CHECK = ["--hours", "0.25", "--mean-rate", "24"]  # the small run CI checks (experiments/record.py)

DAY = [0.45, 0.35, 0.3, 0.28, 0.3, 0.4, 0.6, 0.85, 1.1, 1.3, 1.4, 1.45, 1.45, 1.45, 1.45, 1.4, 1.35, 1.3, 1.2,
       1.1, 1.0, 0.9, 0.75, 0.6]  # fmt: skip
TRACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"
TARGETS = "p90_ttft:2000 p90_tpot:100"
HEADROOM = 1.25  # the static fleet's margin over the peak rate (the capacity is found in short runs)


def workload(rate: float, n: int, shaped: bool) -> WorkloadConfig:
    stand_in = dict(input=LengthDist(mean=1000, sigma=1.0, max=8000), output=LengthDist(mean=250, max=2000))
    lengths = dict(trace=TRACE, trace_sample="random") if TRACE.is_file() else stand_in
    shape = dict(rate_shape=DAY, rate_period_s=86400.0) if shaped else {}
    return WorkloadConfig(num_requests=n, rate=rate, seed=7, **lengths, **shape)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mean-rate", type=float, default=24.0, help="the day's mean requests per second")
    ap.add_argument("--hours", type=float, default=6.0, help="requests: this many hours at the mean rate, the first "
                    "of the day (6: the night, the morning ramp and the start of the peak, about 14 h)")  # fmt: skip
    args = ap.parse_args()
    engine = EngineConfig(tp=4)
    base = Scenario(model="llama-3.1-70b", gpu="h100-sxm", engine=engine, router="least_tokens",
                    slo=SLO(ttft_ms=2000, tpot_ms=100))  # fmt: skip
    targets = parse_targets([TARGETS])
    cap = find_capacity(lambda r: base.model_copy(update={"workload": workload(r, 600, False)}), targets)["capacity"]
    peak = args.mean_rate * max(DAY) / (sum(DAY) / len(DAY))
    night = args.mean_rate * min(DAY) / (sum(DAY) / len(DAY))
    static_n = math.ceil(peak * HEADROOM / cap)
    n = int(args.mean_rate * args.hours * 3600)
    wl = workload(args.mean_rate, n, True)
    print(f"llama-3.1-70b TP4 on H100, {n:,} requests over {args.hours:g} h (mean {args.mean_rate:g}/s, peak "
          f"{peak:.1f}/s); one replica serves {cap:.2f} req/s within {TARGETS}")  # fmt: skip
    print("lengths: the Azure 2023 conversation trace's, sampled at random" if TRACE.is_file() else
          f"lengths: lognormal stand-ins (trace not found at {TRACE})")  # fmt: skip
    print("fleet | cold start (s) | GPU-hours | cost (USD) | vs static | SLO attainment | in ramps | P90 TTFT (ms) | "
          "cold starts")  # fmt: skip
    runs = [("static for the peak", None, None)] + [("predictive", "predictive", c) for c in (5, 30, 120)] + [
        ("reactive", "reactive", 30)]  # fmt: skip
    static_usd = None
    for label, policy, cold in runs:
        if policy is None:
            sc = base.model_copy(update={"replicas": static_n, "workload": wl})
        else:
            auto = AutoscaleConfig(policy=policy, min_replicas=1, max_replicas=static_n + 2, interval_s=10,
                                   load_gbs=1e6, warmup_s=cold, options={"replica_rps": cap, "headroom": HEADROOM}
                                   if policy == "predictive" else {"scale_down_cooldown_s": 300})  # fmt: skip
            sc = base.model_copy(update={"replicas": max(1, math.ceil(night * HEADROOM / cap)), "workload": wl,
                                         "autoscale": auto})  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:  # (records kept on disk: the attainment during ramps reads them)
            s = simulate(sc, stream=True, records_dir=Path(tmp)).summary()
        usd = s["cost"]["total_usd"]
        static_usd = static_usd or usd
        ok = s.get("request_goodput", 0.0) * s["duration_s"] / s["completed"] if s["completed"] else 0.0
        a = s.get("autoscale", {})
        ramps = "-" if a.get("slo_attainment_in_ramps") is None else f"{a['slo_attainment_in_ramps']:.1%}"
        print(f"{label}{f' ({static_n} replicas)' if policy is None else ''} | {cold if cold is not None else '-'} | "
              f"{s['cost']['gpu_hours']:.1f} | {usd:.2f} | {usd / static_usd - 1:+.1%} | {ok:.1%} | {ramps} | "
              f"{s['ttft_ms']['p90']:.0f} | {a.get('cold_starts', '-')}")  # fmt: skip


if __name__ == "__main__":
    main()
