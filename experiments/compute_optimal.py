"""Compute-optimal test-time compute by difficulty (Snell et al., "Scaling LLM Test-Time Compute Optimally can be
More Effective than Scaling Model Parameters", arXiv 2408.03314).

Claim (abstract): "the effectiveness of different approaches to scaling test-time compute critically varies
depending on the difficulty of the prompt"; allocating test-time compute adaptively per prompt ("compute-optimal"
scaling), "we can improve the efficiency of test-time compute scaling by more than 4x compared to a best-of-N
baseline".

Here: the stated accuracy model's Beta difficulty of one fitted (model, benchmark), by default
DeepSeek-R1-Distill-Qwen-7B on AIME 2024 (src/servesim/tts/params.toml: fitted to pass@1 55.5% and cons@64
83.3%, wrong_answers = 4 assumed), with majority vote. The questions are split into equal-mass difficulty bins by
their per-attempt success probability p, drawn from that Beta (oracle bins: each question's p is known, as
Snell et al.'s oracle difficulty). A bin's accuracy with k samples is the vote's accuracy averaged over its p.
The adaptive allocation is greedy, stated: every question starts with one sample, and the extra samples go one
step at a time to the bin whose next step on its upper concave hull of accuracy against k (k from `--ks`) buys
the most accuracy per extra sample, so a bin where votes get worse with k (p below 1 / (wrong_answers + 1),
hopeless for a vote) keeps its one sample; the last step is taken for part of a bin's questions, to land on the
target accuracy exactly. Uniform majority vote with N samples per question is the baseline: the adaptive
allocation's mean samples per question at the uniform's accuracy give the saving in samples.

Serving: each sample count k is simulated on one H100 serving Qwen2.5-7B (the distill's architecture) with
long answers (questions of 200 tokens, answers lognormal, mean 6,000 tokens), at `--load` (70%) of its own
saturated question rate; the adaptive allocation is served as a weighted combination, stated: each k it uses
is simulated on its own at that load (as if the questions given k had replicas of their own), its $ per question
weighted by the share of questions given k, and its P90 time to answer taken over the pooled answer times,
weighted the same way. $ per question is the GPU cost of the iterations its calls ran in (idle excluded).

    python experiments/compute_optimal.py [--bins 5,20,200] [--uniform 4,8,16,32,64] [--model qwen2.5-7b]
        [--accuracy-model deepseek-r1-distill-qwen-7b] [--benchmark aime-2024] [--gpu h100-sxm] [--load 0.7]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import stats

from servesim.api import simulate
from servesim.config import LengthDist, Scenario, StrategyConfig, WorkloadConfig
from servesim.tts.accuracy import Difficulty, get_params, plurality_win
from servesim.tts.planner import Judges, accuracy_of, saturated

CHECK = ["--bins", "5", "--uniform", "4,16", "--ks", "1,2,3,4,6,8,12,16,24,32", "--output-mean", "2000",
         "--samples-per-run", "128"]  # the small run CI checks (experiments/record.py)

KS = "1,2,3,4,5,6,8,10,12,16,20,24,32,40,48,64,80,96,128"
QUESTION = 200


def bins_of(d: Difficulty, bins: int, points: int = 400) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """Equal-mass bins of the solvable questions by p (Beta quantiles), each as `points` p at its quantile
    midpoints, with their weights and p ranges; the unsolvable, if any, as one more bin of p = 0."""
    edges = np.arange(bins + 1) / bins
    u = (np.arange(bins)[:, None] + (np.arange(points)[None, :] + 0.5) / points) / bins
    p = stats.beta.ppf(u, d.alpha, d.beta)
    w = np.full(bins, (1 - d.unsolvable) / bins)
    ranges = [(float(stats.beta.ppf(lo, d.alpha, d.beta)), float(stats.beta.ppf(hi, d.alpha, d.beta)))
              for lo, hi in zip(edges, edges[1:], strict=False)]  # fmt: skip
    if d.unsolvable > 0:
        p, w = np.vstack([np.zeros((1, points)), p]), np.concatenate([[d.unsolvable], w])
        ranges = [(0.0, 0.0), *ranges]
    return p, w, ranges


def accuracy_given_p(strategy: str, k: int, p: np.ndarray, wrong_answers: float, judges: Judges,
                     verifier: bool) -> np.ndarray:  # fmt: skip
    """A question's chance of a right final answer with k samples, given its p (the stated model's per-p form)."""
    if strategy == "majority_vote":
        votes = stats.binom.pmf(np.arange(k + 1), k, p[..., None])
        return votes @ plurality_win(k, wrong_answers)
    if not verifier:  # best-of-k with an exact checker: coverage
        return 1 - (1 - p) ** k
    accept = p * judges.tpr + (1 - p) * judges.fpr
    none = (1 - accept) ** k
    picked = np.divide(p * judges.tpr, accept, out=np.zeros_like(p), where=accept > 0)
    fallback = np.divide(p * (1 - judges.tpr), 1 - accept, out=np.zeros_like(p), where=accept < 1)
    return (1 - none) * picked + none * fallback


def hull(ks: list[int], acc: np.ndarray) -> list[int]:
    """Indices of the upper concave hull of (k, acc) from the first k on."""
    h = [0]
    for i in range(1, len(ks)):
        while len(h) >= 2:
            a, b = h[-2], h[-1]
            if (acc[b] - acc[a]) * (ks[i] - ks[a]) <= (acc[i] - acc[a]) * (ks[b] - ks[a]):
                h.pop()
            else:
                break
        h.append(i)
    return h


def greedy_steps(ks: list[int], acc: np.ndarray, w: np.ndarray) -> list[tuple[float, int, int, int]]:
    """Every bin's hull steps that gain accuracy, best accuracy per extra sample first: (slope, bin, from, to)."""
    steps = []
    for b in range(len(w)):
        h = hull(ks, acc[b])
        for i, j in zip(h, h[1:], strict=False):
            slope = (acc[b, j] - acc[b, i]) / (ks[j] - ks[i])
            if slope > 1e-12:
                steps.append((slope, b, i, j))
    return sorted(steps, key=lambda s: (-s[0], s[1], s[2]))


def allocate(ks: list[int], acc: np.ndarray, w: np.ndarray, target: float) -> tuple[float, float, list[dict]]:
    """The greedy allocation reaching `target` accuracy: mean samples per question, accuracy, and per bin the
    share of its questions at each k."""
    at = [0] * len(w)
    mix: list[dict[int, float]] = [{ks[0]: 1.0} for _ in w]
    reached, samples = float(w @ acc[:, 0]), float(ks[0])
    for _, b, i, j in greedy_steps(ks, acc, w):
        if reached >= target - 1e-12:
            break
        assert at[b] == i
        gain = w[b] * (acc[b, j] - acc[b, i])
        part = min(1.0, (target - reached) / gain)
        reached += part * gain
        samples += part * w[b] * (ks[j] - ks[i])
        mix[b] = {ks[i]: 1 - part, ks[j]: part} if part < 1 else {ks[j]: 1.0}
        at[b] = j
    return samples, reached, mix


def serve(gpu: str, model: str, c: StrategyConfig, output: LengthDist, load: float, per_run: int,
          min_q: int) -> dict:  # fmt: skip
    """One strategy (its n samples): its saturated question rate, then its $ per question and answer times at
    `load` of it."""
    questions = max(min_q, per_run // c.n)
    base = Scenario(gpu=gpu, workload=WorkloadConfig(output=output, input=LengthDist(dist="fixed", mean=QUESTION,
                                                                                     max=QUESTION)))  # fmt: skip
    capacity, _ = saturated(base, model, c, questions)
    wl = base.workload.model_copy(update={"strategy": c, "num_requests": questions, "rate": load * capacity})
    df = simulate(base.model_copy(update={"model": model, "workload": wl})).requests
    per = df.groupby("program")
    times = (per.finish_s.max() - per.arrival_s.min()).to_numpy()
    return {"usd": float(df.cost_usd.sum()) / len(times), "times": times, "capacity_per_min": 60 * capacity}


def mixed(served: dict[int, dict], shares: dict[int, float]) -> tuple[float, float]:
    """$ per question and P90 answer time of questions given k with the shares `shares` (summing to 1)."""
    usd = sum(share * served[k]["usd"] for k, share in shares.items())
    times = np.concatenate([served[k]["times"] for k in shares])
    weights = np.concatenate([np.full(len(served[k]["times"]), s / len(served[k]["times"])) for k, s in shares.items()])
    order = np.argsort(times)
    cum = np.cumsum(weights[order])
    return usd, float(times[order][np.searchsorted(cum, 0.9 * cum[-1])])


def label(mix: list[dict]) -> str:
    """Each bin's mean samples per question, hardest first (its range, beyond 20 bins)."""
    means = [sum(k * s for k, s in m.items()) for m in mix]
    return "/".join(f"{x:.3g}" for x in means) if len(means) <= 20 else f"{min(means):.3g} to {max(means):.3g}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-7b", help="the served catalog model")
    ap.add_argument("--accuracy-model", default="deepseek-r1-distill-qwen-7b", help="whose accuracy parameters")
    ap.add_argument("--benchmark", default="aime-2024")
    ap.add_argument("--strategy", default="majority_vote", choices=["majority_vote", "best_of_n"])
    ap.add_argument("--verifier", action="store_true", help="best_of_n: a verifier (Judges' tpr, fpr) picks")
    ap.add_argument("--bins", default="5,20,200", help="difficulty bins, equal mass; one block of rows each")
    ap.add_argument("--uniform", default="4,8,16,32,64", help="the uniform baseline's samples per question")
    ap.add_argument("--ks", default=KS, help="the sample counts a bin may be given")
    ap.add_argument("--gpu", default="h100-sxm")
    ap.add_argument("--load", type=float, default=0.7, help="fraction of each k's saturated question rate")
    ap.add_argument("--output-mean", type=float, default=6000.0, help="answer tokens (lognormal mean)")
    ap.add_argument("--output-sigma", type=float, default=0.5)
    ap.add_argument("--output-max", type=int, default=16384)
    ap.add_argument("--samples-per-run", type=int, default=1024, help="questions simulated per k: this / k ...")
    ap.add_argument("--min-questions", type=int, default=24, help="... but at least this many")
    args = ap.parse_args()
    t0 = time.time()
    ks = sorted({int(x) for x in args.ks.split(",")})
    uniform = [int(x) for x in args.uniform.split(",")]
    if not set(uniform) <= set(ks) or ks[0] != 1:
        raise SystemExit("--ks must start at 1 and hold every --uniform N")
    params, judges = get_params(args.accuracy_model, args.benchmark), Judges()
    d = params.difficulty
    if d is None:
        raise SystemExit(f"{args.accuracy_model}/{args.benchmark} has no difficulty table")
    strategy = StrategyConfig(name=args.strategy, n=1, **({"verifier": True} if args.verifier else {}))
    output = LengthDist(dist="lognormal", mean=args.output_mean, sigma=args.output_sigma, min=256, max=args.output_max)

    print(f"{args.strategy}{' +verifier' if args.verifier else ''} on {args.accuracy_model}/{args.benchmark}: "
          f"difficulty Beta(alpha {d.alpha:.4g}, beta {d.beta:.4g}), unsolvable {d.unsolvable:g}, wrong_answers "
          f"{params.wrong_answers:g}; oracle equal-mass bins of p; a bin may get k in {{{args.ks}}}")  # fmt: skip
    print(f"served: {args.model} on one {args.gpu}, questions of {QUESTION} tokens, answers lognormal mean "
          f"{args.output_mean:.0f} sigma {args.output_sigma} in [256, {args.output_max}] tokens, each k at "
          f"{args.load:.0%} of its saturated question rate, max({args.min_questions}, {args.samples_per_run} / k) "
          f"questions; adaptive: each k's figures weighted by its share of questions")  # fmt: skip

    served: dict[int, dict] = {}

    def figures(shares: dict[int, float]) -> tuple[float, float]:
        for k in shares:
            if k not in served:
                c = strategy.model_copy(update={"n": k})
                served[k] = serve(args.gpu, args.model, c, output, args.load, args.samples_per_run, args.min_questions)
        return mixed(served, shares)

    headline = []
    for nb in [int(x) for x in args.bins.split(",")]:
        p, w, ranges = bins_of(d, nb)
        acc = np.array([[accuracy_given_p(args.strategy, k, p[b], params.wrong_answers, judges, args.verifier).mean()
                         for k in ks] for b in range(len(w))])  # fmt: skip
        uni = w @ acc  # uniform k: the bins' accuracies weighted
        stated = [accuracy_of(strategy.model_copy(update={"n": k}), params, judges) for k in ks]
        gap = max(abs(a - s) for a, s in zip(uni, stated, strict=True))
        print(f"{nb} bins: uniform accuracy over the bins vs the accuracy model's (accuracy.py), largest gap {gap:.1e}")
        if nb == int(args.bins.split(",")[0]):
            show = [k for k in (1, 4, 16, 64) if k in ks]
            print("bin (hardest first) | p from | p to | share | " + " | ".join(f"accuracy k={k}" for k in show))
            for b in range(len(w)):
                print(f"bin {b + 1} of {nb} | {ranges[b][0]:.3f} | {ranges[b][1]:.3f} | {w[b]:.0%} | "
                      + " | ".join(f"{acc[b, ks.index(k)]:.1%}" for k in show))  # fmt: skip
        print("uniform N, bins | accuracy | adaptive samples per question (per bin, hardest first) | mean | "
              "samples: x fewer | uniform $ per 1,000 questions | adaptive $ | $: x less | uniform P90 answer s | "
              "adaptive P90 s")  # fmt: skip
        for n in uniform:
            target = float(uni[ks.index(n)])
            samples, reached, mix = allocate(ks, acc, w, target)
            shares: dict[int, float] = {}
            for b, m in enumerate(mix):
                for k, s in m.items():
                    shares[k] = shares.get(k, 0.0) + w[b] * s
            u_usd, u_p90 = figures({n: 1.0})
            a_usd, a_p90 = figures(shares)
            print(f"N={n}, {nb} bins | {target:.1%} | {label(mix)} | {samples:.2f} | {n / samples:.2f}x | "
                  f"{1000 * u_usd:.2f} | {1000 * a_usd:.2f} | {u_usd / a_usd:.2f}x | {u_p90:.0f} | "
                  f"{a_p90:.0f}")  # fmt: skip
            headline.append((nb, n, target, n / samples, u_usd / a_usd))
    for nb in dict.fromkeys(h[0] for h in headline):
        rows = [h for h in headline if h[0] == nb]
        _, n, target, fewer, less = max(rows, key=lambda h: h[3])
        _, last, last_target, last_fewer, last_less = rows[-1]
        also = f"; at N={last}: {last_fewer:.2f}x / {last_less:.2f}x for {last_target:.1%}" if last != n else ""
        print(f"{nb} bins: adaptive needs {fewer:.2f}x fewer samples / {less:.2f}x less $ for {target:.1%} accuracy "
              f"(uniform N={n}, the largest saving){also}")  # fmt: skip
    print(f"wall {time.time() - t0:.1f} s, {len(served)} sample counts simulated", file=sys.stderr)


if __name__ == "__main__":
    main()
