"""Continuum (Li et al., "Continuum: Efficient and Robust Multi-Turn LLM Agent Scheduling with KV
Cache Time-to-Live", arXiv 2511.02230).

Claim (abstract): pinning an agent's KV cache through its tool calls with a time-to-live,
combined with program-level first-come-first-served, "significantly improves the average
job completion times" on SWE-Bench and BFCL agents with Llama-3.1 8B/70B (the paper's
summary: 1.12x-3.66x lower delay, up to 8x on real workloads).

Here: SWE-Bench-shaped agents on Llama-3.1-8B, one H100: a 4k-token first prompt, 5-30
calls, each adding a ~800-token tool result and answering ~150 tokens, with exponential
tool calls of mean 2 s, so contexts grow to ~20k tokens. vLLM (free the KV at each call's
end, keep it only as evictable prefix cache) against Continuum's two halves and both
together, and against keeping the context in the CPU tier through the tool call instead
of pinning it on the GPU, on the same programs. The TTL is the mean of the tool calls
returned so far (what a deployed system can know); the row with the oracle TTL (each
call's own duration, known before it happens) bounds what a perfect predictor adds.
Headline metric: mean program (job) completion time.

    python experiments/continuum.py [--programs 200] [--rates 0.3,0.4]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import Duration, EngineConfig, LengthDist, ProgramConfig, Scenario, WorkloadConfig
from servesim.sim.policies.continuum import ContinuumOptions

CHECK = ["--programs", "60", "--rates", "0.5"]  # the small run CI checks (experiments/record.py)
MEAN_GAP_S, FIRST, CALLS, NEW, ANSWER, CPU_GIB = 2.0, 4000, (5, 30), 800, 150, 64

# label: (scheduler, its options, engine settings)
POLICIES = {
    "vllm": ("vllm", {}, {}),
    "ttl only": ("continuum", {"program_fcfs": False}, {}),
    "program fcfs only": ("continuum", {"ttl_s": 0.0}, {}),
    "continuum": ("continuum", {}, {}),
    "continuum, oracle TTL": ("continuum", {"predictor": "oracle"}, {}),
    # the context kept in CPU_GIB of CPU memory instead, copied block by block (as vLLM swaps) or in
    # 256-token chunks (as CPU KV stores such as LMCache move them)
    "continuum, cpu offload by block": ("continuum", {"offload": True}, {"swap_space": CPU_GIB}),
    "continuum, cpu offload by 256 tokens": ("continuum", {"offload": True},
                                             {"swap_space": CPU_GIB, "swap_group_blocks": 16}),
}


def workload(programs: int, rate: float, seed: int = 0) -> WorkloadConfig:
    agent = ProgramConfig(calls=LengthDist(dist="uniform", min=CALLS[0], max=CALLS[1]),
                          new_input=LengthDist(mean=NEW, sigma=0.8, max=8000),
                          gap=Duration(mean_s=MEAN_GAP_S))  # fmt: skip
    return WorkloadConfig(num_requests=programs, rate=rate, seed=seed, programs=agent,
                          input=LengthDist(mean=FIRST, sigma=0.3, max=16000),
                          output=LengthDist(mean=ANSWER, sigma=0.8, max=2048))  # fmt: skip


def run(programs: int, rates: list[float]) -> dict[tuple[float, str], dict]:
    out = {}
    for rate in rates:
        for label, (name, opts, settings) in POLICIES.items():
            engine = EngineConfig(scheduler=name, scheduler_options=opts, **settings)
            out[rate, label] = simulate(Scenario(engine=engine, workload=workload(programs, rate))).summary()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=200)
    ap.add_argument("--rates", default="0.3,0.4", help="programs per second, comma list")
    args = ap.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    rows = run(args.programs, rates)
    print(f"llama-3.1-8b on h100-sxm, {args.programs} SWE-Bench-shaped agent programs: first prompt {FIRST} "
          f"tokens, {CALLS[0]}-{CALLS[1]} calls of +{NEW} tokens answering {ANSWER}, tool calls {MEAN_GAP_S:g} s "
          f"mean; TTL: the mean of the tool calls returned so far (oracle: each call's own) plus "
          f"{ContinuumOptions().slack:.0%}; CPU tier {CPU_GIB} GiB")  # fmt: skip
    print("rate/s policy | mean JCT s | vs vllm | P90 JCT s | queued s/program | prefix hit | preemptions | "
          "copy s")  # fmt: skip
    for (rate, label), s in rows.items():
        p, ref = s["programs"], rows[rate, "vllm"]["programs"]["completion_ms"]["mean"]
        jct = p["completion_ms"]
        r = ref / jct["mean"]
        vs = f"{r:.2f}x lower" if round(r, 2) >= 1 else f"{1 / r:.2f}x higher"
        print(f"{rate:g} {label} | {jct['mean'] / 1000:.1f} | {vs} | "
              f"{jct['p90'] / 1000:.1f} | {p['queued_s_mean']:.1f} | {s['kv_cache']['prefix_hit_rate']:.0%} | "
              f"{s['preemptions']} | {s['kv_cache'].get('swap_s', 0.0):.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
