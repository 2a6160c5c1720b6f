"""Multi-turn sessions and agent programs: LLM calls that wait for each other.

A program's first call arrives with the workload's arrival process; every later call is
released `gap` seconds after the calls it waits for have finished (the user thinking,
the tool running), on the replica that served them. Its prompt is the whole context so
far plus `new_input` tokens, so it shares a growing prefix with the calls before it.

Prefix-cache entries name a program's context as one token stream: unit k of the
stream is the same content in every call that reaches it. A `Stream` names it in
segments, cut where a call's prompt or answer ends: each call caches two entries (its
prompt's new part, its answer), however long the context, as a radix tree compresses
its edges. A dag stage's parallel calls share the context of the stage before and
diverge after it, each on a stream of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from servesim.config import Duration, WorkloadConfig
from servesim.sim.request import Program, Request
from servesim.workload.arrivals import arrival_times, shape_times
from servesim.workload.lengths import sample_lengths
from servesim.workload.traces import read_sessions


def sample_durations(dist: Duration, n: int, rng: np.random.Generator) -> np.ndarray:
    """n durations in seconds drawn from `dist`, clipped to [min_s, max_s]."""
    if dist.dist == "fixed":
        values = np.full(n, dist.mean_s)
    elif dist.dist == "uniform":
        values = rng.uniform(dist.min_s, dist.max_s, n)
    elif dist.dist == "exponential":
        values = rng.exponential(dist.mean_s, n)
    else:
        mu = np.log(max(dist.mean_s, 1e-9)) - dist.sigma**2 / 2
        values = rng.lognormal(mu, dist.sigma, n)
    return np.clip(values, dist.min_s, dist.max_s)


def group_arrivals(wl: WorkloadConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """When n groups of calls (programs, a strategy's questions) arrive, in order: the workload's arrival
    process, shaped by its rate shape."""
    times = arrival_times(n, wl.rate, wl.arrival, wl.burstiness, rng)
    if wl.rate_shape:
        times = shape_times(times, wl.rate_shape, wl.rate_period_s)
    return np.sort(times)


def program_chunks(wl: WorkloadConfig, unit: int, share: tuple[int, int] = (0, 1),
                   size: int = 8192) -> Iterator[list[Request]]:  # fmt: skip
    """Every call of the programs, whole programs at a time (about `size` calls a chunk), in order of the
    programs' arrivals; ids number the calls in that order. With share = (g, G), only programs g modulo G."""
    pc = wl.programs
    rng = np.random.default_rng(wl.seed)
    n = wl.num_requests or 1000
    times = group_arrivals(wl, n, rng)
    firsts = np.maximum(sample_lengths(wl.input, n, rng), 1)
    stages = np.maximum(sample_lengths(pc.calls, n, rng), 1)
    width = pc.fanout if pc.shape == "dag" else 1
    counts = 1 + (stages - 1) * width
    total = int(counts.sum())
    outs = np.maximum(sample_lengths(wl.output, total, rng), 1).tolist()
    news = np.maximum(sample_lengths(pc.new_input, total, rng), 1).tolist()
    gaps = sample_durations(pc.gap, total, rng).tolist()
    g, groups = share
    req_id, k, chunk = 0, 0, []
    for p in range(n):
        m = int(counts[p])
        if p % groups == g:
            calls = _program(p, float(times[p]), int(firsts[p]), int(stages[p]), width, unit, req_id,
                             outs[k:k + m], news[k:k + m], gaps[k:k + m])  # fmt: skip
            chunk += calls
            if len(chunk) >= size:
                yield chunk
                chunk = []
        req_id += m
        k += m
    if chunk:
        yield chunk


def _program(pid: int, t: float, first: int, stages: int, width: int, unit: int, req_id: int,
             outs: list, news: list, gaps: list) -> list[Request]:  # fmt: skip
    """One program's calls, ids from `req_id`."""
    calls: list[Request] = []
    ctx, prev = 0, []  # context tokens before this stage, the calls of the stage before
    main = Stream(pid << 12)
    for s in range(stages):
        stage = []
        for j in range(1 if s == 0 else width):
            i = len(calls)
            prompt = first if s == 0 else ctx + news[i]
            req = Request(req_id + i, t, prompt, outs[i])
            if j:  # shares the stage's common context, then its own tail
                main.name_branch(req, ctx // unit, Stream((pid << 12) + len(calls)), unit)
            else:  # the main stream: this call's whole context continues the program's
                main.name(req, unit)
            if prev:
                req.parents, req.delay = len(prev), gaps[i]
            stage.append(req)
            calls.append(req)
        for parent in prev:
            parent.children = tuple(stage)
        ctx = stage[0].prompt_len + sum(r.output_len for r in stage)
        prev = stage
    Program(pid, calls)
    return calls


class Stream:
    """A token stream's prefix-cache names: segments cut where its calls' prompts and answers end.

    A call caches its prompt when it is computed and its context (all but the newest token) when it
    finishes, so it names its context cut at those points and at every earlier call's; a later call
    that extends the context names the same region the same way and finds it cached. A segment's id is
    (stream, start, end), so a call that cuts a region elsewhere (a truncated context) misses the
    earlier segments instead of aliasing them."""

    def __init__(self, sid: int):
        self.sid = sid
        self.cuts: set[int] = set()

    def ids(self, ends: list[int], start: int = 0) -> list[int]:
        return [(self.sid << 42) | (a << 21) | b for a, b in zip([start, *ends], ends, strict=False)]

    def name(self, req: Request, unit: int) -> None:
        prompt, context, full = context_cuts(req, unit)
        self.cuts.update((prompt, context))
        req.hash_ends = sorted(b for b in self.cuts | {full} if 0 < b <= full)
        req.hash_ids = self.ids(req.hash_ends)

    def name_branch(self, req: Request, shared: int, own: Stream, unit: int) -> None:
        """Name a call that shares this stream's first `shared` units, then continues on a stream of its own."""
        ends = sorted(b for b in self.cuts | {shared} if 0 < b <= shared)
        ids = self.ids(ends)
        cuts = context_cuts(req, unit)
        tail = sorted(b for b in set(cuts) if shared < b <= cuts[2])
        req.hash_ends = ends + tail
        req.hash_ids = ids + own.ids(tail, ends[-1] if ends else 0)


def context_cuts(req: Request, unit: int) -> tuple[int, int, int]:
    """Where a call's prompt ends, where the context it caches at its finish ends (all but the newest
    token), and where its whole context ends, in units."""
    context = req.prompt_len + req.output_len
    return req.prompt_len // unit, (context - 1) // unit, context // unit


def session_chunks(wl: WorkloadConfig, unit: int, share: tuple[int, int] = (0, 1),
                   size: int = 8192) -> Iterator[list[Request]]:  # fmt: skip
    """A sessions trace (`read_sessions`) as chain programs: each turn released after the one before
    finishes plus its recorded think time (`delay_s`), and with arrival = trace no earlier than its own
    timestamp; prompts are the turns' recorded lengths, their context one token stream."""
    recorded = read_sessions(wl.trace)
    k = len(recorded)
    n = wl.num_requests or k
    sessions = [recorded[i % k] for i in range(n)]
    if wl.arrival == "trace":  # repeats continue after the trace's span, as single-request traces do
        t0 = recorded[0][0]["timestamp"]
        span = (recorded[-1][0]["timestamp"] - t0) * (1 + 1 / max(k - 1, 1))
        starts = [(s[0]["timestamp"] - t0 + (i // k) * span) / wl.time_scale for i, s in enumerate(sessions)]
    else:
        starts = arrival_times(n, wl.rate, wl.arrival, wl.burstiness, np.random.default_rng(wl.seed)).tolist()
    g, groups = share
    req_id, chunk = 0, []
    for p, (start, turns) in enumerate(zip(starts, sessions, strict=True)):
        if p % groups == g:
            calls = []
            for i, turn in enumerate(turns):
                prompt, out = turn["input_length"], turn["output_length"]
                recorded = turn["timestamp"]
                at = start if i == 0 else ((recorded - turns[0]["timestamp"]) / wl.time_scale + start
                                           if wl.arrival == "trace" and recorded is not None else start)  # fmt: skip
                req = Request(req_id + i, at, prompt, out)
                if calls:
                    calls[-1].children = (req,)
                    req.parents, req.delay = 1, turn["delay_s"]
                calls.append(req)
            stream = Stream(p << 12)
            for req in calls:
                stream.name(req, unit)
            Program(p, calls)
            chunk += calls
            if len(chunk) >= size:
                yield chunk
                chunk = []
        req_id += len(turns)
    if chunk:
        yield chunk
