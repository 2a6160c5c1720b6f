"""semi-PD: prefill and decode side by side on one GPU, SMs split between them.

Claim (Hong et al., arXiv 2504.19867): against co-located chunked prefill and against
disaggregation, semi-PD lowers mean end-to-end latency per request 1.27-2.58x and serves
1.55-1.72x more requests within SLO.

Here: Llama-3.1-8B on two H100s (profiled, measured SM-share curves), lognormal prompts
(mean 2,048) and answers (mean 256), Poisson arrivals at rising rates, SLO TTFT 1 s and
TPOT 50 ms. Deployments at equal GPUs: two co-located replicas (vLLM chunked prefill), one
prefill plus one decode replica (disaggregated, KV over NVLink), two semi-PD replicas
(prefill worker starting at half the SMs, SLO-aware controller), priced twice: with the
two workers contending as a GEMM and GEMVs in two green contexts on one H100 measurably
did (the default, perf/sm_share.py), and under the assumption this replaced, each worker at
its share's full speed while the other runs. Headline: mean E2EL and the share of requests
within SLO, each semi-PD E2EL against the co-located and disaggregated ones.

    python experiments/semi_pd.py [--requests 1500] [--rates 8,12,16]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import SLO, LengthDist, PoolConfig, Scenario, SemiPDConfig, WorkloadConfig
from servesim.perf.profiled import load_profile_for
from servesim.perf.sm_share import PairContention

CHECK = ["--requests", "400", "--rates", "16"]  # the small run CI checks (experiments/record.py)
PROMPT, ANSWER, TTFT_MS, TPOT_MS, START = 2048, 256, 1000, 50, 0.5  # START: the prefill worker's first share
MEASURED, ASSUMED = "semi-PD x2", "semi-PD x2 (no contention, assumed)"


def deployments(wl: WorkloadConfig) -> dict[str, Scenario]:
    base = dict(model="llama-3.1-8b", gpu="h100-sxm", workload=wl, slo=SLO(ttft_ms=TTFT_MS, tpot_ms=TPOT_MS))
    return {
        "co-located x2": Scenario(replicas=2, router="least_tokens", **base),
        "disaggregated 1P+1D": Scenario(prefill=PoolConfig(replicas=1), decode=PoolConfig(replicas=1), **base),
        MEASURED: Scenario(replicas=2, router="least_tokens", semi_pd=SemiPDConfig(enabled=True, prefill_sm=START),
                           **base),  # fmt: skip
        ASSUMED: Scenario(replicas=2, router="least_tokens",
                          semi_pd=SemiPDConfig(enabled=True, prefill_sm=START, contention="none"), **base),
    }  # fmt: skip


def than(ref: float, e2el: float) -> str:
    return f"{ref / e2el:.2f}x lower" if round(ref / e2el, 2) >= 1 else f"{e2el / ref:.2f}x higher"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--rates", default="8,12,16")
    a = ap.parse_args()
    pair = PairContention.for_profile(load_profile_for("h100-sxm"))
    print(f"llama-3.1-8b on 2 h100-sxm, {a.requests} requests per rate, prompts mean {PROMPT}, answers mean "
          f"{ANSWER}, SLO TTFT {TTFT_MS / 1e3:g} s / TPOT {TPOT_MS} ms")  # fmt: skip
    hidden = ", ".join(f"{x:.2f}: {pair.hidden(x):.2f}" for x in pair.shares)
    print(f"contention ({pair.source}): share of the shorter kernel hidden, by the GEMM's share of the SMs: "
          f"{hidden}; both busy throughout at the starting split {START:g}: each {pair.slowdown(START, 1.0):.2f}x "
          "slower")  # fmt: skip
    print("rate deployment | mean E2EL s | mean TTFT ms | mean TPOT ms | within SLO | E2EL vs co-located | "
          "vs disaggregated | slowdown prefill/decode")  # fmt: skip
    for rate in [float(r) for r in a.rates.split(",")]:
        wl = WorkloadConfig(num_requests=a.requests, rate=rate, input=LengthDist(mean=PROMPT, sigma=0.8, max=16384),
                            output=LengthDist(mean=ANSWER, sigma=0.8, max=2048))  # fmt: skip
        e2el = {}
        for name, sc in deployments(wl).items():
            s = simulate(sc).summary()
            good = s["good_requests"] / s["completed"] if s["completed"] else 0.0
            e = e2el[name] = s["e2el_ms"]["mean"] / 1e3
            vs = " | ".join(than(e2el[ref], e) if name.startswith("semi") else "-"
                            for ref in ("co-located x2", "disaggregated 1P+1D"))  # fmt: skip
            pd = s.get("semi_pd", {})
            slow = f"{pd['prefill_slowdown']:.2f}x/{pd['decode_slowdown']:.2f}x" if "prefill_slowdown" in pd else "-"
            print(f"{rate:g} {name} | {e:.2f} | {s['ttft_ms']['mean']:.0f} | {s['tpot_ms']['mean']:.1f} | {good:.0%} | "
                  f"{vs} | {slow}")  # fmt: skip


if __name__ == "__main__":
    main()
