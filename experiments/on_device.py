"""On-device 1-3B models, in the manner of MELT (Laskaridis et al., "MELTing point: Mobile Evaluation of Language
Transformers", MobiCom 2024, arXiv 2403.12844; docs/edge_sources.md C).

Claim (abstract, verified): on phones and Jetsons "LLM inference is largely memory-bound", and given the energy
footprint and thermal behaviour "the continuous execution of LLMs remains elusive, as both factors negatively
affect user experience". MELT's numbers (tokens/s, energy per token, throttling curves, its device list) were
NOT found (docs/edge_sources.md C.1), so nothing here is compared against a MELT figure. Context only, for
other models: PowerInfer-2 (arXiv 2406.06282) serves TurboSparse-Mixtral-47B at 11.68 tokens/s on a OnePlus 12
(Snapdragon 8 Gen 3); Qualcomm's launch says "up to 20 tokens/sec" with no model named (marketing).

Here: llama-3.2-1b and llama-3.2-3b in bf16 (fp16 would give the same figures: the same 2 bytes per weight, and
the catalog gives these devices one 16-bit rate) on jetson-agx-orin-64gb (MAXN, 60 W), snapdragon-8-gen3 (a
phone: 12 W peak, 5 W sustained after a 60 s boost, a 19.4 Wh battery; those three figures are catalog
assumptions) and apple-m1-max, each priced on the roofline with the catalog's power levels:
1. one request alone: a 128-token prompt, 256 generated tokens: TTFT, TPOT, the memory-bandwidth floor of
   TPOT (the weights over the DRAM bandwidth), tokens per joule of the request's own energy (prefill and decode);
2. a stated use: one such request a minute, 30 of them, on battery: the energy the device draws over the run
   (busy and idle) per request as a share of the battery, and hours to drain at that rate (battery devices);
3. a sustained decode: 8 requests of 1,024 generated tokens back to back (minutes of continuous decode): where
   the device has a sustained power below its peak, when it first throttles, the share of the run throttled,
   the first and last requests' TPOT, and hours to drain the battery decoding without pause.

    python experiments/on_device.py [--models llama-3.2-1b,llama-3.2-3b] [--sustained 8]
"""

from __future__ import annotations

import argparse
import sys
import time

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, Scenario, WorkloadConfig
from servesim.hardware import get_gpu
from servesim.models import get_model

CHECK = ["--models", "llama-3.2-1b", "--duty-requests", "5", "--sustained", "3"]  # the small run CI checks

DEVICES = ["jetson-agx-orin-64gb", "snapdragon-8-gen3", "apple-m1-max"]
PROMPT, OUTPUT, LONG = 128, 256, 1024
RATE = 1 / 60  # one request a minute


def run(model: str, device: str, requests: int, rate: float, output: int) -> tuple[dict, object]:
    fixed = lambda n: LengthDist(dist="fixed", mean=n)  # noqa: E731
    wl = WorkloadConfig(num_requests=requests, rate=rate, input=fixed(PROMPT), output=fixed(output), seed=1)
    eng = EngineConfig(dtype="bf16", max_num_seqs=1, max_model_len=PROMPT + LONG)
    res = simulate(Scenario(model=model, gpu=device, engine=eng, workload=wl, perf_model="roofline"))
    return res.summary(), res.requests


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="llama-3.2-1b,llama-3.2-3b")
    ap.add_argument("--duty-requests", type=int, default=30, help="requests of the one-a-minute run")
    ap.add_argument("--sustained", type=int, default=8, help=f"back-to-back requests of {LONG} generated tokens")
    a = ap.parse_args()
    t0 = time.perf_counter()
    print(f"bf16, roofline, batch 1; one request: prompt {PROMPT}, {OUTPUT} generated; duty: one request a minute "
          f"({a.duty_requests}); sustained: {a.sustained} x {LONG} generated back to back")  # fmt: skip
    for device in DEVICES:
        g = get_gpu(device)
        extra = (f", sustained {g.sustained_w:g} W after {g.boost_s:g} s at peak" if g.sustained_w else
                 ", no sustained limit") + (f", battery {g.battery_wh:g} Wh" if g.battery_wh else "")  # fmt: skip
        print(f"{device}: {g.mem_bw_gbs:g} GB/s, {g.memory_gib:g} GiB, peak {g.tdp_w:g} W, idle {g.idle_w:g} W{extra}")
    print("device model | TTFT ms | TPOT ms | TPOT floor ms | decode tok/s | J per request | tokens per J | "
          "battery % per request (1/min) | hours to drain (1/min) | sustained s | first throttle s | throttled | "
          "TPOT first / last ms | hours to drain (sustained)")  # fmt: skip
    for model in a.models.split(","):
        weights = get_model(model).weight_bytes("bf16")
        for device in DEVICES:
            gpu = get_gpu(device)
            one, reqs = run(model, device, 1, float("inf"), OUTPUT)
            req = reqs.iloc[0]
            duty, _ = run(model, device, a.duty_requests, RATE, OUTPUT)
            sus, sreqs = run(model, device, a.sustained, float("inf"), LONG)
            bat, sbat = duty.get("battery"), sus.get("battery")
            th = sus.get("thermal")
            battery = f"{bat['battery_pct_per_request']:.3f}% | {bat['hours_to_drain']:.1f}" if bat else "- | -"
            if th:
                first = th["replica_first_throttle_s"][0]
                throttle = (f"{first:.1f}" if first is not None else "never") + \
                    f" | {th['throttled_replica_s'] / sus['duration_s']:.0%}"  # fmt: skip
            else:
                throttle = "no sustained limit | -"
            tpots = sreqs.sort_values("request_id")["tpot_s"]
            drain = f"{sbat['hours_to_drain']:.2f}" if sbat else "-"
            print(f"{device} {model} | {one['ttft_ms']['mean']:.1f} | {one['tpot_ms']['mean']:.2f} | "
                  f"{weights / (gpu.mem_bw_gbs * 1e9) * 1e3:.2f} | {1e3 / one['tpot_ms']['mean']:.1f} | "
                  f"{req['energy_j']:.1f} | {req['output_len'] / req['energy_j']:.2f} | {battery} | "
                  f"{sus['duration_s']:.0f} | {throttle} | {tpots.iloc[0] * 1e3:.1f} / {tpots.iloc[-1] * 1e3:.1f} | "
                  f"{drain}")  # fmt: skip
    print("MELT (arXiv 2403.12844): no published figure found to compare (docs/edge_sources.md C.1)")
    print(f"wall {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
