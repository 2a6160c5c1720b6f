"""Sleep-time compute (Lin et al., "Sleep-time Compute: Beyond Inference Scaling at Test-time", arXiv 2504.13171).

Claim (abstract): letting a model "think" offline about a context before queries arrive "can reduce the amount of
test-time compute needed to achieve the same accuracy by ~ 5x on Stateful GSM-Symbolic and Stateful AIME", and "by
amortizing sleep-time compute across related queries about the same context using Multi-Query GSM-Symbolic, we can
decrease the average cost per query by 2.5x".

Here: Qwen2.5-32B (s1-32B's architecture) in bf16 on two H100s (TP 2), one replica, answers a stream of queries
about contexts of 1,000 tokens, each query 50 tokens. From scratch (strategy budget_forced): every query reads its
context and thinks 4,096 tokens. Sleep-time (strategy sleep_time, n = 1, 5 or 10 queries per context): the context
is pre-processed once into 4,096 tokens, then its n queries each read the context and those tokens from the prefix
cache and think 4,096 / 5 = 819 tokens: the paper's ~5x less test-time compute for the same accuracy is taken as
given, not measured (servesim never computes accuracy; its stated accuracy model counts the pre-processed tokens as
thinking, and the s1-32B budget curve it uses for both is assumed: src/servesim/tts/params.toml). What servesim
measures is the rest: the amortised GPU dollars and joules per query, and each query's P50/P90 time to answer,
from its arrival (after its context's pre-processing for sleep-time), under three loads at the same query rate
for every strategy: 0.5 queries/s (below what answering from scratch saturates), 2 queries/s (beyond it), and all
queries at once (every batch full). Stated simplifications (src/servesim/tts/strategies.py): a context's n queries
arrive together as soon as its pre-processing is done, and the pre-processing runs on the same GPUs as the queries
when its context arrives, not in idle time; from scratch, queries about one context do not share its prefix (1,000
tokens of 4,096 computed).

Headline metrics: dollars per query (all calls) and its ratio to answering from scratch, beside the ratio the token
counts predict; test-time dollars per query (the queries' own calls); kilojoules per query; query P50/P90 and the
pre-processing's P90.

    python experiments/sleep_time.py [--queries 2000] [--per-context 1,5,10] [--rates 0.5,2,inf] [--budget 4096]
        [--test-ratio 5] [--context 1000] [--query 50]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, Scenario, StrategyConfig, WorkloadConfig
from servesim.tts.accuracy import get_params
from servesim.tts.planner import Judges, accuracy_of

CHECK = ["--queries", "1000"]  # the small run CI checks (experiments/record.py)

MODEL, GPU, TP = "qwen2.5-32b", "h100-sxm", 2
ACCURACY = ("s1-32b", "aime-2024")


def _fixed(tokens: int) -> LengthDist:
    return LengthDist(dist="fixed", mean=tokens, max=tokens)


def run(n: int | None, rate: float, queries: int, budget: int, answer: int, context: int, query: int) -> dict:
    """One strategy serving `queries` queries at `rate` queries/s: from scratch (n None) or sleep-time with n queries
    per context (contexts at rate / n)."""
    if n is None:
        strategy = StrategyConfig(name="budget_forced", budget=budget)
        wl = WorkloadConfig(num_requests=queries, rate=rate, input=_fixed(context + query), output=_fixed(budget),
                            strategy=strategy)  # fmt: skip
    else:
        strategy = StrategyConfig(name="sleep_time", n=n, budget=budget, revise_tokens=query)
        wl = WorkloadConfig(num_requests=queries // n, rate=rate / n, input=_fixed(context), output=_fixed(answer),
                            strategy=strategy)  # fmt: skip
    res = simulate(Scenario(model=MODEL, gpu=GPU, engine=EngineConfig(tp=TP), workload=wl))
    df, cost = res.requests, res.summary()["cost"]
    served = len(df) - (0 if n is None else df.program.nunique())  # queries (sleep-time: all but the pre-processing)
    pre = df.groupby("program").request_id.transform("min") == df.request_id
    asked = df if n is None else df[~pre]
    return {
        "strategy": strategy, "queries": served,
        "test_tokens": float(asked.output_len.sum()) / served,
        "sleep_tokens": float(df[pre].output_len.sum()) / served if n is not None else 0.0,
        "usd": float(df.cost_usd.sum()) / served, "test_usd": float(asked.cost_usd.sum()) / served,
        "j": float(df.energy_j.sum()) / served,
        # a query's time from its arrival: sleep-time's arrive when their context's pre-processing is done
        "p50_s": float(np.percentile(asked.e2el_s, 50)), "p90_s": float(np.percentile(asked.e2el_s, 90)),
        "pre_p90_s": float(np.percentile(df[pre].e2el_s, 90)) if n is not None else None,
        "usd_per_hour": cost["total_usd"] / cost["gpu_hours"] * cost["gpus"],  # the replica's GPUs
        "span_s": float(df.finish_s.max()), "batch": res.summary()["batch_size"]["mean"],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=2000, help="queries per row (a multiple of every --per-context)")
    ap.add_argument("--per-context", default="1,5,10", help="sleep-time's queries per context")
    ap.add_argument("--rates", default="0.5,2,inf", help="queries per second (inf: all at once)")
    ap.add_argument("--budget", type=int, default=4096, help="thinking tokens: from scratch per query, sleep-time per "
                    "context")  # fmt: skip
    ap.add_argument("--test-ratio", type=float, default=5.0, help="a sleep-time query thinks budget / this (the "
                    "paper's ~5x, taken as given)")  # fmt: skip
    ap.add_argument("--context", type=int, default=1000, help="context tokens")
    ap.add_argument("--query", type=int, default=50, help="query tokens")
    args = ap.parse_args()
    t0 = time.time()
    per = [int(x) for x in args.per_context.split(",")]
    rates = [float(x) for x in args.rates.split(",")]
    answer = max(1, round(args.budget / args.test_ratio))
    p = get_params(*ACCURACY)
    acc = accuracy_of(StrategyConfig(name="budget_forced", budget=args.budget), p, Judges())

    print(f"{MODEL} (s1-32B's architecture) bf16 on {TP} x {GPU} (TP {TP}), 1 replica; {args.queries} queries per row "
          f"at the same query rate for every strategy; contexts {args.context} tokens, queries {args.query} tokens; "
          f"thinking budget {args.budget} tokens: from scratch per query (budget_forced), sleep-time per context "
          f"(sleep_time), whose queries then think {answer} tokens ({args.budget / answer:.1f}x fewer: the paper's ~5x "
          f"at the same accuracy, taken as given)")  # fmt: skip
    print(f"stated accuracy (assumed s1-32b/aime-2024 budget curve, pre-processed tokens counted as thinking): "
          f"{100 * acc:.1f}% for every row")  # fmt: skip
    print("load strategy | queries per context | test-time tokens per query | sleep-time tokens per query | "
          "$ per query | from scratch $ / this | tokens predict | test-time $ per query | kJ per query | "
          "query P50 s | query P90 s | pre-processing P90 s")  # fmt: skip
    results = {}
    for rate in rates:
        load = "at once" if math.isinf(rate) else f"{rate:g}/s"
        base = None
        for n in [None, *per]:
            r = run(n, rate, args.queries, args.budget, answer, args.context, args.query)
            results[load, n] = r
            base = base or r
            name = "from scratch" if n is None else f"sleep-time x{n}"  # (x: queries per context)
            tokens = base["test_tokens"] / (r["test_tokens"] + r["sleep_tokens"])
            pre = "-" if r["pre_p90_s"] is None else f"{r['pre_p90_s']:.1f}"
            print(f"{load} {name} | {n or 1} | {r['test_tokens']:.0f} | {r['sleep_tokens']:.0f} | {r['usd']:.5f} | "
                  f"{base['usd'] / r['usd']:.2f} | {tokens:.2f} | {r['test_usd']:.5f} | {r['j'] / 1e3:.2f} | "
                  f"{r['p50_s']:.1f} | {r['p90_s']:.1f} | {pre}")  # fmt: skip

    print()
    print("Against the paper (its cost counts tokens; servesim's prices the GPU time the calls ran in):")
    most = per[-1]
    loads = list(dict.fromkeys(load for load, _ in results))
    if "at once" in loads:
        b = results["at once", None]
        gains = ", ".join(f"x{n} {b['usd'] / results['at once', n]['usd']:.2f}" for n in per)
        print(f"- all at once, every batch full, dollars follow GPU work: $ per query from scratch over sleep-time's, "
              f"{gains} (the paper: a 2.5x lower average cost per query by amortising over a context's "
              "queries)")  # fmt: skip
    streams = [load for load in loads if load != "at once"]
    if streams:
        b, s = results[streams[0], None], results[streams[0], most]
        rate = float(streams[0].removesuffix("/s"))
        print(f"- at {streams[0]}, the GPUs hardly ever idle under either strategy (mean batch {b['batch']:.1f} from "
              f"scratch, {s['batch']:.1f} with sleep-time x{most}), so whatever its tokens a query costs the GPUs' "
              f"price times the run's span over its queries (about ${b['usd_per_hour'] / 3600 / rate:.5f}, their "
              f"price over the query rate): ${b['usd']:.5f} from scratch (span {b['span_s']:.0f} s), ${s['usd']:.5f} "
              f"with sleep-time x{most} (span {s['span_s']:.0f} s: fewer Poisson arrivals, longer by chance); "
              f"sleep-time buys time there (query P50 {b['p50_s']:.1f} s -> {s['p50_s']:.1f} s), not "
              "dollars")  # fmt: skip
    if len(streams) > 1:
        b, s = results[streams[-1], None], results[streams[-1], most]
        print(f"- at {streams[-1]}, answering from scratch is past what the GPUs serve and queries queue (P90 "
              f"{b['p90_s']:.0f} s), sleep-time x{most} keeps up (P90 {s['p90_s']:.1f} s; pre-processing P90 "
              f"{s['pre_p90_s']:.0f} s): the saving is capacity, {b['usd'] / s['usd']:.2f}x less per query; a query "
              "asked as its context arrives would also wait for the pre-processing")  # fmt: skip
    if 1 in per:
        load = loads[-1]
        b, s = results[load, None], results[load, 1]
        print(f"- {load}, 1 query per context: sleep-time costs {s['usd'] / b['usd']:.2f}x as much as from scratch "
              f"(tokens predict {(s['test_tokens'] + s['sleep_tokens']) / b['test_tokens']:.2f}x): the pre-processing "
              f"is priced for one query, and the query's {answer} tokens are decoded over the context and the "
              f"{args.budget} pre-processed tokens (more attention and KV cache per token)")  # fmt: skip
    print(f"wall time {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
