"""Large Language Monkeys (Brown et al., "Large Language Monkeys: Scaling Inference Compute with Repeated Sampling",
arXiv 2407.21787).

Claim (abstract): coverage, the fraction of problems solved by any attempt, "scales with the number of samples
over four orders of magnitude", often log-linearly; on SWE-bench Lite the fraction of issues solved with
DeepSeek-Coder-V2-Instruct "increases from 15.9% with one sample to 56% with 250 samples", and "amplifying the
cheaper DeepSeek model with five samples is more cost-effective and solves more issues than paying a premium for
one sample from GPT-4o or Claude 3.5 Sonnet" (at API prices).

Here, accuracy comes from servesim's stated accuracy model (src/servesim/tts/params.toml; docs/test_time.md),
never from the simulation; the simulation prices the samples on GPUs under load.

(a) The coverage curve: DeepSeek-Coder-V2-Instruct's fitted coverage on SWE-bench Lite at k = 1, 5, 25, 100, 250
samples (best-of-k with an exact checker, the issue's unit tests as in the paper: no verifier calls), beside what
k samples of each issue cost served. Stand-in: DeepSeek-Coder-V2-Instruct (236B MoE, 21B active, DeepSeek-V2
architecture) is not in servesim's catalog; it is served as deepseek-v3 (671B MoE, 37B active: the same MLA + MoE
design) in fp8 on 8 H200s (TP 8), one replica. Its fp8 weights (671 GB) and per-token compute are within 2x of
DeepSeek-Coder-V2's in bf16 (472 GB), so the dollars are of the right order, if anything high. An attempt is one
call (assumed): an 8,000-token prompt (the issue and retrieved code) shared by its samples through the prefix
cache, and a lognormal answer of mean 1,000 tokens (the paper's Moatless Tools agent makes several calls per
attempt). Issues arrive at 0.01/s (Poisson): the replica runs iterations about three quarters of the time at
k = 250 and idles most of it at k = 1 (the fleet's dollars per issue count that idle time, the GPU dollars not).

(b) The cost crossover against a larger model at equal dollars, on AIME 2024, where the accuracy parameters fit a
7B and a 32B model of one family (DeepSeek-R1-Distill-Qwen, pass@1 and cons@64 from the DeepSeek-R1 table; M = 4
wrong answers assumed): the 7B (served as qwen2.5-7b, its architecture, on one H100) drawing k samples, against
the 32B (qwen2.5-32b on two H100s, TP 2; bf16 does not fit one) drawing 1 or a few. AIME has no checker, so the
accuracy that counts is the majority vote (maj@k); coverage is printed beside it for an exact checker, and the
AIME fits imply it only through the assumed M (docs/test_time.md). Prompts 200 tokens, reasoning traces lognormal
of mean 8,000 tokens (assumed, the same for both models). Two loads: a stream of 0.02 questions/s, and an offline
batch of 256 questions sent at once (every batch full: dollars follow tokens). In the stream, a row counts at
equal dollars only if it answers within a P90 of 600 s: one H100 does not keep up with the 7B's 64 samples of
0.02 questions/s, and an overloaded row's dollars are those of full batches.

Headline metrics: coverage or maj@k; GPU dollars per question (the iterations its calls ran in, shared among
their tokens), the fleet's dollars per question at that rate (idle time included), joules per question, P50/P90
time to the final answer; and for (b), the most samples the 7B affords for the 32B's dollars per question.

    python experiments/monkeys.py [--samples 1,5,25,100,250] [--rate 0.01] [--questions 100]
        [--aime-samples 1,2,4,8,16,32,64] [--aime-large 1,2,4,8] [--aime-rate 0.02] [--aime-questions 100]
        [--aime-batch 256] [--aime-p90 600]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from servesim.config import EngineConfig, LengthDist, Scenario, StrategyConfig, WorkloadConfig
from servesim.tts.accuracy import get_params
from servesim.tts.planner import evaluate

# the small run CI checks (experiments/record.py)
CHECK = ["--questions", "20", "--samples", "1,25,250", "--aime-samples", "1,8,32", "--aime-large", "1,4",
         "--aime-questions", "20", "--aime-batch", "64"]  # fmt: skip

SWE = ("deepseek-coder-v2-instruct", "swe-bench-lite")
SWE_SERVED = dict(model="deepseek-v3", gpu="h200", tp=8, dtype="fp8")
SWE_PROMPT, SWE_ANSWER = 8000, 1000
AIME = "aime-2024"
# (label, served catalog model, accuracy parameters' name, TP): both bf16 on H100s
AIME_MODELS = (("7B", "qwen2.5-7b", "deepseek-r1-distill-qwen-7b", 1),
               ("32B", "qwen2.5-32b", "deepseek-r1-distill-qwen-32b", 2))  # fmt: skip
AIME_PROMPT, AIME_ANSWER, AIME_MAX = 200, 8000, 30000


def _ks(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def coverage_rows(samples: list[int], rate: float, questions: int) -> list[dict]:
    """(a): DeepSeek-Coder-V2-Instruct's fitted coverage at each k, and best_of_n n=k served on the stand-in."""
    d = get_params(*SWE).difficulty
    wl = WorkloadConfig(input=LengthDist(dist="fixed", mean=SWE_PROMPT, max=SWE_PROMPT),
                        output=LengthDist(dist="lognormal", mean=SWE_ANSWER, sigma=0.5, max=4096))  # fmt: skip
    base = Scenario(gpu=SWE_SERVED["gpu"], engine=EngineConfig(tp=SWE_SERVED["tp"], dtype=SWE_SERVED["dtype"]),
                    workload=wl)  # fmt: skip
    rows = []
    for k in samples:
        row = evaluate(base, SWE_SERVED["model"], StrategyConfig(name="best_of_n", n=k), rate, questions)
        rows.append({**row, "k": k, "coverage": float(d.coverage(k))})
    return rows


def aime_rows(samples: list[int], large: list[int], rate: float, questions: int) -> list[dict]:
    """(b): each model's majority vote and coverage at k samples, served at `rate` questions/s (inf: at once)."""
    wl = WorkloadConfig(input=LengthDist(dist="fixed", mean=AIME_PROMPT, max=AIME_PROMPT),
                        output=LengthDist(dist="lognormal", mean=AIME_ANSWER, sigma=0.5, max=AIME_MAX))  # fmt: skip
    rows = []
    for (size, served, named, tp), ks in zip(AIME_MODELS, (samples, large), strict=True):
        p = get_params(named, AIME)
        base = Scenario(gpu="h100-sxm", engine=EngineConfig(tp=tp), workload=wl)
        for k in ks:
            row = evaluate(base, served, StrategyConfig(name="majority_vote", n=k), rate, questions)
            rows.append({**row, "size": size, "k": k, "maj": float(p.difficulty.majority_vote(k, p.wrong_answers)),
                         "coverage": float(p.difficulty.coverage(k))})  # fmt: skip
    return rows


def crossover(rows: list[dict], load: str, slo_s: float = math.inf) -> list[str]:
    """What the 7B buys for the 32B's dollars per question (answering within a P90 of `slo_s`), and where its
    vote first reaches the 32B's pass@1."""
    small = [r for r in rows if r["size"] == "7B"]
    large = [r for r in rows if r["size"] == "32B"]
    out, said = [], None
    for big in large:
        fits = [r for r in small if r["usd_per_question"] <= big["usd_per_question"] and r["answer_p90_s"] <= slo_s]
        if not fits:
            out.append(f"{load}: no 7B row costs at most 32B x {big['k']}'s ${big['usd_per_question']:.4f} per "
                       "question within the P90 bound")  # fmt: skip
            continue
        best = max(fits, key=lambda r: r["k"])
        if best is said:  # (the same 7B row as for fewer 32B samples: said already)
            continue
        said = best
        nxt = small[small.index(best) + 1] if best is not small[-1] else None
        why = ""
        if nxt is not None and nxt["usd_per_question"] > big["usd_per_question"]:
            why = f"; x {nxt['k']} costs ${nxt['usd_per_question']:.4f}"
        elif nxt is not None:
            why = f"; x {nxt['k']}'s P90 is {nxt['answer_p90_s']:.0f} s"
        what = "pass@1" if big["k"] == 1 else f"maj@{big['k']}"
        out.append(f"{load}: at equal $ per question, 7B x {best['k']} samples reaches maj@{best['k']} "
                   f"{100 * best['maj']:.1f}% (coverage {100 * best['coverage']:.1f}% with an exact checker) for "
                   f"${best['usd_per_question']:.4f}, against {what} {100 * big['maj']:.1f}% for 32B x {big['k']} at "
                   f"${big['usd_per_question']:.4f}{why}")  # fmt: skip
    one = next((r for r in large if r["k"] == 1), None)
    if one is not None:
        beats = [r for r in small if r["maj"] >= one["maj"]]
        if beats:
            r = beats[0]
            out.append(f"{load}: the 7B's vote first reaches the 32B's pass@1 ({100 * one['maj']:.1f}%) at "
                       f"k = {r['k']} ({100 * r['maj']:.1f}%), for ${r['usd_per_question']:.4f} per question: "
                       f"{r['usd_per_question'] / one['usd_per_question']:.2f}x the 32B x 1's "
                       f"${one['usd_per_question']:.4f}")  # fmt: skip
        else:
            out.append(f"{load}: the 7B's vote does not reach the 32B's pass@1 ({100 * one['maj']:.1f}%) in this grid")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", default="1,5,25,100,250", help="(a) samples per SWE-bench Lite issue")
    ap.add_argument("--rate", type=float, default=0.01, help="(a) issues per second")
    ap.add_argument("--questions", type=int, default=100, help="(a) issues simulated per row")
    ap.add_argument("--aime-samples", default="1,2,4,8,16,32,64", help="(b) the 7B's samples per question")
    ap.add_argument("--aime-large", default="1,2,4,8", help="(b) the 32B's samples per question")
    ap.add_argument("--aime-rate", type=float, default=0.02, help="(b) questions per second of the stream")
    ap.add_argument("--aime-questions", type=int, default=100, help="(b) questions of the stream")
    ap.add_argument("--aime-batch", type=int, default=256, help="(b) questions of the offline batch, sent at once")
    ap.add_argument("--aime-p90", type=float, default=600.0, help="(b) the stream's bound on P90 time to answer, s")
    args = ap.parse_args()
    t0 = time.time()
    samples, small, large = _ks(args.samples), _ks(args.aime_samples), _ks(args.aime_large)

    print(f"(a) coverage against samples, SWE-bench Lite: accuracy = {SWE[0]}'s fitted coverage (cited: 15.9% at 1 "
          f"sample, 56% at 250); served as {SWE_SERVED['model']} (stand-in, 671B MoE vs 236B) in "
          f"{SWE_SERVED['dtype']} on {SWE_SERVED['tp']} x {SWE_SERVED['gpu']} (TP {SWE_SERVED['tp']}), 1 replica; "
          f"{args.questions} issues at {args.rate}/s; {SWE_PROMPT}-token prompt, answers lognormal mean "
          f"{SWE_ANSWER} tokens; best_of_n, no verifier (the unit tests check)")  # fmt: skip
    print("samples k | coverage % | points per 10x k | output tokens per issue | $ per issue | x k=1's $ | "
          "fleet $ per issue | kJ per issue | $ per issue solved | answer P50 s | answer P90 s")  # fmt: skip
    prev = first = None
    for r in coverage_rows(samples, args.rate, args.questions):
        first = first or r
        slope = "-"
        if prev is not None:
            slope = f"{100 * (r['coverage'] - prev['coverage']) / math.log10(r['k'] / prev['k']):.1f}"
        print(f"{r['k']} | {100 * r['coverage']:.1f} | {slope} | {r['tokens_per_question']:.0f} | "
              f"{r['usd_per_question']:.4f} | {r['usd_per_question'] / first['usd_per_question']:.2f} | "
              f"{r['fleet_usd_per_question']:.4f} | {r['j_per_question'] / 1e3:.0f} | "
              f"{r['usd_per_question'] / r['coverage']:.3f} | {r['answer_p50_s']:.1f} | "
              f"{r['answer_p90_s']:.1f}")  # fmt: skip
        prev = r

    print()
    print(f"(b) cost crossover at equal $, AIME 2024: 7B = {AIME_MODELS[0][2]} served as {AIME_MODELS[0][1]} on 1 x "
          f"h100-sxm; 32B = {AIME_MODELS[1][2]} served as {AIME_MODELS[1][1]} on 2 x h100-sxm (TP 2); bf16, 1 replica "
          f"each; {AIME_PROMPT}-token questions, reasoning lognormal mean {AIME_ANSWER} tokens (at most {AIME_MAX}); "
          f"accuracy: cited pass@1 55.5% and 72.6%, cons@64 83.3% both, M = 4 wrong answers assumed; loads: a stream "
          f"of {args.aime_questions} questions at {args.aime_rate}/s (Poisson; equal-$ rows must answer within a P90 "
          f"of {args.aime_p90:.0f} s), and a batch of {args.aime_batch} questions sent at once")  # fmt: skip
    loads = ((f"{args.aime_rate}/s", args.aime_rate, args.aime_questions, args.aime_p90),
             (f"batch of {args.aime_batch}", math.inf, args.aime_batch, math.inf))  # fmt: skip
    statements = []
    print("load model x k | maj@k % | coverage % | output tokens per question | $ per question | "
          "fleet $ per question | kJ per question | answer P50 s | answer P90 s")  # fmt: skip
    for load, rate, questions, slo in loads:
        rows = aime_rows(small, large, rate, questions)
        for r in rows:
            print(f"{load} {r['size']} x {r['k']} | {100 * r['maj']:.1f} | {100 * r['coverage']:.1f} | "
                  f"{r['tokens_per_question']:.0f} | {r['usd_per_question']:.4f} | {r['fleet_usd_per_question']:.4f} | "
                  f"{r['j_per_question'] / 1e3:.1f} | {r['answer_p50_s']:.0f} | {r['answer_p90_s']:.0f}")  # fmt: skip
        statements += crossover(rows, load, slo)
    print()
    for line in statements:
        print(line)
    print(f"wall time {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
