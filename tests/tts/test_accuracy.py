"""The stated accuracy model: closed forms against seeded Monte Carlo and enumeration, limits, and the shipped
parameters against the published points they were fitted to."""

import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from servesim.errors import ServesimError
from servesim.tts.accuracy import (
    BudgetCurve,
    Difficulty,
    fit_coverage,
    fit_difficulty,
    fit_error,
    get_params,
    load_params,
    pass_at_k,
    plurality_win,
)

D = Difficulty(alpha=0.6, beta=1.4, unsolvable=0.1)
N_MC = 200_000  # problems per Monte Carlo estimate; tolerances are 4+ standard errors (SE <= 0.5 / sqrt(N))


def _problems(d: Difficulty, n: int, rng) -> np.ndarray:
    p = rng.beta(d.alpha, d.beta, n)
    p[rng.random(n) < d.unsolvable] = 0.0
    return p


def _plurality(correct: int, wrong: np.ndarray) -> float:
    """The correct answer's chance to win a vote with these counts, ties broken at random."""
    top = max(correct, wrong.max(initial=0))
    if correct == 0 or correct < top:
        return 0.0
    return 1.0 / (1 + int((wrong == top).sum()))


# coverage


def test_coverage_matches_monte_carlo():
    rng = np.random.default_rng(1)
    p = _problems(D, N_MC, rng)
    for k in (1, 4, 32):
        solved = rng.binomial(k, p) > 0
        assert D.coverage(k) == pytest.approx(solved.mean(), abs=0.005)


def test_coverage_closed_form_matches_quadrature():
    # the same E over p by the bin grid the other strategies use: checks the grid, to 1e-5
    ks = np.array([1, 10, 100, 1000, 10000])
    for d in (D, Difficulty(alpha=0.015, beta=75.0), Difficulty(alpha=3.0, beta=0.4)):
        grid = d.expect(lambda p: 1 - (1 - p) ** ks)
        assert np.allclose(d.coverage(ks), grid, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 20), st.floats(0.01, 200), st.floats(0, 0.9))
def test_coverage_rises_with_k_towards_the_solvable(alpha, beta, unsolvable):
    d = Difficulty(alpha=alpha, beta=beta, unsolvable=unsolvable)
    cov = d.coverage(np.array([1, 2, 8, 64, 1024, 10**6]))
    assert np.all(np.diff(cov) >= -1e-12)
    assert cov[0] == pytest.approx(d.pass_at_1, rel=1e-9, abs=1e-12)
    assert cov[-1] <= 1 - unsolvable + 1e-12


# majority vote


def _brute_plurality(k: int, m: int) -> np.ndarray:
    """Every way the k - c wrong votes can fall on m wrong answers, equally likely."""
    out = []
    for c in range(k + 1):
        wins = [_plurality(c, np.bincount(seq, minlength=m)) for seq in itertools.product(range(m), repeat=k - c)]
        out.append(np.mean(wins))
    return np.array(out)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_plurality_win_is_exact(m):
    for k in range(1, 8):
        assert np.allclose(plurality_win(k, m), _brute_plurality(k, m), atol=1e-12)


def test_majority_vote_matches_monte_carlo():
    rng = np.random.default_rng(2)
    k, m, n = 16, 3, 40_000
    p = _problems(D, n, rng)
    wins = []
    for pi in p:
        counts = rng.multinomial(k, [pi] + [(1 - pi) / m] * m)
        wins.append(_plurality(counts[0], counts[1:]))
    assert D.majority_vote(k, m) == pytest.approx(np.mean(wins), abs=0.01)  # SE ~ 0.0025


def test_majority_vote_of_one_or_two_is_pass_at_1():
    assert D.majority_vote([1, 2], 4) == pytest.approx([D.pass_at_1] * 2, abs=1e-12)
    assert D.majority_vote(1, math.inf) == pytest.approx(D.pass_at_1, abs=1e-12)


@pytest.mark.parametrize(("p", "m", "limit"), [(0.3, 4, 1.0), (0.15, 4, 0.0), (0.6, 1, 1.0), (0.4, 1, 0.0),
                                               (0.05, math.inf, 1.0)])  # fmt: skip
def test_majority_vote_limit_depends_on_p_against_the_wrong_spread(p, m, limit):
    # correct wins in the limit iff p beats one wrong answer's share (1 - p) / m
    nearly_fixed = Difficulty(alpha=p * 1e6, beta=(1 - p) * 1e6)
    assert nearly_fixed.majority_vote(1024, m) == pytest.approx(limit, abs=0.01)


def test_majority_vote_is_fast_at_1024():
    start = time.perf_counter()
    Difficulty(alpha=0.7, beta=0.9).majority_vote(1024, 7)
    assert time.perf_counter() - start < 5


# verifier


def test_perfect_verifier_is_coverage_and_a_blind_one_is_pass_at_1():
    ks = np.array([1, 3, 30, 300])
    assert np.allclose(D.verifier_best_of(ks, 1.0, 0.0), D.coverage(ks), atol=1e-5)
    assert np.allclose(D.verifier_best_of(ks, 0.7, 0.7), D.pass_at_1, atol=1e-9)


def test_verifier_matches_monte_carlo():
    rng = np.random.default_rng(3)
    k, tpr, fpr = 8, 0.8, 0.1
    p = _problems(D, N_MC, rng)
    correct = rng.random((N_MC, k)) < p[:, None]
    accepted = rng.random((N_MC, k)) < np.where(correct, tpr, fpr)
    pool = np.where(accepted.any(axis=1, keepdims=True), accepted, True)  # no acceptance: any attempt
    keys = np.where(pool, rng.random((N_MC, k)), -1.0)  # a uniform pick from the pool
    picked = correct[np.arange(N_MC), keys.argmax(axis=1)]
    assert D.verifier_best_of(k, tpr, fpr) == pytest.approx(picked.mean(), abs=0.005)


# PRM-guided search


def test_prm_limits():
    assert D.prm_search(8, 5, 0.5) == pytest.approx(D.pass_at_1, abs=1e-6)
    perfect = D.expect(lambda p: (1 - (1 - p ** (1 / 5)) ** 8) ** 5)[0]
    assert D.prm_search(8, 5, 1.0) == pytest.approx(perfect, abs=1e-9)
    accs = [D.prm_search(8, 5, auc) for auc in (0.5, 0.6, 0.75, 0.9, 1.0)]
    assert np.all(np.diff(accs) > 0)
    assert np.all(np.diff([D.prm_search(w, 5, 0.8) for w in (1, 2, 4, 16)]) > 0)


def test_prm_matches_monte_carlo():
    rng = np.random.default_rng(4)
    width, steps, auc, n = 4, 3, 0.8, 100_000
    d_prime = math.sqrt(2) * 0.8416212335729143  # Phi^-1(0.8)
    p = _problems(D, n, rng)
    ok = np.ones(n, bool)
    for _ in range(steps):
        good = rng.random((n, width)) < p[:, None] ** (1 / steps)
        score = rng.standard_normal((n, width)) + d_prime * good
        ok &= good[np.arange(n), score.argmax(axis=1)]
    assert D.prm_search(width, steps, auc) == pytest.approx(ok.mean(), abs=0.006)


# sequential revision


def test_revision_matches_monte_carlo_and_settles():
    rng = np.random.default_rng(5)
    fix, brk, k = 0.3, 0.1, 5
    p = _problems(D, N_MC, rng)
    right = rng.random(N_MC) < p
    for _ in range(k - 1):
        flip = rng.random(N_MC) < np.where(right, brk, fix)
        right = np.where(p > 0, right ^ flip, False)  # unsolvable problems stay wrong
    assert D.sequential_revision(k, fix, brk) == pytest.approx(right.mean(), abs=0.005)
    assert D.sequential_revision(1, fix, brk) == pytest.approx(D.pass_at_1)
    assert D.sequential_revision(500, fix, brk) == pytest.approx(0.9 * fix / (fix + brk))


# budget forcing


def test_budget_curve_rises_and_saturates():
    curve = BudgetCurve(a0=0.25, a_max=0.57, tau_tokens=3000)
    acc = curve.budget_forced(np.array([0, 500, 2000, 8000, 32000, 1e6]))
    assert acc[0] == pytest.approx(0.25)
    assert np.all(np.diff(acc) > 0)
    assert acc[-1] == pytest.approx(0.57)
    with pytest.raises(ValidationError, match="a_max"):
        BudgetCurve(a0=0.6, a_max=0.5, tau_tokens=1000)


# pass@k estimator and fitting


def test_pass_at_k_estimator():
    assert pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 8, 3) == 1.0
    assert pass_at_k(200, 37, 10) == pytest.approx(1 - math.comb(163, 10) / math.comb(200, 10), rel=1e-12)
    with pytest.raises(ServesimError, match="pass_at_k needs"):
        pass_at_k(5, 6, 1)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.floats(0.0, 1.0))
def test_pass_at_k_is_unbiased(n, k, p):
    # E over c ~ Binomial(n, p) of the estimator is exactly 1 - (1-p)^k
    if k > n:
        return
    c = np.arange(n + 1)
    weights = np.array([math.comb(n, int(i)) * p**i * (1 - p) ** (n - i) for i in c])
    est = np.array([pass_at_k(n, int(i), k) for i in c])
    assert weights @ est == pytest.approx(1 - (1 - p) ** k, abs=1e-9)


def test_fit_recovers_known_parameters():
    truth = Difficulty(alpha=0.3, beta=2.0, unsolvable=0.2)
    ks = [1, 4, 16, 64, 256, 1024, 4096]
    points = [(k, float(truth.coverage(k))) for k in ks]
    fit = fit_coverage(points, unsolvable=None)
    assert fit.alpha == pytest.approx(0.3, rel=0.02)
    assert fit.beta == pytest.approx(2.0, rel=0.02)
    assert fit.unsolvable == pytest.approx(0.2, abs=0.005)
    maj = fit_difficulty(coverage=[(1, 0.4)], majority=[(32, 0.6)], wrong_answers=3)
    assert fit_error(maj, [(1, 0.4)], [(32, 0.6)], 3) < 1e-6


# shipped parameters


def test_shipped_fits_reproduce_their_cited_points():
    params = load_params()
    assert sum(p.fitted for p in params.values()) >= 5
    for (model, bench), p in params.items():
        if p.fitted:
            err = fit_error(p.difficulty, p.cited_coverage, p.cited_majority, p.wrong_answers)
            assert err < 0.01, f"{model}/{bench} misses a cited point by {err:.4f}"
        else:
            assert p.source.startswith("assumed:"), f"{model}/{bench} is not fitted, so its source says assumed"


def test_large_language_monkeys_swe_bench():
    d = get_params("DeepSeek-Coder-V2-Instruct", "SWE-bench-Lite").difficulty
    assert d.coverage(1) == pytest.approx(0.159, abs=0.01)
    assert d.coverage(250) == pytest.approx(0.56, abs=0.01)
    assert d.coverage(5) < d.coverage(250)


# refusals: one line, naming the field


@pytest.mark.parametrize(("fields", "field"), [({"alpha": -1.0, "beta": 1.0}, "alpha"),
                                                ({"alpha": 1.0, "beta": 0.0}, "beta"),
                                                ({"alpha": 1.0, "beta": 1.0, "unsolvable": 1.0}, "unsolvable"),
                                                ({"alpha": 1.0, "beta": 1.0, "alfa": 1.0}, "alfa")])  # fmt: skip
def test_bad_difficulty_refused_naming_the_field(fields, field):
    with pytest.raises(ValidationError) as e:
        Difficulty(**fields)
    assert e.value.errors()[0]["loc"] == (field,)


def test_bad_params_file_is_one_line(tmp_path):
    bad = tmp_path / "acc.toml"
    bad.write_text('[m.b]\nfitted = false\nsource = "assumed: x"\ndifficulty = { alpha = 1.0, beta = -2.0 }\n')
    with pytest.raises(ServesimError) as e:
        load_params(bad)
    msg = str(e.value)
    assert "\n" not in msg and "difficulty.beta" in msg and "[m.b]" in msg
    bad.write_text('[m.b]\nfitted = true\nsource = "a paper"\ndifficulty = { alpha = 1.0, beta = 2.0 }\n')
    with pytest.raises(ServesimError, match="needs the cited points"):
        load_params(bad)


def test_unknown_pair_lists_the_known():
    with pytest.raises(ServesimError) as e:
        get_params("gpt-9", "math-500")
    assert "\n" not in str(e.value) and "deepseek-coder-v2-instruct/swe-bench-lite" in str(e.value)


@pytest.mark.parametrize(("call", "match"), [(lambda: D.coverage(0), "k must be whole"),
                                             (lambda: D.majority_vote(8, 2.5), "wrong_answers"),
                                             (lambda: D.verifier_best_of(4, 1.2, 0.1), "tpr"),
                                             (lambda: D.prm_search(4, 3, 0.3), "auc"),
                                             (lambda: D.sequential_revision(4, 0.1, -0.1), "break_rate")])  # fmt: skip
def test_bad_arguments_refused(call, match):
    with pytest.raises(ServesimError, match=match):
        call()
