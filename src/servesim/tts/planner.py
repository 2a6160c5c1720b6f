"""The test-time scaling planner: what accuracy each strategy buys per second, per dollar and per joule on a
deployment, under load (`servesim tts`).

Each (model, strategy) is simulated serving its questions at the given rate on the base scenario's deployment
(`strategies.py`: the samples, verifiers and search steps as calls, queueing behind the other questions'),
and its accuracy is the stated accuracy model's for that model and benchmark (`accuracy.py`). The two are
joined, never mixed: servesim does not compute accuracy. Rows on the Pareto frontier of accuracy against cost
per question (and against P90 time to the final answer) are marked.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from servesim.config import Scenario, StrategyConfig
from servesim.errors import ServesimError
from servesim.search.pareto import frontier
from servesim.tts.accuracy import Params, get_params

FIELDS = ("n", "verifier", "score_tokens", "step_tokens", "steps", "expand", "budget", "revise_tokens")


def parse_strategies(specs: list[str]) -> list[StrategyConfig]:
    """`NAME key=v1,v2 key2=v` (values of a key: a comma list; every combination) as strategy settings."""
    out = []
    for spec in specs:
        name, *items = spec.split()
        grid = {}
        for item in items:
            key, sep, values = item.partition("=")
            if not sep or key not in FIELDS or not values:
                raise ServesimError(f"strategy setting '{item}' must be key=value[,value...] with key one of "
                                    f"{', '.join(FIELDS)}, e.g. 'best_of_n n=1,4,16 verifier=true'")  # fmt: skip
            grid[key] = [v.lower() == "true" if key == "verifier" else v for v in values.split(",")]
        for combo in itertools.product(*grid.values()):
            out.append(StrategyConfig.model_validate({"name": name, **dict(zip(grid, combo, strict=True))}))
    if not out:
        raise ServesimError("give at least one --strategy, e.g. --strategy 'majority_vote n=1,4,16'")
    return out


def label(c: StrategyConfig) -> str:
    """A strategy's settings that matter to it, in a few words."""
    if c.name == "budget_forced":
        return f"budget_forced {c.budget} tokens"
    if c.name == "beam_search":
        return f"beam_search n={c.n} expand={c.expand} steps={c.steps}x{c.step_tokens}"
    if c.name == "sleep_time":
        return f"sleep_time {c.n} queries, {c.budget} tokens"
    return f"{c.name} n={c.n}" + (" +verifier" if c.verifier else "")


def evaluate(base: Scenario, model: str, strategy: StrategyConfig, rate: float, questions: int) -> dict:
    """Serving figures of one (model, strategy) answering `questions` questions at `rate` per second."""
    from servesim.api import simulate

    wl = base.workload.model_copy(update={"strategy": strategy, "num_requests": questions, "rate": rate})
    sc = base.model_copy(update={"model": model, "workload": wl})
    res = simulate(sc)
    s, df = res.summary(), res.requests
    done = s["programs"]["completed"] * (strategy.n if strategy.name == "sleep_time" else 1)  # (its queries)
    per = df.groupby("program")
    first = per.first_token_s.min() - per.arrival_s.min()  # the question's first token, of any of its calls
    answer = s["programs"]["completion_ms"]
    out_tokens = float(df.output_len.sum()) / max(questions, 1)
    return {
        "model": model, "strategy": label(strategy), "config": strategy.model_dump(),
        "questions": questions, "answered": done, "calls_per_question": len(df) / max(questions, 1),
        "tokens_per_question": out_tokens,
        "ttft_p50_ms": _pct(first, 50), "ttft_p90_ms": _pct(first, 90),
        "answer_p50_s": _s(answer.get("median")), "answer_p90_s": _s(answer.get("p90")),
        # the GPU time and energy of the iterations its calls ran in, shared among their tokens; and what the
        # whole fleet costs at this rate, idle time included
        "usd_per_question": float(df.cost_usd.sum()) / done if done else math.inf,
        "j_per_question": float(df.energy_j.sum()) / done if done else math.inf,
        "fleet_usd_per_question": s["cost"]["total_usd"] / done if done else math.inf,
        "perf_model": res.perf_model,
    }  # fmt: skip


def _pct(values, q: float) -> float | None:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(np.percentile(v, q)) * 1e3 if len(v) else None


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1e3


class Judges(BaseModel):
    """How good the verifier, the process reward model and the reviser a strategy relies on are: stated
    assumptions (`accuracy.py` says how each enters), not measured."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tpr: float = Field(0.9, ge=0, le=1, description="a verifier accepts a correct answer with this probability")
    fpr: float = Field(0.1, ge=0, le=1, description="... and a wrong one with this")
    prm_auc: float = Field(0.8, ge=0.5, le=1, description="a PRM ranks a correct step above a wrong one this often")
    fix_rate: float = Field(0.2, ge=0, le=1, description="a revision turns a wrong answer right this often")
    break_rate: float = Field(0.05, ge=0, le=1, description="... and a right one wrong this often")


def accuracy_of(c: StrategyConfig, p: Params, judges: Judges) -> float | None:
    """The stated accuracy model's answer for strategy `c` (None where `p` lacks the table it needs). Best-of-n
    without a verifier assumes an exact checker (unit tests, a known answer): its accuracy is the coverage."""
    d = p.difficulty
    if c.name in ("budget_forced", "sleep_time"):  # sleep_time: the pre-processed tokens count as thinking
        return None if p.budget is None else float(p.budget.budget_forced(c.budget))
    if d is None:
        return None
    if c.name == "best_of_n":
        return float(d.verifier_best_of(c.n, judges.tpr, judges.fpr) if c.verifier else d.coverage(c.n))
    if c.name == "majority_vote":
        return float(d.majority_vote(c.n, p.wrong_answers))
    if c.name == "beam_search":  # the PRM ranks every candidate of a step: n beams x expand
        return d.prm_search(c.n * c.expand, c.steps, judges.prm_auc)
    return float(d.sequential_revision(c.n, judges.fix_rate, judges.break_rate))


def plan(base: Scenario, models: list[str], strategies: list[StrategyConfig], benchmark: str, rate: float,
         questions: int, judges: Judges | None = None, params_file=None, progress=None) -> list[dict]:  # fmt: skip
    """Every (model, strategy): its serving figures and its stated accuracy, frontiers marked. A model is a
    catalog name, or `CATALOG=ACCURACY` where the accuracy parameters go by another name (a fine-tune of that
    architecture, e.g. qwen2.5-7b=deepseek-r1-distill-qwen-7b)."""
    judges = judges or Judges()
    rows = []
    for spec in models:
        served, _, named = spec.partition("=")
        params = get_params(named or served, benchmark, params_file)
        for c in strategies:
            row = evaluate(base, served.strip(), c, rate, questions)
            row["accuracy_model"] = f"{(named or served).strip()}/{benchmark}"
            row["accuracy"] = accuracy_of(c, params, judges)
            row["accuracy_fitted"] = params.fitted
            rows.append(row)
            if progress is not None:
                progress()
    return mark_frontiers(rows)


def mark_frontiers(rows: list[dict]) -> list[dict]:
    """Flag the rows on the accuracy frontiers: against cost per question and against P90 time to answer."""
    for key, x in (("frontier_cost", "usd_per_question"), ("frontier_latency", "answer_p90_s")):
        best = {id(r) for r in frontier([r for r in rows if r.get("accuracy") is not None], x, "accuracy",
                                         y_smaller=False)}  # fmt: skip
        for r in rows:
            r[key] = id(r) in best
    return rows
