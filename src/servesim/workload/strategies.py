"""A test-time scaling strategy's questions as programs of requests (`[workload.strategy]`): each question's
calls (`tts/strategies.py`) made requests that wait for each other, their contexts named for the prefix cache."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from servesim.config import MAX_QUESTION_CALLS, WorkloadConfig
from servesim.sim.request import Program, Request
from servesim.tts.strategies import Call, calls_of
from servesim.workload.lengths import sample_lengths
from servesim.workload.programs import Stream, context_cuts, group_arrivals

STREAM_BITS = MAX_QUESTION_CALLS.bit_length()  # a question's calls name their streams below its id's bits


def strategy_chunks(wl: WorkloadConfig, unit: int, share: tuple[int, int] = (0, 1),
                    size: int = 8192) -> Iterator[list[Request]]:  # fmt: skip
    """Every call of the questions, whole questions at a time (about `size` calls a chunk), in order of the
    questions' arrivals; with share = (g, G), only questions g modulo G (ids as if all were made)."""
    c = wl.strategy
    rng = np.random.default_rng(wl.seed)
    n = wl.num_requests or 1000
    times = group_arrivals(wl, n, rng)
    questions = np.maximum(sample_lengths(wl.input, n, rng), 1).tolist()
    answers = np.maximum(sample_lengths(wl.output, n * c.n, rng), 1).tolist()
    per = len(calls_of(c))
    g, groups = share
    chunk: list[Request] = []
    for p in range(g, n, groups):
        calls = calls_of(c, questions[p], iter(answers[p * c.n : (p + 1) * c.n]))
        chunk += program(p, float(times[p]), calls, p * per, unit)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def program(pid: int, t: float, calls: list[Call], first_id: int, unit: int) -> list[Request]:
    """A question's calls as requests of one Program, ids from `first_id`, arriving at t (those that wait, once
    released). Prefix-cache names: a call keeps the names of what it shares with the call it extends (the
    first call's question, for a call of the question alone) and names its own tail on a stream of its own."""
    reqs: list[Request] = []
    context: list[int] = []  # each call's whole context: prompt and answer
    for i, call in enumerate(calls):
        base = 0 if call.extends is None else context[call.extends]
        req = Request(first_id + i, t, base + call.new, call.out)
        if call.extends is not None:
            parent, shared = reqs[call.extends], base // unit
        else:
            parent, shared = (reqs[0] if reqs else None), call.new // unit
        ends, ids = [], []
        if parent is not None:
            for end, name in zip(parent.hash_ends, parent.hash_ids, strict=True):
                if end > shared:
                    break
                ends.append(end)
                ids.append(name)
        start = ends[-1] if ends else 0
        cuts = set(context_cuts(req, unit))
        if call.extends is None:  # what the other samples of the question find cached: all but its last token
            cuts.add((call.new - 1) // unit)
        tail = sorted(b for b in cuts if b > start)
        req.hash_ends, req.hash_ids = ends + tail, ids + Stream((pid << STREAM_BITS) + i).ids(tail, start)
        context.append(base + call.new + call.out)
        reqs.append(req)
    for i, call in enumerate(calls):
        after = call.after if call.after is not None else (() if call.extends is None else (call.extends,))
        if after:
            reqs[i].parents = len(after)
            for a in after:
                reqs[a].children += (reqs[i],)
    # samples of the question alone start once the first has computed it, finding it cached (as vLLM's n)
    first, *others = [r for r, call in zip(reqs, calls, strict=True) if call.extends is None and not call.after]
    for r in others:
        r.parents = 1
    first.samples = tuple(others)
    Program(pid, reqs)
    return reqs
