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
        if not spec.split() or "=" in spec.split()[0]:
            raise ServesimError(f"--strategy '{spec}' must start with the strategy's name, e.g. 'majority_vote n=1,4'")
        name, *items = spec.split()
        grid = {}
        for item in items:
            key, sep, values = item.partition("=")
            if key in grid:
                raise ServesimError(f"--strategy '{spec}' gives {key} twice; list its values once: {key}=a,b")
            if not sep or key not in FIELDS or not values:
                raise ServesimError(f"strategy setting '{item}' must be key=value[,value...] with key one of "
                                    f"{', '.join(FIELDS)}, e.g. 'best_of_n n=1,4,16 verifier=true'")  # fmt: skip
            grid[key] = [_flag(v) if key == "verifier" else v for v in values.split(",")]
        for combo in itertools.product(*grid.values()):
            out.append(StrategyConfig.model_validate({"name": name, **dict(zip(grid, combo, strict=True))}))
    if not out:
        raise ServesimError("give at least one --strategy, e.g. --strategy 'majority_vote n=1,4,16'")
    return out


def _flag(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ServesimError(f"verifier={value} must be true or false")
    return value.lower() == "true"


def label(c: StrategyConfig) -> str:
    """A strategy's settings that matter to it, in a few words."""
    if c.name == "budget_forced":
        return f"budget_forced {c.budget} tokens"
    if c.name == "beam_search":
        return f"beam_search n={c.n} expand={c.expand} steps={c.steps}x{c.step_tokens}"
    if c.name == "sleep_time":
        return f"sleep_time {c.n} quer{'y' if c.n == 1 else 'ies'}, {c.budget} tokens"
    return f"{c.name} n={c.n}" + (" +verifier" if c.verifier else "")


def evaluate(base: Scenario, model: str, strategy: StrategyConfig, rate: float, questions: int) -> dict:
    """Serving figures of one (model, strategy) answering `questions` questions at `rate` per second."""
    from servesim.api import simulate

    wl = base.workload.model_copy(update={"strategy": strategy, "num_requests": questions, "rate": rate})
    res = simulate(base.model_copy(update={"model": model, "workload": wl}))
    s, df = res.summary(), res.requests
    if strategy.name == "sleep_time":  # a query waits from its release (its context pre-processed) to its answer
        queries = df[df.groupby("program").request_id.transform("min") != df.request_id]
        answer = (queries.finish_s - queries.arrival_s).to_numpy()
        finished = queries.groupby("program").completed.transform("all").to_numpy()
    else:
        per = df.groupby("program")
        answer = np.asarray(per.finish_s.max() - per.arrival_s.min())
        finished = per.completed.all().to_numpy()
    return _row(model, label(strategy), strategy, questions, df, answer[finished], df.cost_usd.sum(),
                df.energy_j.sum(), s["cost"]["total_usd"], res.perf_model)  # fmt: skip


def saturated(base: Scenario, model: str, strategy: StrategyConfig, questions: int) -> tuple[float, dict]:
    """The question rate the deployment keeps up with when `questions` questions come at once (its capacity), and
    that run's summary: an experiment then serves at a fraction of it."""
    from servesim.api import simulate

    wl = base.workload.model_copy(update={"strategy": strategy, "num_requests": questions, "rate": float("inf")})
    s = simulate(base.model_copy(update={"model": model, "workload": wl})).summary()
    return questions / s["duration_s"], s


def _row(model: str, name: str, strategy: StrategyConfig, questions: int, df, answer: np.ndarray, usd: float,
         joules: float, fleet_usd: float, perf_model: str, extra_calls: int = 0,
         extra_tokens: int = 0) -> dict:  # fmt: skip
    """A planner row: per question (sleep_time: per query) of those answered whole. `usd` and `joules` are the
    GPU cost and energy of the iterations the calls ran in, shared among their tokens; `fleet_usd` what the
    whole fleet cost over the run, idle time included."""
    done = len(answer)  # (sleep_time: queries, each a context's; else questions)
    units = questions * (strategy.n if strategy.name == "sleep_time" else 1)
    per = df.groupby("program")
    first = per.first_token_s.min() - per.arrival_s.min()
    return {
        "model": model, "strategy": name, "config": strategy.model_dump(), "questions": questions,
        "answered": done, "calls_per_question": (len(df) + extra_calls) / units,
        "tokens_per_question": (float(df.output_len.sum()) + extra_tokens) / units,
        "ttft_p50_ms": _pct(first, 50), "ttft_p90_ms": _pct(first, 90),
        "answer_p50_s": _pct(answer, 50, 1.0), "answer_p90_s": _pct(answer, 90, 1.0),
        "usd_per_question": float(usd) / done if done else math.inf,
        "j_per_question": float(joules) / done if done else math.inf,
        "fleet_usd_per_question": fleet_usd / done if done else math.inf,
        "perf_model": perf_model, "complete": done == units,
    }  # fmt: skip


class VerifierPool(BaseModel):
    """An outcome reward model of its own (not the served model), on a pool of its own: best_of_n's verifier
    calls are served there, each prefilling the sample it scores (another model cannot read the served model's
    KV cache) and answering one token."""

    model_config = ConfigDict(extra="forbid")

    model: str
    gpu: str | None = Field(None, description="default: the served deployment's GPU")
    tp: int = Field(1, ge=1, le=64)
    replicas: int = Field(1, ge=1, le=10_000)


def evaluate_with_verifier_pool(base: Scenario, model: str, strategy: StrategyConfig, rate: float, questions: int,
                                pool: VerifierPool) -> dict:  # fmt: skip
    """`evaluate` for best_of_n whose verifier runs on a pool of its own. The samples are served first; every
    finished sample's verifier call then arrives at the verifier pool when it finished (the calls feed nothing
    back, so the two runs together are the joint timeline), to the millisecond, as a replayed trace."""
    import pandas as pd

    from servesim.api import replay, simulate
    from servesim.config import EngineConfig

    samples = strategy.model_copy(update={"verifier": False})
    wl = base.workload.model_copy(update={"strategy": samples, "num_requests": questions, "rate": rate})
    first = simulate(base.model_copy(update={"model": model, "workload": wl}))
    df = first.requests
    done = df[df.completed].sort_values("finish_s")
    t0 = float(done.finish_s.iloc[0])
    verifier = Scenario(model=pool.model, gpu=pool.gpu or base.gpu, engine=EngineConfig(tp=pool.tp),
                        replicas=pool.replicas, router="least_tokens" if pool.replicas > 1 else None,
                        perf_model=base.perf_model)  # fmt: skip
    second = replay(verifier, done.finish_s - t0, done.input_len + done.output_len + strategy.score_tokens,
                    [1] * len(done))  # fmt: skip
    ver = second.requests.sort_values("request_id")
    scored = pd.Series(t0 + ver.finish_s.to_numpy(), index=done.program.to_numpy()).groupby(level=0).max()
    whole = ver.completed.groupby(done.program.to_numpy()).all()
    whole = whole[whole].index.intersection(df.groupby("program").completed.all().loc[lambda x: x].index)
    answer = (scored[whole] - df.groupby("program").arrival_s.min()[whole]).to_numpy()
    fleet = first.summary()["cost"]["total_usd"] + second.summary()["cost"]["total_usd"]
    return _row(model, label(strategy) + f" on {pool.model}", strategy, questions, df, answer,
                df.cost_usd.sum() + ver.cost_usd.sum(), df.energy_j.sum() + ver.energy_j.sum(), fleet,
                first.perf_model, extra_calls=len(ver), extra_tokens=int(ver.output_len.sum()))  # fmt: skip


def _pct(values, q: float, scale: float = 1e3) -> float | None:
    """The q-th percentile of `values` (seconds) times `scale` (ms by default), None without any."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(np.percentile(v, q)) * scale if len(v) else None


class Judges(BaseModel):
    """How good the verifier, the process reward model and the reviser a strategy relies on are: stated
    assumptions (`accuracy.py` says how each enters), not measured."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tpr: float = Field(0.9, ge=0, le=1, description="a verifier accepts a correct answer with this probability")
    fpr: float = Field(0.1, ge=0, le=1, description="... and a wrong one with this")
    prm_auc: float = Field(0.8, ge=0.5, le=1, description="a PRM ranks a correct step above a wrong one this often")
    fix_rate: float = Field(0.2, ge=0, le=1, description="a revision turns a wrong answer right this often")
    break_rate: float = Field(0.05, ge=0, le=1, description="... and a right one wrong this often")


# what each judge's quality acts on: the strategies that use it
JUDGED = {"tpr": "best_of_n verifier=true", "fpr": "best_of_n verifier=true", "prm_auc": "beam_search",
          "fix_rate": "sequential_revision", "break_rate": "sequential_revision"}  # fmt: skip


def idle_judges(given: set[str], strategies: list[StrategyConfig]) -> list[tuple[str, str]]:
    """The judges in `given` that no strategy here relies on, each with the strategy that would."""
    used = {"best_of_n verifier=true": any(c.verifier for c in strategies)}
    used |= {c.name: True for c in strategies}
    return [(key, JUDGED[key]) for key in sorted(given) if not used.get(JUDGED[key])]


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
         questions: int, judges: Judges | None = None, params_file=None, progress=None,
         verifier_pool: VerifierPool | None = None) -> list[dict]:  # fmt: skip
    """Every (model, strategy): its serving figures and its stated accuracy, frontiers marked. A model is a
    catalog name, or `CATALOG=ACCURACY` where the accuracy parameters go by another name (a fine-tune of that
    architecture, e.g. qwen2.5-7b=deepseek-r1-distill-qwen-7b)."""
    judges = judges or Judges()
    wl = base.workload
    if wl.trace is not None or wl.n > 1 or wl.programs is not None or wl.tenants:
        raise ServesimError("the planner makes each question's calls from its strategies; drop the scenario's "
                            "[workload] trace, n, programs and tenants (its lengths are used)")  # fmt: skip
    for spec in models:
        served, _, named = spec.partition("=")
        if not served.strip() or "=" in named:
            raise ServesimError(f"--model '{spec}' must be a catalog name or CATALOG=ACCURACY, e.g. "
                                "qwen2.5-7b=deepseek-r1-distill-qwen-7b")  # fmt: skip
    if verifier_pool is not None:
        from servesim.models import get_model

        get_model(verifier_pool.model)  # (an unknown model: one line naming the catalog)
        if any(c.name == "beam_search" for c in strategies):
            raise ServesimError("a PRM on a pool of its own would gate every beam-search step across two "
                                "pools, which is not modelled: drop the verifier pool or beam_search")  # fmt: skip
        if not any(c.verifier for c in strategies):
            raise ServesimError("the verifier pool serves best_of_n's verifier (verifier=true), which no strategy "
                                "here has: add one, e.g. 'best_of_n n=8 verifier=true', or drop the pool")  # fmt: skip
    rows = []
    for spec in models:
        served, _, named = spec.partition("=")
        params = get_params(named or served, benchmark, params_file)
        for c in strategies:
            if verifier_pool is not None and c.verifier:
                row = evaluate_with_verifier_pool(base, served.strip(), c, rate, questions, verifier_pool)
            else:
                row = evaluate(base, served.strip(), c, rate, questions)
            row["model"] = spec.strip()
            row["accuracy_model"] = f"{(named or served).strip()}/{benchmark}"
            row["accuracy"] = accuracy_of(c, params, judges)
            if row["accuracy"] is None:
                row["note"] = f"no {'budget curve' if c.name in ('budget_forced', 'sleep_time') else 'difficulty'} " \
                              f"for {row['accuracy_model']}"  # fmt: skip
            if not row["complete"]:
                row["note"] = (f"{questions * (c.n if c.name == 'sleep_time' else 1) - row['answered']} refused "
                               "(a call past max_model_len): not on the frontiers")  # fmt: skip
            row["accuracy_fitted"] = params.fitted
            rows.append(row)
            if progress is not None:
                progress()
    return mark_frontiers(rows)


def mark_frontiers(rows: list[dict]) -> list[dict]:
    """Flag the rows on the accuracy frontiers: against cost per question and against P90 time to answer."""
    scored = [{**r, "accuracy": round(r["accuracy"], 6), "id": id(r)} for r in rows  # (gains below 1e-6: ties)
              if r.get("accuracy") is not None and r.get("complete", True)]  # fmt: skip
    for key, x in (("frontier_cost", "usd_per_question"), ("frontier_latency", "answer_p90_s")):
        best = {r["id"] for r in frontier(scored, x, "accuracy", y_smaller=False)}
        for r in rows:
            r[key] = id(r) in best
    return rows
