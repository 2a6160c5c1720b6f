"""A stated accuracy model for test-time scaling strategies.

servesim never computes accuracy: the planner joins the numbers below, which follow from the stated
assumptions and the parameters in `params.toml` (fitted to published curves, or assumed and marked so), with
the serving cost the simulation measures.

The one shared assumption: a problem's attempts are independent given its per-attempt success probability p,
and p varies over a benchmark's problems as Beta(alpha, beta), except for a fraction `unsolvable` with p = 0
(Large Language Monkeys' coverage curves flatten that way). Each strategy adds its own stated assumption,
said in its docstring and in docs/test_time.md.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import optimize, special, stats

from servesim.errors import ServesimError
from servesim.files import read_structured

_PARAMS = Path(__file__).with_name("params.toml")
DEFAULT_WRONG_ANSWERS = 4.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _ks(k, what: str = "k") -> tuple[np.ndarray, bool]:
    """k as an array of positive integers, and whether it was a scalar."""
    arr = np.asarray(k)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 1) or np.any(arr != np.round(arr)):
        raise ServesimError(f"{what} must be whole numbers >= 1, not {k!r}")
    return np.atleast_1d(arr).astype(np.int64), arr.ndim == 0


def _out(values: np.ndarray, scalar: bool) -> float | np.ndarray:
    values = np.clip(values, 0.0, 1.0)  # rounding can step a hair outside [0, 1]
    return float(values[0]) if scalar else values


def _unit(name: str, x: float, lo_open: bool = False, hi_open: bool = False) -> None:
    if not (x > 0 if lo_open else x >= 0) or not (x < 1 if hi_open else x <= 1):
        lo, hi = "(0" if lo_open else "[0", "1)" if hi_open else "1]"
        raise ServesimError(f"{name} must be in {lo}, {hi}, not {x!r}")


# Quadrature over p: bins with exact Beta masses (regularised incomplete beta), f taken at each bin's
# conditional mean, so the rule is exact for f linear within a bin. Bins are fine near 0 and 1 (log-spaced to
# 1e-12) because pass@k-like f change on a scale of 1/k there, and uniform (1/4000) inside.
_EDGES = np.unique(np.concatenate([np.logspace(-12, -2, 241), np.linspace(0, 1, 4001), 1 - np.logspace(-12, -2, 241)]))


@lru_cache(maxsize=64)  # a planner sweeps few difficulties, a fit many: keep the cache bounded
def _grid(alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    mass = np.diff(special.betainc(alpha, beta, _EDGES))
    first = alpha / (alpha + beta) * np.diff(special.betainc(alpha + 1, beta, _EDGES))
    lo, hi = _EDGES[:-1], _EDGES[1:]
    nodes = np.where(mass > 0, first / np.where(mass > 0, mass, 1.0), (lo + hi) / 2)
    return _frozen(np.clip(nodes, lo, hi)), _frozen(mass)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # cached: a caller's edit must not change later answers
    return a


class Difficulty(_Strict):
    """Per-problem, per-attempt success probability p: Beta(alpha, beta) on the solvable problems, p = 0 on a
    fraction `unsolvable`. Every accuracy below is an average over problems."""

    alpha: float = Field(gt=0, description="Beta shape alpha (> 0); pass@1 of the solvable = alpha / (alpha + beta)")
    beta: float = Field(gt=0, description="Beta shape beta (> 0)")
    unsolvable: float = Field(0.0, ge=0, lt=1, description="fraction of problems no attempt solves, in [0, 1)")

    @property
    def pass_at_1(self) -> float:
        return (1 - self.unsolvable) * self.alpha / (self.alpha + self.beta)

    def expect(self, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """E over problems of f(p); f maps an (n, 1) column of p to (n, m) and gets p = 0 for the unsolvable."""
        nodes, mass = _grid(self.alpha, self.beta)
        solvable = mass @ f(nodes[:, None])
        return (1 - self.unsolvable) * solvable + self.unsolvable * f(np.zeros((1, 1)))[0]

    def coverage(self, k) -> float | np.ndarray:
        """pass@k: the chance that any of k attempts is correct, E[1 - (1-p)^k]; exact:
        (1 - unsolvable) * (1 - B(alpha, beta + k) / B(alpha, beta))."""
        ks, scalar = _ks(k)
        log_miss = special.betaln(self.alpha, self.beta + ks) - special.betaln(self.alpha, self.beta)
        return _out((1 - self.unsolvable) * -np.expm1(log_miss), scalar)

    def majority_vote(self, k, wrong_answers: float = DEFAULT_WRONG_ANSWERS) -> float | np.ndarray:
        """Self-consistency: the chance that the correct answer is the most frequent among k attempts, ties
        broken at random. A wrong attempt gives one of `wrong_answers` distinct wrong answers, uniformly
        (math.inf: wrong answers never agree). Exact: the number of correct attempts is beta-binomial, and the
        chance that c correct votes win does not depend on p (`plurality_win`)."""
        ks, scalar = _ks(k)
        out = np.empty(ks.size)
        for i, kk in enumerate(ks):
            pmf = stats.betabinom.pmf(np.arange(kk + 1), kk, self.alpha, self.beta)
            out[i] = (1 - self.unsolvable) * pmf @ plurality_win(int(kk), wrong_answers)
        return _out(out, scalar)

    def verifier_best_of(self, k, tpr: float, fpr: float) -> float | np.ndarray:
        """Best-of-k with a verifier (or an outcome reward model with a threshold) that accepts a correct
        attempt with probability tpr and a wrong one with fpr, independently. The answer is a random accepted
        attempt, or a random attempt when none is accepted. Given p, with A = p tpr + (1-p) fpr:
        (1 - (1-A)^k) p tpr / A + (1-A)^k p (1-tpr) / (1-A); then averaged over p."""
        _unit("tpr", tpr)
        _unit("fpr", fpr)
        ks, scalar = _ks(k)

        def given_p(p: np.ndarray) -> np.ndarray:
            accept = p * tpr + (1 - p) * fpr
            none = (1 - accept) ** ks
            picked = np.divide(p * tpr, accept, out=np.zeros_like(accept), where=accept > 0)
            fallback = np.divide(p * (1 - tpr), 1 - accept, out=np.zeros_like(accept), where=accept < 1)
            return (1 - none) * picked + none * fallback

        return _out(self.expect(given_p), scalar)

    def prm_search(self, width: int, steps: int, auc: float) -> float:
        """PRM-guided search, stated simply: a solution is `steps` steps and is correct only if every step is;
        a sampled step is correct with probability p^(1/steps) (so one unguided chain is correct with p). At
        each step `width` continuations of the kept chain are sampled and the one the PRM scores highest is
        kept (one beam, `width` candidates; a wrong step is never repaired). The PRM scores a correct step
        Normal(d', 1) and a wrong one Normal(0, 1), d' = sqrt(2) Phi^-1(auc): auc is the chance it ranks a
        random correct step above a random wrong one (0.5: no better than chance, giving pass@1)."""
        width, _ = _ks(width, "width")
        steps, _ = _ks(steps, "steps")
        width, steps = int(width[0]), int(steps[0])
        if not 0.5 <= auc <= 1:
            raise ServesimError(f"auc must be in [0.5, 1] (0.5: the PRM ranks at random), not {auc!r}")
        keep = _kept_correct(width, auc)  # P(kept step correct | j of width correct), j = 0..width

        def given_p(p: np.ndarray) -> np.ndarray:
            step = p ** (1 / steps)
            per_step = stats.binom.pmf(np.arange(width + 1), width, step) @ keep
            return per_step[:, None] ** steps

        return float(np.clip(self.expect(given_p)[0], 0, 1))

    def sequential_revision(self, k, fix_rate: float, break_rate: float) -> float | np.ndarray:
        """Sequential revision as a two-state Markov chain: the first attempt is correct with p; each of the
        k - 1 revisions turns a wrong answer right with fix_rate and a right one wrong with break_rate, the
        same for every solvable problem (unsolvable ones stay wrong); the last answer is kept. With
        s = fix / (fix + break): E = (1 - unsolvable) (s + (E[p] - s) (1 - fix - break)^(k-1))."""
        _unit("fix_rate", fix_rate)
        _unit("break_rate", break_rate)
        ks, scalar = _ks(k)
        mean = self.alpha / (self.alpha + self.beta)
        if fix_rate + break_rate == 0:
            return _out(np.full(ks.size, self.pass_at_1), scalar)
        steady = fix_rate / (fix_rate + break_rate)
        solvable = steady + (mean - steady) * (1 - fix_rate - break_rate) ** (ks - 1.0)
        return _out((1 - self.unsolvable) * solvable, scalar)


class BudgetCurve(_Strict):
    """One long chain of thought against its thinking budget (budget forcing, s1): accuracy rises from a0 at
    no thinking towards a_max, a_max - (a_max - a0) exp(-tokens / tau_tokens)."""

    a0: float = Field(ge=0, le=1, description="accuracy with no thinking tokens")
    a_max: float = Field(ge=0, le=1, description="accuracy with an unlimited budget")
    tau_tokens: float = Field(gt=0, description="thinking tokens that close 63% of the gap from a0 to a_max")

    @model_validator(mode="after")
    def _rising(self):
        if self.a_max < self.a0:
            raise ValueError(f"a_max ({self.a_max}) must be at least a0 ({self.a0}): thinking longer never hurts here")
        return self

    def budget_forced(self, tokens) -> float | np.ndarray:
        """Accuracy of one chain of thought forced to `tokens` thinking tokens."""
        arr = np.asarray(tokens, dtype=float)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ServesimError(f"thinking tokens must be finite and >= 0, not {tokens!r}")
        acc = self.a_max - (self.a_max - self.a0) * np.exp(-np.atleast_1d(arr) / self.tau_tokens)
        return _out(acc, arr.ndim == 0)


@lru_cache(maxsize=256)
def plurality_win(k: int, wrong_answers: float = DEFAULT_WRONG_ANSWERS) -> np.ndarray:
    """P(the correct answer wins the vote | c of k attempts correct), for c = 0..k: the k - c wrong attempts
    spread uniformly over `wrong_answers` answers, ties broken at random.

    Exact, by Poissonisation: independent Poisson(n / m) counts on m wrong answers, conditioned on summing to
    n = k - c, are the multinomial counts; so P(t wrong answers tie at c and the others stay below c) is a
    convolution of truncated Poisson pmfs, read at index n and divided by Poisson(n; n). The convolutions are
    batched FFTs over c, m of them in all; cost grows with m (m = 64 and k = 1024 take about a second)."""
    m = float(wrong_answers)
    if not (m >= 1 and (math.isinf(m) or m == round(m))):
        raise ServesimError(f"wrong_answers must be a whole number >= 1 or inf, not {wrong_answers!r}")
    c = np.arange(k + 1)
    n = k - c
    win = (c > n).astype(float)  # no wrong answer can reach c votes
    if math.isinf(m):  # every wrong attempt is a different answer: 2 votes win, 1 vote ties all k answers
        win[c >= 2] = 1.0
        win[1] = 1.0 / k
        return _frozen(win)
    m = int(m)
    rows = np.flatnonzero((c >= 1) & (c <= n) & (n <= m * c))  # contested; n > m c: some wrong answer beats c
    if rows.size == 0:
        return _frozen(win)
    cc, nn = c[rows], n[rows]
    lam = nn / m
    i = np.arange(k + 1)
    below = np.where(i[None, :] < cc[:, None], stats.poisson.pmf(i[None, :], lam[:, None]), 0.0)
    log_at = stats.poisson.logpmf(cc, lam)  # one wrong answer with exactly c votes
    size = 1 << int(2 * (k + 1) - 1).bit_length()
    below_f = np.fft.rfft(below, size, axis=1)
    power = np.zeros_like(below)
    power[:, 0] = 1.0  # below convolved 0 times
    total = np.zeros(rows.size)
    for used in range(m + 1):  # `used` answers below c, t = m - used tied at c
        t = m - used
        idx = nn - t * cc
        ok = idx >= 0
        log_coef = special.gammaln(m + 1) - special.gammaln(t + 1) - special.gammaln(used + 1) - math.log(t + 1)
        total[ok] += np.exp(log_coef + t * log_at[ok]) * power[ok, idx[ok]]
        if used < m:  # keep indices <= k only: higher ones never feed lower ones, so no FFT wrap-around
            power = np.fft.irfft(np.fft.rfft(power, size, axis=1) * below_f, size, axis=1)[:, : k + 1]
    win[rows] = np.clip(total / stats.poisson.pmf(nn, nn), 0.0, 1.0)
    return _frozen(win)


@cache
def _kept_correct(width: int, auc: float) -> np.ndarray:
    """P(the top-scored of `width` candidates is correct | j correct), j = 0..width: the best of j Normal(d', 1)
    scores beats the best of width - j Normal(0, 1), integral of j phi(z) Phi(z)^(j-1) Phi(z + d')^(width-j)."""
    j = np.arange(width + 1)
    if auc >= 1:
        return _frozen((j > 0).astype(float))
    d = math.sqrt(2) * stats.norm.ppf(auc)
    z = np.linspace(-12, 12, 4801)
    top_correct = j[:, None] * stats.norm.pdf(z) * stats.norm.cdf(z) ** np.maximum(j[:, None] - 1, 0)
    out = np.trapezoid(top_correct * stats.norm.cdf(z + d) ** (width - j[:, None]), z, axis=1)
    out[0] = 0.0
    return _frozen(np.clip(out, 0.0, 1.0))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021)'s unbiased pass@k from n attempts of which c are correct: 1 - C(n-c, k) / C(n, k),
    computed as a product so large n does not overflow."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ServesimError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, not n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


Points = Sequence[tuple[float, float]]


def fit_error(d: Difficulty, coverage: Points = (), majority: Points = (),
              wrong_answers: float = DEFAULT_WRONG_ANSWERS) -> float:  # fmt: skip
    """The largest absolute gap between the model and the cited (k, accuracy) points."""
    gaps = [abs(d.coverage(k) - acc) for k, acc in coverage]
    gaps += [abs(d.majority_vote(k, wrong_answers) - acc) for k, acc in majority]
    return max(gaps, default=0.0)


def fit_difficulty(coverage: Points = (), majority: Points = (), wrong_answers: float = DEFAULT_WRONG_ANSWERS,
                   unsolvable: float | None = 0.0) -> Difficulty:  # fmt: skip
    """Least-squares fit of alpha, beta (and `unsolvable` when None) to published (k, pass@k) and
    (k, maj@k) points, in accuracy units. Several starts, because the fit surface is flat in the spread."""
    n_free = 2 + (unsolvable is None)
    if len(coverage) + len(majority) < n_free:
        raise ServesimError(f"fitting {n_free} parameters needs at least {n_free} points")

    def model(x: np.ndarray) -> Difficulty:
        u = special.expit(x[2]) * 0.999 if unsolvable is None else unsolvable
        return Difficulty(alpha=float(np.exp(x[0])), beta=float(np.exp(x[1])), unsolvable=float(u))

    def residuals(x: np.ndarray) -> np.ndarray:
        d = model(x)
        res = [d.coverage(k) - acc for k, acc in coverage]
        res += [d.majority_vote(k, wrong_answers) - acc for k, acc in majority]
        return np.array(res)

    # start from the cited pass@1 (or a guess) as the mean, at several spreads
    first = dict(coverage).get(1, 0.3)
    mean = min(max(first, 1e-6), 1 - 1e-6)
    best = None
    for conc in (0.01, 0.1, 1.0, 10.0):
        x0 = [math.log(mean * conc), math.log((1 - mean) * conc)] + ([0.0] if unsolvable is None else [])
        fit = optimize.least_squares(residuals, x0, bounds=(-30, 30), xtol=1e-14, ftol=1e-14, gtol=1e-14)
        if best is None or fit.cost < best.cost:
            best = fit
    return model(best.x)


def fit_coverage(points: Points, unsolvable: float | None = 0.0) -> Difficulty:
    """Fit a Difficulty to published coverage (pass@k) points [(k, coverage), ...]."""
    return fit_difficulty(coverage=points, unsolvable=unsolvable)


class Params(BaseModel):
    """Accuracy parameters of one (model, benchmark), with where they come from."""

    # lax, unlike the formulas' models: TOML gives the cited (k, accuracy) pairs as arrays, not tuples
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    source: str = Field(min_length=1, description="the paper, table or figure; 'assumed: ...' when not fitted")
    fitted: bool = Field(description="true: fitted to the cited points; false: assumed")
    difficulty: Difficulty | None = None
    wrong_answers: float = Field(DEFAULT_WRONG_ANSWERS, ge=1, description="distinct wrong answers (majority vote)")
    budget: BudgetCurve | None = None
    cited_coverage: list[tuple[int, float]] = Field(default_factory=list, description="published (k, pass@k)")
    cited_majority: list[tuple[int, float]] = Field(default_factory=list, description="published (k, maj@k)")
    note: str = ""

    @model_validator(mode="after")
    def _complete(self):
        if self.difficulty is None and self.budget is None:
            raise ValueError("give a difficulty table, a budget table or both")
        if self.fitted and not (self.cited_coverage or self.cited_majority):
            raise ValueError("fitted = true needs the cited points (cited_coverage or cited_majority)")
        if self.fitted and self.source.startswith("assumed"):
            raise ValueError("an 'assumed: ...' source cannot be fitted = true")
        for k, acc in (*self.cited_coverage, *self.cited_majority):
            if k < 1 or not 0 <= acc <= 1:
                raise ValueError(f"a cited point [{k}, {acc}] needs k >= 1 and an accuracy from 0 to 1 (a fraction, "
                                 "not percent)")  # fmt: skip
        return self


def _parse(data: dict, origin: str) -> dict[tuple[str, str], Params]:
    out = {}
    for model, benches in data.items():
        if not isinstance(benches, dict):
            raise ServesimError(f"{origin}: [{model}] must hold [{model}.BENCHMARK] tables")
        for bench, fields in benches.items():
            if not isinstance(fields, dict):
                raise ServesimError(f"{origin}: [{model}.{bench}] must be a table of accuracy parameters")
            try:
                out[model.lower(), bench.lower()] = Params.model_validate(fields)
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-"))
                msg = err["msg"].removeprefix("Value error, ")
                where = f" field {loc}" if loc else ""
                raise ServesimError(f"{origin}: [{model}.{bench}]{where}: {msg}") from None
    return out


@cache
def _builtin() -> dict[tuple[str, str], Params]:
    return _parse(tomllib.loads(_PARAMS.read_text()), "built-in accuracy parameters")


def load_params(path: str | Path | None = None) -> dict[tuple[str, str], Params]:
    """The built-in (model, benchmark) parameters, plus those of a TOML file of [MODEL.BENCHMARK] tables."""
    params = dict(_builtin())
    if path is not None:
        params.update(_parse(read_structured(path, "accuracy parameter file"), str(path)))
    return params


def get_params(model: str, benchmark: str, path: str | Path | None = None) -> Params:
    """One (model, benchmark)'s parameters; an unknown pair is one error line naming the known ones."""
    params = load_params(path)
    key = (model.strip().lower(), benchmark.strip().lower())
    if key not in params:
        known = ", ".join(f"{m}/{b}" for m, b in sorted(params))
        raise ServesimError(f"no accuracy parameters for model {model!r} on benchmark {benchmark!r}; known: {known}")
    return params[key]
