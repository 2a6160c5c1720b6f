"""Energy, cost and power-capping studies produced by servesim (docs/energy.md records their output).

    python benchmarks/energy_studies.py [--requests N]

(1) Tokens per joule and $ per million tokens for llama-3.1-8b and llama-3.1-70b on A100, H100 and
    H200, each at its best throughput under a TPOT SLO (P90 TPOT <= 50 ms, P90 TTFT <= 2 s), found
    by bisection over the request rate. Chat traffic with Azure-conversation lengths.
(2) POLCA-style oversubscription: a row of replicas provisioned at TDP under a fixed power budget,
    then 25% and 50% more replicas under the same budget with the power controller capping GPUs
    (the setup of experiments/polca.py, which reproduces POLCA with it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from servesim import SLO, EngineConfig, LengthDist, Scenario, WorkloadConfig, simulate
from servesim.config import PowerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import polca  # noqa: E402

CHAT_IN = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)
CHAT_OUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)
SLO_TARGET = SLO(tpot_ms=50, ttft_ms=2000)


def scenario(model, gpu, tp, rate, n, replicas=1, power=None, perf_model="roofline"):
    wl = WorkloadConfig(num_requests=n, rate=rate, input=CHAT_IN, output=CHAT_OUT, seed=1)
    return Scenario(model=model, gpu=gpu, engine=EngineConfig(tp=tp, max_model_len=16384), workload=wl,
                    slo=SLO_TARGET, replicas=replicas, router="least_tokens", perf_model=perf_model,
                    power=power or PowerConfig())  # fmt: skip


def meets(s) -> bool:
    return s["tpot_ms"]["p90"] <= SLO_TARGET.tpot_ms and s["ttft_ms"]["p90"] <= SLO_TARGET.ttft_ms


def best_rate(model, gpu, tp, n, perf_model):
    """Highest rate (req/s) meeting the SLO, by bisection; returns its summary."""
    lo, hi, best = 0.0, 1.0, None
    while True:  # bracket
        s = simulate(scenario(model, gpu, tp, hi, n, perf_model=perf_model)).summary()
        if not meets(s):
            break
        lo, best, hi = hi, s, hi * 2
    for _ in range(6):
        mid = (lo + hi) / 2
        s = simulate(scenario(model, gpu, tp, mid, n, perf_model=perf_model)).summary()
        lo, hi, best = (mid, hi, s) if meets(s) else (lo, mid, best)
    return lo, best


def study_efficiency(n):
    print("\n(1) best throughput under P90 TPOT <= 50 ms and P90 TTFT <= 2 s; chat traffic")
    print(
        "model | GPU x TP | perf model | rate req/s | output tok/s | tokens/J | output tokens/J | "
        "$/M output tokens | $/M tokens | avg W per GPU"
    )
    # one performance model for every GPU (the roofline), so the GPUs compare like with like; the measured
    # profiles of the H100 and H200 (times and power levels) give reference rows
    small = (
        ("a100-80gb-sxm", 1, "roofline"),
        ("h100-sxm", 1, "roofline"),
        ("h100-sxm", 1, "profiled"),
        ("h200", 1, "roofline"),
        ("h200", 1, "profiled"),
    )
    large = (("a100-80gb-sxm", 4, "roofline"), ("h100-sxm", 4, "roofline"), ("h100-sxm", 4, "profiled"),
             ("h200", 2, "roofline"), ("h200", 4, "roofline"), ("h200", 4, "profiled"))  # fmt: skip
    for model, layouts in (("llama-3.1-8b", small), ("llama-3.1-70b", large)):
        for gpu, tp, perf in layouts:
            rate, s = best_rate(model, gpu, tp, n, perf)
            if s is None:
                print(f"{model} | {gpu} x{tp} | - | SLO not met at 1 req/s")
                continue
            e, c = s["energy"], s["cost"]
            print(f"{model} | {gpu} x{tp} | {perf} | {rate:.2f} | {s['output_throughput']:.0f} | "
                  f"{e['tokens_per_j']:.2f} | {e['output_tokens_per_j']:.2f} | "
                  f"{c['usd_per_m_output_tokens']:.3f} | {c['usd_per_m_tokens']:.3f} | "
                  f"{e['avg_power_per_gpu_w']:.0f}")  # fmt: skip


def study_polca(n):
    # the scenario, budget and controller settings are experiments/polca.py's (the POLCA reproduction)
    print(f"\n(2) llama-3.1-8b on H100 replicas, {polca.RATE_PER_REPLICA} req/s each, cluster budget "
          f"{polca.BUDGET_W:.0f} W (= {polca.BASE_REPLICAS} GPUs at TDP + hosts); controller caps at "
          f"{polca.THROTTLE_W:.0f} W per GPU")  # fmt: skip
    print(
        "replicas | load req/s | throughput req/s | avg W | peak W (1 s) | over budget | time capped | cap actions | "
        "TTFT p99 ms | TPOT p99 ms | E2EL p99 ms"
    )
    for reps in (8, 10, 11, 12):
        s = polca.measure(reps, 3 * n * reps // polca.BASE_REPLICAS)
        pc = s["power_control"]
        print(f"{reps} | {polca.RATE_PER_REPLICA * reps:.0f} | {s['request_throughput']:.1f} | "
              f"{s['energy']['avg_power_w']:.0f} | {s['energy']['peak_power_w']:.0f} | {s['over_budget']:.1%} | "
              f"{pc['time_capped_fraction']:.1%} | {pc['cap_actions']} | {s['ttft_ms']['p99']:.0f} | "
              f"{s['tpot_ms']['p99']:.1f} | {s['e2el_ms']['p99']:.0f}")  # fmt: skip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    study_efficiency(args.requests)
    study_polca(args.requests)
    print(f"\nall studies: {time.perf_counter() - t0:.1f} s wall")


if __name__ == "__main__":
    main()
