"""Splitwise (Patel et al., "Splitwise: Efficient Generative LLM Inference Using Phase Splitting", ISCA 2024,
arXiv 2311.18677).

Claim (abstract): splitting the prompt and token phases onto separate machines, each of a
hardware type suited to its phase, gives clusters that "achieve up to 1.4x higher
throughput at 20% lower cost" than current designs, or "2.35x more throughput under the
same power and cost budgets".

Here: Llama-3.1-70B, one TP8 replica per 8-GPU machine (as Splitwise deploys it on DGX
machines), four machines, chat traffic with Azure-conversation lengths (Poisson). Every
GPU type priced by the same performance model, the roofline (the A100 has no measured
profile), with datasheet power levels and catalog prices. Designs: four co-located
machines of H100s or of A100s (vLLM chunked prefill, least-tokens routing), and
disaggregated ones of two prompt and two token machines: H100 + H100 (Splitwise-HH),
H100 prompt + A100 token machines (Splitwise-HA), and H100 + H100 with the token machines'
GPUs capped at 350 W (Splitwise-HHcap). Each design's capacity is the highest rate with
P90 TTFT <= 1 s and P99 TBT (ITL) within the SLO, the load carried
(`servesim.search.capacity`, bisection to 3%), at a strict and a loose TBT SLO; then the
capacity per dollar (requests per $ of GPU-hours) and per provisioned kW (GPUs at TDP or
at their cap, plus 1,200 W per machine for the host).

    python experiments/splitwise.py [--requests 2000] [--tbt-ms 60] [--loose-tbt-ms 200] [--cap-w 350]
"""

from __future__ import annotations

import argparse
import sys
import time

from servesim.config import EngineConfig, LengthDist, Scenario, ServicePool, WorkloadConfig
from servesim.hardware import get_gpu
from servesim.search.capacity import find_capacity, parse_targets

CHECK = ["--requests", "500"]  # the small run CI checks (experiments/record.py)

CHAT_IN = LengthDist(mean=1155, sigma=0.99, min=2, max=14050)  # Azure LLM inference 2023, conversation
CHAT_OUT = LengthDist(mean=211, sigma=0.86, min=7, max=1000)
H100, A100 = "h100-sxm", "a100-80gb-sxm"
GPUS_PER_MACHINE, HOST_W = 8, 1200.0
BASELINE = "baseline-H100 x4"


def designs(cap_w: float) -> dict[str, list[tuple[str, int, str | None, float | None]]]:
    """Each design's pools: (GPU, machines, role, per-GPU power cap)."""
    return {
        "baseline-H100 x4": [(H100, 4, None, None)],
        "baseline-A100 x4": [(A100, 4, None, None)],
        "splitwise-HH 2P+2T": [(H100, 2, "prefill", None), (H100, 2, "decode", None)],
        "splitwise-HA 2P(H100)+2T(A100)": [(H100, 2, "prefill", None), (A100, 2, "decode", None)],
        f"splitwise-HHcap 2P+2T({cap_w:g} W)": [(H100, 2, "prefill", None), (H100, 2, "decode", cap_w)],
    }


def scenario(pools, requests: int, rate: float) -> Scenario:
    engine = EngineConfig(tp=GPUS_PER_MACHINE, max_model_len=16384)
    wl = WorkloadConfig(num_requests=requests, rate=rate, input=CHAT_IN, output=CHAT_OUT, seed=1)
    return Scenario(model="llama-3.1-70b", perf_model="roofline", router="least_tokens", workload=wl,
                    pools=[ServicePool(gpu=g, replicas=n, role=role, power_cap_w=cap, engine=engine)
                           for g, n, role, cap in pools])  # fmt: skip


def price_per_hour(pools) -> float:
    return sum(get_gpu(g).price_per_hour * n * GPUS_PER_MACHINE for g, n, _, _ in pools)


def provisioned_kw(pools) -> float:
    return sum(n * (GPUS_PER_MACHINE * (cap or get_gpu(g).tdp_w) + HOST_W) for g, n, _, cap in pools) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--tbt-ms", type=float, default=60.0, help="the P99 TBT SLO")
    ap.add_argument("--loose-tbt-ms", type=float, default=200.0, help="a looser P99 TBT SLO")
    ap.add_argument("--cap-w", type=float, default=350.0, help="per-GPU cap of Splitwise-HHcap's token machines")
    a = ap.parse_args()
    t0 = time.perf_counter()
    print(f"llama-3.1-70b TP8, 4 machines of 8 GPUs, {a.requests} chat requests per run (Azure conversation "
          f"lengths), roofline; capacity: P90 TTFT <= 1000 ms and P99 TBT <= {a.tbt_ms:g} ms (loose: "
          f"{a.loose_tbt_ms:g} ms); prices ${get_gpu(H100).price_per_hour:.2f} (H100), "
          f"${get_gpu(A100).price_per_hour:.2f} (A100) per GPU-hour")  # fmt: skip
    print("design | $/h | provisioned kW | capacity req/s | P99 TBT ms there | avg kW there | requests per $ | "
          "req/s per provisioned kW | capacity req/s, loose SLO")  # fmt: skip
    rows = {}
    for name, pools in designs(a.cap_w).items():
        caps = []
        for tbt in (a.tbt_ms, a.loose_tbt_ms):
            found = find_capacity(lambda rate, pools=pools: scenario(pools, a.requests, rate),
                                  parse_targets([f"p90_ttft:1000 p99_itl:{tbt:g}"]), rel_tol=0.03)  # fmt: skip
            caps.append((found["capacity"], found["summary"]))
        (rate, s), (loose, _) = caps
        usd, kw = price_per_hour(pools), provisioned_kw(pools)
        rows[name] = (rate, rate * 3600 / usd, rate / kw, loose)
        itl = f"{s['itl_ms']['p99']:.0f}" if s else "-"
        avg = f"{s['energy']['avg_power_w'] / 1e3:.1f}" if s else "-"
        print(f"{name} | {usd:.1f} | {kw:.1f} | {rate:.2f} | {itl} | {avg} | {rows[name][1]:.0f} | "
              f"{rows[name][2]:.3f} | {loose:.2f}")  # fmt: skip
    base = rows[BASELINE]
    for name, (rate, per_usd, per_kw, loose) in rows.items():
        if name != BASELINE:
            print(f"{name} vs {BASELINE}: {rate / base[0]:.2f}x throughput, {per_usd / base[1]:.2f}x per $, "
                  f"{per_kw / base[2]:.2f}x per provisioned kW; loose SLO {loose / base[3]:.2f}x "
                  "throughput")  # fmt: skip
    print(f"wall {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
