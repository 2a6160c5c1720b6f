"""Virtual Token Counter (Sheng et al., "Fairness in Serving Large Language Models", OSDI 2024).

Claim (abstract): VTC, a fair scheduler that counts each client's served tokens, bounds
the service difference between two backlogged clients (within 2x of the tight bound)
while staying work-conserving, and ensures fairness better than the baselines (FCFS among
them), where a client sending more simply gets more.

Here: two tenants share Llama-3.1-8B on one H100 with ShareGPT-shaped requests, a heavy
one at 60 requests/s and a light one at 30/s, together about twice what the engine
serves (~43/s), so both queue. vLLM's FCFS against VTC on the same requests. Headline
metrics: each tenant's share of the service (weighted tokens, input x 1 + output x 2)
while both had requests waiting, Jain's index over those windows, and each tenant's
latency.

    python experiments/vtc.py [--requests 3000] [--heavy 60] [--light 30]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import EngineConfig, Scenario, TenantConfig, WorkloadConfig

CHECK = ["--requests", "900"]  # the small run CI checks (experiments/record.py)


def run(requests: int, heavy: float, light: float) -> dict[str, dict]:
    wl = WorkloadConfig(num_requests=requests, tenants=[TenantConfig(name="heavy", rate=heavy),
                                                        TenantConfig(name="light", rate=light)])  # fmt: skip
    return {name: simulate(Scenario(engine=EngineConfig(scheduler=name), workload=wl)).summary()
            for name in ("vllm", "vtc")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--heavy", type=float, default=60.0)
    ap.add_argument("--light", type=float, default=30.0)
    args = ap.parse_args()
    rows = run(args.requests, args.heavy, args.light)
    print(f"llama-3.1-8b on h100-sxm, {args.requests} requests: heavy tenant {args.heavy}/s, light {args.light}/s")
    print("policy | heavy share | light share | Jain (both waiting) | both waiting s | heavy mean TTFT ms | "
          "light mean TTFT ms | heavy mean E2EL ms | light mean E2EL ms")  # fmt: skip
    for name, s in rows.items():
        f, t = s["fairness"], s["tenants"]
        heavy, light = f["service_share_backlogged"]
        print(f"{name} | {heavy:.2f} | {light:.2f} | {f['jain_backlogged']:.3f} | {f['backlogged_s']:.1f} | "
              f"{t['heavy']['ttft_ms']['mean']:.0f} | {t['light']['ttft_ms']['mean']:.0f} | "
              f"{t['heavy']['e2el_ms']['mean']:.0f} | {t['light']['e2el_ms']['mean']:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
