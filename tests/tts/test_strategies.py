"""Test-time scaling strategies run as programs: their calls, what they share in the prefix cache, what waits."""

import pytest

from servesim import Scenario, ServesimError, simulate
from servesim.config import LengthDist, StrategyConfig, WorkloadConfig
from servesim.tts.strategies import STRATEGIES, calls_of
from servesim.workload.strategies import program


def run(name: str, n_questions: int = 40, rate: float = 2.0, **options):
    wl = WorkloadConfig(num_requests=n_questions, rate=rate, input=LengthDist(dist="fixed", mean=512),
                        strategy=StrategyConfig(name=name, **options))  # fmt: skip
    return simulate(Scenario(workload=wl))


@pytest.mark.parametrize(("name", "options", "calls"), [
    ("best_of_n", {"n": 4}, 4), ("best_of_n", {"n": 4, "verifier": True}, 8), ("majority_vote", {"n": 5}, 5),
    ("beam_search", {"n": 2, "expand": 3, "steps": 4}, 2 * 3 * 4 * 2), ("sequential_revision", {"n": 3}, 3),
    ("budget_forced", {"budget": 100}, 1), ("sleep_time", {"n": 5}, 6),
])  # fmt: skip
def test_every_question_runs_all_its_calls(name, options, calls):
    r = run(name, **options)
    s = r.summary()
    assert len(calls_of(StrategyConfig(name=name, **options))) == calls
    assert s["programs"]["completed"] == 40 and s["completed"] == 40 * calls
    assert set(STRATEGIES) == {"best_of_n", "majority_vote", "beam_search", "sequential_revision", "budget_forced",
                               "sleep_time"}  # fmt: skip


def test_samples_share_the_question_and_a_verifier_reads_its_sample_from_the_cache():
    r = run("best_of_n", n=8, verifier=True)
    df = r.requests
    samples, scores = df[df.request_id % 16 < 8], df[df.request_id % 16 >= 8]
    # the first sample computes the question; the other seven find its full blocks cached
    assert (samples.groupby(samples.request_id // 16).cached_tokens.apply(lambda c: (c > 0).sum()) == 7).all()
    # a verifier computes its own few tokens: everything before them (question and sample) was cached
    assert ((scores.input_len - scores.cached_tokens) <= 16 + 16).all()
    assert (scores.arrival_s.to_numpy() >= samples.finish_s.to_numpy()).all()  # released once its sample is done


def test_beam_search_steps_wait_for_every_score_of_the_step_before():
    cfg = StrategyConfig(name="beam_search", n=2, expand=2, steps=3, step_tokens=64)
    calls = calls_of(cfg, question=500)
    reqs = program(0, 0.0, calls, 0, 16)
    step2 = [i for i, c in enumerate(calls) if c.new == 0 and c.out == 64][:4]
    scores1 = [i for i, c in enumerate(calls[:8]) if c.out == 1]
    for i in step2:
        assert reqs[i].parents == len(scores1) == 4 and all(reqs[i] in reqs[j].children for j in scores1)
        assert reqs[i].prompt_len == 500 + 64 + 0  # the beam it extends: question and one step


def test_a_budget_forced_chain_of_thought_costs_more_the_longer_it_thinks():
    short, long = (run("budget_forced", budget=b).summary() for b in (500, 4000))
    assert long["programs"]["completion_ms"]["mean"] > 4 * short["programs"]["completion_ms"]["mean"]
    assert long["energy"]["total_j"] > short["energy"]["total_j"]


def test_questions_are_dealt_whole_to_partitions():
    wl = WorkloadConfig(num_requests=30, rate=2.0, strategy=StrategyConfig(name="majority_vote", n=3))
    whole = simulate(Scenario(workload=wl, replicas=2, router="round_robin")).requests
    parts = simulate(Scenario(workload=wl, replicas=2, partitions=2), workers=1).requests
    assert sorted(whole.request_id) == sorted(parts.request_id) == list(range(90))
    assert (parts.groupby(parts.request_id // 3).replica.nunique() == 1).all()


@pytest.mark.parametrize(("options", "fragment"), [
    ({"name": "budget_forced", "budget": 0}, "greater than or equal to 1"),
    ({"name": "best_of_n", "n": 0}, "greater than or equal to 1"),
    ({"name": "tree_of_thoughts"}, "Input should be"),
    ({"name": "beam_search", "n": 32, "expand": 16, "steps": 8, "step_tokens": 512}, "tokens of KV cache"),
])  # fmt: skip
def test_bad_strategies_are_refused_in_one_line(options, fragment):
    with pytest.raises((ServesimError, ValueError)) as e:
        run(**{"n_questions": 5, **options})
    assert fragment in str(e.value) and "\n" not in str(e.value).strip().splitlines()[-1]


def test_a_question_of_too_many_calls_is_refused():
    with pytest.raises(ValueError, match="calls per question, more than 65,536; lower n, steps or expand"):
        calls_of(StrategyConfig(name="beam_search", n=64, expand=64, steps=64))
