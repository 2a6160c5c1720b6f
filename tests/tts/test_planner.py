"""The test-time scaling planner: strategies parsed, served and joined with the stated accuracy model."""

import json

import pytest

from servesim import Scenario
from servesim.config import StrategyConfig
from servesim.tts.accuracy import get_params
from servesim.tts.planner import Judges, VerifierPool, accuracy_of, label, parse_strategies, plan
from tests.test_cli import invoke, one_line_error

SEVEN = "qwen2.5-7b=deepseek-r1-distill-qwen-7b"


def test_strategy_specs_expand_to_every_combination():
    got = parse_strategies(["majority_vote n=1,4", "beam_search n=2 expand=2,4 steps=3", "best_of_n verifier=true"])
    assert [label(c) for c in got] == ["majority_vote n=1", "majority_vote n=4",
                                       "beam_search n=2 expand=2 steps=3x256", "beam_search n=2 expand=4 steps=3x256",
                                       "best_of_n n=8 +verifier"]  # fmt: skip


def test_accuracy_is_the_stated_models_for_each_strategy():
    p, j = get_params("deepseek-r1-distill-qwen-7b", "aime-2024"), Judges()
    d = p.difficulty
    assert accuracy_of(StrategyConfig(name="best_of_n", n=16), p, j) == pytest.approx(d.coverage(16))
    assert accuracy_of(StrategyConfig(name="majority_vote", n=1), p, j) == pytest.approx(d.pass_at_1)
    perfect = Judges(tpr=1.0, fpr=0.0)  # a verifier that never errs finds a correct sample whenever there is one
    assert accuracy_of(StrategyConfig(name="best_of_n", n=8, verifier=True), p, perfect) == pytest.approx(d.coverage(8))
    assert accuracy_of(StrategyConfig(name="budget_forced"), p, j) is None  # no budget curve for it


def test_the_plan_joins_served_cost_and_stated_accuracy_and_marks_the_frontier():
    rows = plan(Scenario(), [SEVEN], parse_strategies(["majority_vote n=1,8"]), "aime-2024", rate=0.5, questions=40)
    one, eight = rows
    assert one["answered"] == eight["answered"] == 40 and eight["calls_per_question"] == 8
    assert eight["accuracy"] > one["accuracy"] and eight["usd_per_question"] > one["usd_per_question"]
    assert eight["answer_p90_s"] > one["answer_p90_s"]  # eight samples share the replica with the other questions
    assert one["frontier_cost"] and eight["frontier_cost"]  # cheaper, or more accurate: both on the frontier


def test_servesim_tts_prints_and_reports_a_frontier(tmp_path):
    report = tmp_path / "tts.html"
    res = invoke("tts", "--model", SEVEN, "--strategy", "majority_vote n=1,4", "--benchmark", "aime-2024",
                 "--questions", "20", "--json", "--report", str(report))  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["strategy"] for r in doc["rows"]] == ["majority_vote n=1", "majority_vote n=4"]
    assert "Pareto frontier" in report.read_text()


def test_a_verifier_of_its_own_on_a_pool_of_its_own_adds_its_pool_to_cost_and_time():
    """Its calls prefill each sample whole (another model reads no cached KV) on GPUs of their own."""
    best = parse_strategies(["best_of_n n=4 verifier=true"])
    shared, = plan(Scenario(), [SEVEN], best, "aime-2024", rate=0.5, questions=40)
    own, = plan(Scenario(), [SEVEN], best, "aime-2024", rate=0.5, questions=40,
                verifier_pool=VerifierPool(model="llama-3.1-8b", replicas=2))  # fmt: skip
    assert own["answered"] == 40 and own["calls_per_question"] == shared["calls_per_question"] == 8
    assert own["strategy"] == "best_of_n n=4 +verifier on llama-3.1-8b" and own["accuracy"] == shared["accuracy"]
    assert own["fleet_usd_per_question"] > 2 * shared["fleet_usd_per_question"]  # three GPUs instead of one
    assert own["usd_per_question"] > shared["usd_per_question"]  # the scored samples are prefilled again
    assert own["answer_p50_s"] > 0 and own["answer_p90_s"] >= own["answer_p50_s"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--strategy", "best_of_n n=2 verifier=true", "--verifier-model", "nope"], "unknown model 'nope'"),
    (["--strategy", "best_of_n n=2 verifier=true", "--verifier-replicas", "2"], "needs --verifier-model"),
    (["--strategy", "majority_vote n=2", "--verifier-model", "llama-3.1-8b"], "which no strategy here has"),
    (["--strategy", "beam_search n=2 expand=2 steps=2", "--strategy", "best_of_n verifier=true",
      "--verifier-model", "llama-3.1-8b"], "not modelled"),
])  # fmt: skip
def test_a_verifier_pool_that_cannot_act_is_refused(args, fragment):
    one_line_error(invoke("tts", "--model", SEVEN, "--questions", "5", "--benchmark", "aime-2024", *args), fragment)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--strategy", "best_of_n n=0"], "n: Input should be greater than or equal to 1"),
    (["--strategy", "budget_forced budget=0"], "budget: Input should be greater than or equal to 1"),
    (["--strategy", "best_of_n width=3"], "strategy setting 'width=3' must be key=value"),
    (["--strategy", "best_of_n verifier=maybe"], "verifier=maybe must be true or false"),
    (["--strategy", "tree_search n=2"], "name: Input should be"),
    (["--strategy", "best_of_n n=2 verifier=true", "--verifier-tpr", "1.5"],
     "tpr: Input should be less than or equal to 1"),
    (["--strategy", "beam_search n=2 expand=2 steps=2", "--prm-auc", "0.2"],
     "prm_auc: Input should be greater than or equal to 0.5"),
    (["--strategy", "majority_vote n=2", "--prm-auc", "0.9"], "--prm-auc acts only on beam_search"),
    (["--strategy", "majority_vote n=2", "--verifier-tpr", "0.9"], "--verifier-tpr acts only on best_of_n"),
    (["--strategy", "best_of_n n=2", "--benchmark", "gsm8k"], "no accuracy parameters for model"),
    (["--strategy", "beam_search n=32 expand=16 steps=8 step_tokens=512"], "tokens of KV cache"),
])  # fmt: skip
def test_bad_plans_are_refused_in_one_line(args, fragment):
    bench = [] if "--benchmark" in args else ["--benchmark", "aime-2024"]
    one_line_error(invoke("tts", "--model", SEVEN, "--questions", "5", *bench, *args), fragment)


def test_sleep_time_is_counted_per_query():
    one, ten = plan(Scenario(), ["qwen2.5-32b=s1-32b"], parse_strategies(["sleep_time n=1,10 budget=2000"]),
                    "aime-2024", rate=0.05, questions=12)  # fmt: skip
    assert one["answered"] == 12 and ten["answered"] == 120  # queries, not contexts
    assert ten["calls_per_question"] == pytest.approx(11 / 10)  # a context's call shared by its ten queries
    assert ten["usd_per_question"] < one["usd_per_question"]  # the pre-processing amortised


@pytest.mark.parametrize(("args", "fragment"), [
    (["--strategy", ""], "must start with the strategy's name"),
    (["--strategy", "n=4"], "must start with the strategy's name"),
    (["--strategy", "majority_vote n=4 n=8"], "gives n twice"),
    (["--strategy", "majority_vote n=4 verifier=true"], "verifier cannot act in majority_vote"),
    (["--strategy", "budget_forced n=16"], "n cannot act in budget_forced"),
    (["--strategy", "beam_search n=64 expand=64 steps=16 step_tokens=1"], "131,072 calls per question"),
    (["--strategy", "majority_vote n=2", "--rate", "1e-300"], "--rate must be from 1e-6"),
    (["--strategy", "majority_vote n=2", "--model", "a=b=c"], "must be a catalog name or CATALOG=ACCURACY"),
])  # fmt: skip
def test_malformed_plans_are_refused_in_one_line(args, fragment):
    one_line_error(invoke("tts", "--model", SEVEN, "--questions", "5", "--benchmark", "aime-2024", *args), fragment)


def test_a_row_with_refused_questions_says_so_and_stays_off_the_frontiers():
    # answers of up to 30,000 tokens: a 7-attempt revision's last attempts outgrow qwen2.5-7b's 32k context
    sc = Scenario.model_validate({"workload": {"output": {"dist": "fixed", "mean": 6000, "max": 6000}}})
    short, long = plan(sc, [SEVEN], parse_strategies(["sequential_revision n=2,7"]), "aime-2024", 0.05, 6)
    assert short["complete"] and short["frontier_cost"]
    assert not long["complete"] and "refused" in long["note"] and not long["frontier_cost"]


def test_the_scenarios_rate_and_questions_are_kept_unless_flags_say_otherwise(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[workload]\nrate = 2.0\nnum_requests = 12\n")
    res = invoke("tts", "--model", SEVEN, "--strategy", "majority_vote n=1", "--benchmark", "aime-2024", "-c",
                 str(path), "--json")  # fmt: skip
    meta = json.loads(res.stdout)["meta"]
    assert res.exit_code == 0 and (meta["rate"], meta["questions"]) == (2.0, 12)
