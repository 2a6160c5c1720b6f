"""Test-time scaling strategies as programs: each question's calls, what each reads and writes, and which wait
for which (`StrategyConfig`, `[workload.strategy]`).

A strategy turns a question into a list of `Call`s in order: a call's prompt is the whole context of the call
it `extends` (the question alone for none) plus its `new` tokens, it answers `out` tokens, and it is released
once every call in `after` (default: the one it extends) has finished. Calls that extend one context share it
in the prefix cache, so a verifier or a process reward model reads the sample it scores from the cache and
computes only its own few tokens: their cost is what the engine would spend. Which beam survives a step or
which answer a vote picks does not change what is computed and is not modelled; the accuracy a strategy buys
comes from the stated accuracy model (`tts/accuracy.py`), never from the simulation. The workload makes each
question's calls requests of one program (`workload/strategies.py`).

Stated simplifications: a verifier or reward model is the served model itself, on the same replicas; at each
beam-search step the first `n` candidates survive; sleep_time pre-processes a context of `question` tokens
into `budget` tokens in one call, and its `n` queries come as soon as that is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from servesim.config import StrategyConfig, WorkloadConfig
from servesim.errors import ServesimError


@dataclass(frozen=True)
class Call:
    """One LLM call of a question's program (see the module's docstring)."""

    new: int
    out: int
    extends: int | None = None
    after: tuple[int, ...] | None = None


def best_of_n(c: StrategyConfig, question: int, answers: Iterator[int]) -> list[Call]:
    """n samples of the question; with a verifier, an outcome reward model reads each one and scores it."""
    calls = [Call(question, next(answers)) for _ in range(c.n)]
    return calls + [Call(c.score_tokens, 1, extends=i) for i in range(c.n)] * c.verifier


def majority_vote(c: StrategyConfig, question: int, answers: Iterator[int]) -> list[Call]:
    """n samples of the question; the most frequent answer is taken (no further call)."""
    return [Call(question, next(answers)) for _ in range(c.n)]


def beam_search(c: StrategyConfig, question: int, answers: Iterator[int]) -> list[Call]:
    """`steps` steps of `step_tokens`: each of the n beams proposes `expand` candidates (the first step: n x
    expand from the question), a process reward model scores every candidate, and the next step waits for
    all of the scores."""
    calls: list[Call] = []
    beams: list[int | None] = [None] * c.n  # the call each surviving beam ends with (first: the question)
    scores: tuple[int, ...] = ()
    for _ in range(c.steps):
        step = []
        for b in beams:
            for _ in range(c.expand):
                calls.append(Call(question if b is None else 0, c.step_tokens, extends=b, after=scores))
                step.append(len(calls) - 1)
        first = len(calls)
        calls += [Call(c.score_tokens, 1, extends=i) for i in step]
        beams, scores = step[: c.n], tuple(range(first, len(calls)))
    return calls


def sequential_revision(c: StrategyConfig, question: int, answers: Iterator[int]) -> list[Call]:
    """n attempts in turn, each seeing the question and every attempt before it, asked to revise."""
    calls = [Call(question, next(answers))]
    return calls + [Call(c.revise_tokens, next(answers), extends=i) for i in range(c.n - 1)]


def budget_forced(c: StrategyConfig, question: int, answers: Iterator[int]) -> list[Call]:
    """One chain of thought of exactly `budget` tokens (thinking forced to go on, or cut, there)."""
    return [Call(question, c.budget)]


def sleep_time(c: StrategyConfig, question: int, answers: Iterator[int]) -> list[Call]:
    """A context of `question` tokens pre-processed offline into `budget` tokens, then n queries of
    `revise_tokens` against it, each reusing the cached context."""
    return [Call(question, c.budget)] + [Call(c.revise_tokens, next(answers), extends=0) for _ in range(c.n)]


STRATEGIES: dict[str, Callable[[StrategyConfig, int, Iterator[int]], list[Call]]] = {
    f.__name__: f for f in (best_of_n, majority_vote, beam_search, sequential_revision, budget_forced, sleep_time)
}


def calls_of(c: StrategyConfig, question: int = 1, answers: Iterator[int] | None = None) -> list[Call]:
    """A question's calls under strategy `c` (one-token answers where none are given: for counting; the config
    bounds how many there are)."""
    return STRATEGIES[c.name](c, question, answers or iter(lambda: 1, None))


def check_fits(wl: WorkloadConfig, kv_tokens: int) -> None:
    """Refuse a search tree wider than the KV cache: at beam search's last step its n x expand candidates each
    hold their own path (the question shared), and a step needs them all before the next one starts. (The
    independent samples of the other strategies run in turn where they do not fit at once, as in vLLM.)"""
    c = wl.strategy
    if c.name != "beam_search":
        return
    width = c.n * c.expand
    need = wl.input.max + width * (c.steps * c.step_tokens + c.score_tokens)
    if need > kv_tokens:
        raise ServesimError(f"beam_search keeps n x expand = {width} candidates of up to {c.steps} x "
                            f"{c.step_tokens} tokens at its last step: {need:,} tokens of KV cache with the "
                            f"longest question, more than a replica's {kv_tokens:,}; lower n, expand, steps or "
                            "step_tokens, or give the replicas more GPUs")  # fmt: skip
