"""Autellix (Luo et al., "Autellix: An Efficient Serving Engine for LLM Agents as General Programs",
arXiv 2502.13965).

Claim (abstract): scheduling LLM calls by their program's attained service "improves
throughput of programs by 4-15x at the same latency compared to state-of-the-art systems,
such as vLLM".

Here: single-threaded agent programs (chains) on Llama-3.1-8B, one H100, with a heavy
tail of calls per program (lognormal, mean 6, some over 100), ~1k-token first prompts, ~200
new tokens and ~250 output tokens per call, 0.5 s tool calls. vLLM's FCFS against PLAS
(`autellix`), on the same programs at rising program arrival rates. Headline metrics: mean
and median program completion time at each rate, and the highest rate each keeps under a
latency target (its throughput at that latency).

    python experiments/autellix.py [--programs 1000] [--rates 2,2.6,3,3.5] [--target-s 60]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import Duration, EngineConfig, LengthDist, ProgramConfig, Scenario, WorkloadConfig

CHECK = ["--programs", "1000", "--rates", "3.5"]  # the small run CI checks (experiments/record.py)


def workload(programs: int, rate: float, seed: int = 0) -> WorkloadConfig:
    chain = ProgramConfig(calls=LengthDist(dist="lognormal", mean=6, sigma=1.2, max=200),
                          new_input=LengthDist(mean=200, sigma=0.8, max=4000), gap=Duration(mean_s=0.5))  # fmt: skip
    return WorkloadConfig(num_requests=programs, rate=rate, seed=seed, programs=chain,
                          input=LengthDist(mean=1000, sigma=0.5, max=8000),
                          output=LengthDist(mean=250, sigma=0.9, max=2048))  # fmt: skip


def run(programs: int, rates: list[float]) -> dict[tuple[float, str], dict]:
    return {(rate, name): simulate(Scenario(engine=EngineConfig(scheduler=name),
                                            workload=workload(programs, rate))).summary()["programs"]
            for rate in rates for name in ("vllm", "autellix")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=1000)
    ap.add_argument("--rates", default="2,2.6,3,3.5", help="programs per second, comma list")
    ap.add_argument("--target-s", type=float, default=60.0, help="latency target: mean program completion, s")
    args = ap.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    rows = run(args.programs, rates)
    calls = workload(args.programs, rates[0]).programs.calls
    print(f"llama-3.1-8b on h100-sxm, {args.programs} agent programs (chains, heavy-tailed call counts: "
          f"{calls.dist}, mean {calls.mean:g}, at most {calls.max})")
    print("rate/s policy | mean JCT s | vs vllm | median JCT s | P90 JCT s | queued s/program | median vs vllm")
    for (rate, name), p in rows.items():
        jct, ref = p["completion_ms"], rows[rate, "vllm"]["completion_ms"]
        print(f"{rate:g} {name} | {jct['mean'] / 1000:.1f} | {ref['mean'] / jct['mean']:.2f}x lower | "
              f"{jct['median'] / 1000:.1f} | {jct['p90'] / 1000:.1f} | {p['queued_s_mean']:.1f} | "
              f"{ref['median'] / jct['median']:.2f}x lower")  # fmt: skip
    for name in ("vllm", "autellix"):
        ok = [r for r in rates if rows[r, name]["completion_ms"]["mean"] <= args.target_s * 1000]
        print(f"highest rate with mean JCT <= {args.target_s:g} s, {name}: {max(ok) if ok else 'none'} programs/s")


if __name__ == "__main__":
    main()
