"""Kinetics crossover (Sadhukhan et al., "Kinetics: Rethinking Test-Time Scaling Laws", arXiv 2506.05333).

Claim (abstract): test-time scaling laws that count compute alone leave "the effectiveness of smaller models
significantly overestimated": "test-time compute is more effective when used on models above a threshold than
smaller ones", because "attention, rather than parameter count, emerges as the dominant cost factor".
(experiments/kinetics.py shows the cost side; this shows where the crossover lies.)

Here: majority vote (n samples, the most frequent answer kept) on AIME 2024 with long reasoning answers
(questions of 200 tokens, answers lognormal, mean 6,000 tokens), for n in 1..64, served by one GPU, an H100
and an H200. Stand-ins, stated: the served models are Qwen2.5 architectures (qwen2.5-7b and qwen2.5-32b from
the catalog, and a Qwen2.5-Math-1.5B config.json written here, the catalog having no 1.5B), which are the
architectures of DeepSeek-R1-Distill-Qwen-1.5B, -7B and -32B; accuracy is the stated accuracy model's for those
distills on AIME 2024 (src/servesim/tts/params.toml: fitted to their pass@1 and cons@64, wrong_answers = 4
assumed; docs/test_time.md). servesim computes no accuracy: it joins that model with the simulated cost.

Load: each (GPU, model, n) is first run saturated (all questions at once) for its capacity in questions per
second, then served at `--load` (70%) of it with Poisson arrivals, so every deployment runs equally busy; its
$ per question is the GPU cost of the iterations its calls ran in (idle time excluded), its time to answer
the P90 from a question's arrival to its last sample under that load. A parameter-count law's price is printed
beside it: 2 x params FLOPs per generated token at the GPU's peak bf16, at its $/h ("params-only").

For each GPU and each pair of adjacent models, accuracy at equal budget: at a budget B, a model's accuracy is
the best majority vote among its n that cost at most B. The budgets at which the larger model is strictly more
accurate are printed, by simulated $ per question, by P90 time to answer, and by the params-only price; the
first of them is where the larger model starts to win.

Where this differs from the paper, and why: the paper prices a question's compute and memory access per token;
here one GPU serves a stream of questions, so the price also holds what that GPU's memory allows (the 32B's
weights leave an H100 little KV cache: a small batch, preemptions, weight reads shared by few tokens), queueing
at the load level, vLLM's batch cap (256 sequences) and the question's blocks shared by its samples. Accuracy
is a stated model fitted to two published points per distill (pass@1, cons@64), not the paper's measurements;
both larger distills have cons@64 83.3%, so their vote curves meet at n = 64.

    python experiments/kinetics_crossover.py [--gpus h100-sxm,h200] [--samples 1,3,4,6,8,16,32,64]
        [--models SMALL=ACC,...,LARGE=ACC] [--load 0.7] [--output-mean 6000] [--samples-per-run 1024]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from servesim.config import LengthDist, Scenario, StrategyConfig, WorkloadConfig
from servesim.hardware import get_gpu
from servesim.models.catalog import get_model, model_names
from servesim.tts.accuracy import get_params
from servesim.tts.planner import Judges, accuracy_of, evaluate, saturated

CHECK = ["--samples", "1,4,8", "--samples-per-run", "128",
         "--output-mean", "3000"]  # the small run CI checks (experiments/record.py)

MODELS = ("qwen2.5-1.5b=deepseek-r1-distill-qwen-1.5b,qwen2.5-7b=deepseek-r1-distill-qwen-7b,"
          "qwen2.5-32b=deepseek-r1-distill-qwen-32b")  # fmt: skip
BENCHMARK, QUESTION = "aime-2024", 200
TIE = 1e-4  # accuracies closer than 0.01 points are level (both distills are fitted to cons@64 83.3%)
# DeepSeek-R1-Distill-Qwen-1.5B's architecture (Qwen2.5-Math-1.5B, untied embeddings: 1.78B parameters)
QWEN_1_5B = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536,
             "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
             "vocab_size": 151936, "max_position_embeddings": 131072, "rope_theta": 10000.0, "rms_norm_eps": 1e-06,
             "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16"}  # fmt: skip


def served_path(name: str, folder: Path) -> str:
    """A catalog name as is; qwen2.5-1.5b (not in the catalog) as a config.json written under `folder`."""
    if name != "qwen2.5-1.5b" or name in model_names():
        return name
    path = folder / name / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(QWEN_1_5B))
    return str(path)


def serve(gpu: str, model: str, n: int, output: LengthDist, load: float, per_run: int, min_q: int) -> dict:
    """One (GPU, model, n): its saturated question rate, then its serving figures at `load` of that rate."""
    questions = max(min_q, per_run // n)
    c = StrategyConfig(name="majority_vote", n=n)
    base = Scenario(gpu=gpu, workload=WorkloadConfig(input=LengthDist(dist="fixed", mean=QUESTION, max=QUESTION),
                                                     output=output))  # fmt: skip
    capacity, s = saturated(base, model, c, questions)
    row = evaluate(base, model, c, load * capacity, questions)
    g, spec = get_gpu(gpu), get_model(model)
    flops = 2 * spec.num_params * row["tokens_per_question"]  # what a parameter-count law prices
    row.update(capacity_per_min=60 * capacity, saturated_preemptions=s["preemptions"],
               saturated_batch=s["batch_size"]["mean"], kv_tokens=s["memory"]["kv_cache_tokens"],
               params_usd=flops / g.peak_flops("bf16") * g.price_per_hour / 3600)  # fmt: skip
    return row


def run(gpus: list[str], models: list[str], samples: list[int], output: LengthDist, load: float = 0.7,
        per_run: int = 1024, min_q: int = 24) -> dict[tuple[str, str], list[dict]]:  # fmt: skip
    """Every (GPU, model): its rows for each n, with the stated accuracy of majority vote."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for gpu in gpus:
            for spec in models:
                name, _, acc = spec.partition("=")
                params = get_params(acc or name, BENCHMARK)
                rows = []
                for n in samples:
                    row = serve(gpu, served_path(name, Path(tmp)), n, output, load, per_run, min_q)
                    row.update(n=n, accuracy=accuracy_of(StrategyConfig(name="majority_vote", n=n), params, Judges()))
                    rows.append(row)
                out[gpu, name] = rows
    return out


def best(rows: list[dict], key: str, budget: float) -> dict | None:
    """The most accurate row that costs at most `budget` (the fewest samples among equals)."""
    fit = [r for r in rows if r[key] <= budget]
    return max(fit, key=lambda r: (r["accuracy"], -r["n"])) if fit else None


def larger_wins(small: list[dict], large: list[dict], key: str) -> list[tuple[float, float | None, dict, dict | None]]:
    """The budget intervals [lo, hi) where the larger model's best is more accurate than the smaller's (by TIE)
    (hi None: to the end of the range), each with the two rows at its start."""
    spans: list[list] = []
    budgets = sorted({r[key] for r in small + large})
    for b in budgets:
        lg, sm = best(large, key, b), best(small, key, b)
        wins = lg is not None and (sm is None or lg["accuracy"] > sm["accuracy"] + TIE)
        if wins and (not spans or spans[-1][1] is not None):
            spans.append([b, None, lg, sm])
        elif not wins and spans and spans[-1][1] is None:
            spans[-1][1] = b
    return [tuple(s) for s in spans]


def num(x: float, digits: int = 3) -> str:
    """x to `digits` significant digits, never in exponent form."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.{max(0, digits - 1 - math.floor(math.log10(abs(x))))}f}"


def spans_text(spans, show) -> str:
    """The intervals where the larger model wins, each with what the two models reach at its start."""
    if not spans:
        return "never in range"
    parts = []
    for lo, hi, lg, sm in spans:
        where = show(lo) + (f" to {show(hi)}" if hi is not None else " on")
        vs = f"n={sm['n']} {sm['accuracy']:.1%}" if sm is not None else "nothing"
        parts.append(f"{where} (n={lg['n']} {lg['accuracy']:.1%} vs {vs})")
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", default="h100-sxm,h200")
    ap.add_argument("--models", default=MODELS, help="SERVED=ACCURACY specs, smallest first; adjacent pairs compared")
    ap.add_argument("--samples", default="1,3,4,6,8,16,32,64", help="majority vote's n")
    ap.add_argument("--load", type=float, default=0.7, help="fraction of each deployment's saturated question rate")
    ap.add_argument("--output-mean", type=float, default=6000.0, help="answer tokens (lognormal mean)")
    ap.add_argument("--output-sigma", type=float, default=0.5)
    ap.add_argument("--output-max", type=int, default=16384)
    ap.add_argument("--samples-per-run", type=int, default=1024, help="questions simulated: this / n ...")
    ap.add_argument("--min-questions", type=int, default=24, help="... but at least this many")
    args = ap.parse_args()
    gpus, models = args.gpus.split(","), args.models.split(",")
    samples = [int(x) for x in args.samples.split(",")]
    output = LengthDist(dist="lognormal", mean=args.output_mean, sigma=args.output_sigma, min=256, max=args.output_max)
    t0 = time.time()
    rows = run(gpus, models, samples, output, args.load, args.samples_per_run, args.min_questions)
    print(f"wall {time.time() - t0:.1f} s", file=sys.stderr)

    print(f"majority vote on {BENCHMARK}, one GPU per deployment; questions of {QUESTION} tokens, answers "
          f"lognormal mean {args.output_mean:.0f} sigma {args.output_sigma} in [256, {args.output_max}] tokens; "
          f"each (GPU, model, n) at {args.load:.0%} of its saturated question rate, max({args.min_questions}, "
          f"{args.samples_per_run} / n) questions")  # fmt: skip
    print("stand-ins (same architectures): " + ", ".join(" for ".join(m.split("=")) for m in models)
          + "; accuracy: the stated model of src/servesim/tts/params.toml, wrong_answers = 4 assumed")  # fmt: skip
    kv = (f"{gpu} {name} {rs[0]['kv_tokens']}" for (gpu, name), rs in rows.items())
    print("KV cache tokens per GPU: " + ", ".join(kv))
    print("$ per 1,000 questions: the GPU time of the iterations its calls ran in; params-only: 2 x params FLOPs "
          "per generated token at the GPU's peak bf16")  # fmt: skip
    print("GPU model n | accuracy | answer tokens per question | capacity questions/min | P90 answer s | "
          "$ per 1,000 questions | params-only $ per 1,000 | $ per 1,000 samples | saturated: mean batch | "
          "preemptions")  # fmt: skip
    for (gpu, name), rs in rows.items():
        for r in rs:
            print(f"{gpu} {name} n={r['n']} | {r['accuracy']:.1%} | {r['tokens_per_question']:.0f} | "
                  f"{num(r['capacity_per_min'])} | {r['answer_p90_s']:.0f} | {num(1000 * r['usd_per_question'])} | "
                  f"{num(1000 * r['params_usd'])} | {num(1000 * r['usd_per_question'] / r['n'])} | "
                  f"{r['saturated_batch']:.0f} | {r['saturated_preemptions']}")  # fmt: skip

    print("where the larger model wins (more accurate, by over 0.01 points, at equal budget; 'on': to the end of "
          "the range)")
    print("GPU smaller->larger | one larger sample costs, in smaller samples: simulated / params-only | "
          "by $ per 1,000 questions | by P90 s to answer | by params-only $ per 1,000")  # fmt: skip
    names = [m.partition("=")[0] for m in models]
    usd = lambda x: f"${num(1000 * x)}"  # noqa: E731  (per 1,000 questions)
    for gpu in gpus:
        for small, large in zip(names, names[1:], strict=False):
            sm, lg = rows[gpu, small], rows[gpu, large]
            first_s, first_l = sm[0], lg[0]  # n = samples[0] of each
            sim_ratio = (first_l["usd_per_question"] / first_l["n"]) / (first_s["usd_per_question"] / first_s["n"])
            par_ratio = _params(large) / _params(small)
            print(f"{gpu} {small}->{large} | {sim_ratio:.1f} / {par_ratio:.1f} | "
                  f"{spans_text(larger_wins(sm, lg, 'usd_per_question'), usd)} | "
                  f"{spans_text(larger_wins(sm, lg, 'answer_p90_s'), lambda x: f'{x:.0f} s')} | "
                  f"{spans_text(larger_wins(sm, lg, 'params_usd'), usd)}")  # fmt: skip
    for gpu in gpus:
        for small, large in zip(names, names[1:], strict=False):
            spans = larger_wins(rows[gpu, small], rows[gpu, large], "usd_per_question")
            if spans:
                print(f"{gpu}: {large} starts to win over {small} at {usd(spans[0][0])} per 1,000 questions")
            else:
                print(f"{gpu}: no crossover in range: {small} is at least as accurate as {large} at every $ budget")


def _params(name: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return get_model(served_path(name, Path(tmp))).num_params


if __name__ == "__main__":
    main()
