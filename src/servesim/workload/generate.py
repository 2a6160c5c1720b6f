"""Turn a workload description into a list of requests, deterministically from its seed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from servesim.config import WorkloadConfig
from servesim.sim.request import Program, Request
from servesim.workload.arrivals import arrival_times, shape_times
from servesim.workload.lengths import sample_lengths
from servesim.workload.programs import Stream, program_chunks, session_chunks
from servesim.workload.strategies import strategy_chunks
from servesim.workload.traces import read_trace


def generate(wl: WorkloadConfig, share: tuple[int, int] = (0, 1), unit: int | None = None) -> list[Request]:
    """Requests sorted by arrival, ids 0..n-1 in arrival order; with share = (g, G), only those whose id is
    g modulo G (the stream dealt in turn to G groups), keeping their ids. Programs (`programs.py`) give
    every call, the later ones not yet released; `unit` is their prefix-cache hash unit in tokens."""
    return [r for chunk in generate_chunks(wl, share, unit=unit) for r in chunk]


def generate_chunks(wl: WorkloadConfig, share: tuple[int, int] = (0, 1), size: int = 8192,
                    unit: int | None = None) -> Iterator[list[Request]]:  # fmt: skip
    """`generate`'s requests, `size` ids at a time: the arrays of times and lengths are drawn at once
    (16 bytes a request), the Request objects only as each chunk is taken."""
    if wl.programs is not None:
        yield from program_chunks(wl, unit or wl.unit_tokens(16), share, size)
        return
    if wl.strategy is not None:
        yield from strategy_chunks(wl, unit or wl.unit_tokens(16), share, size)
        return
    if wl.sessions:
        yield from session_chunks(wl, unit or wl.unit_tokens(16), share, size)
        return
    if wl.tenants is not None:
        times, ins, outs, tenants = _draw_tenants(wl)
        hashes = None
    else:
        times, ins, outs, hashes = _draw(wl)
    extra = None
    if wl.n > 1:  # the other samples' output lengths, drawn apart so the prompts' own draws stay as with n = 1
        extra = np.maximum(sample_lengths(wl.output, len(times) * (wl.n - 1), np.random.default_rng([wl.seed, 1])), 1)
    g, groups = share
    for lo in range(0, len(times), size):
        chunk = [Request(k, float(times[k]), int(ins[k]), int(outs[k]), hashes[k] if hashes else None)
                 for k in range(lo + (g - lo) % groups, min(lo + size, len(times)), groups)]  # fmt: skip
        if wl.tenants is not None:
            for r in chunk:
                r.tenant = int(tenants[r.id])
                r.priority = wl.tenants[r.tenant].priority
        yield chunk if extra is None else _samples(chunk, wl.n, extra, unit or wl.unit_tokens(16))


def _samples(prompts: list[Request], n: int, extra: np.ndarray, unit: int) -> list[Request]:
    """Each prompt k as n samples (ids k*n .. k*n+n-1): the first arrives, the others start when its prompt is
    computed and share its blocks (their hash units name the prompt's tokens); one Program per prompt."""
    out = []
    for p in prompts:
        k = p.id
        hashes, ends = p.hash_ids, None
        if hashes is None:  # the prompt in two segments: what the others find cached, and its last unit
            ends = sorted({c for c in ((p.prompt_len - 1) // unit, p.prompt_len // unit) if c > 0})
            hashes = Stream(k).ids(ends)
        lens = extra[k * (n - 1) : (k + 1) * (n - 1)].tolist()
        group = [p] + [Request(k * n + j, p.arrival, p.prompt_len, lens[j - 1], hashes) for j in range(1, n)]
        p.id, p.hash_ids = k * n, hashes
        for r in group:
            r.hash_ends = ends
        for sib in group[1:]:
            sib.parents, sib.tenant, sib.priority = 1, p.tenant, p.priority
        p.samples = tuple(group[1:])
        Program(k, group)
        out += group
    return out


def _draw_tenants(wl: WorkloadConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each tenant's stream drawn on its own (its own seed), merged in arrival order; and whose each is."""
    total_rate = sum(t.rate for t in wl.tenants)
    parts = []
    for k, t in enumerate(wl.tenants):
        rng = np.random.default_rng([wl.seed, k])
        n = t.num_requests or max(1, round((wl.num_requests or 1000) * t.rate / total_rate))
        times = t.start_s + arrival_times(n, t.rate, t.arrival, t.burstiness, rng)
        ins = sample_lengths(t.input or wl.input, n, rng)
        outs = sample_lengths(t.output or wl.output, n, rng)
        parts.append((times, ins, outs, np.full(n, k)))
    times, ins, outs, who = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.argsort(times, kind="stable")
    ins, outs = np.maximum(ins, 1), np.maximum(outs, 1)
    return times[order], ins[order].astype(np.int32), outs[order].astype(np.int32), who[order]


def lengths(wl: WorkloadConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output lengths of n requests of the workload (its trace's rows or its distributions)."""
    _, ins, outs, _ = _draw(wl.model_copy(update={"num_requests": n, "arrival": "poisson", "rate_shape": None,
                                                  "programs": None, "tenants": None}))  # fmt: skip
    return ins, outs


def _draw(wl: WorkloadConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, list | None]:
    """Arrival times, input and output lengths and prefix hashes, in arrival order."""
    rng = np.random.default_rng(wl.seed)
    hashes = None
    if wl.trace is not None:
        trace = read_trace(wl.trace, wl.trace_format)
        n = wl.num_requests or len(trace)
        random = wl.trace_sample == "random"
        rows = np.sort(rng.integers(0, len(trace), n)) if random else np.arange(n) % len(trace)
        ins, outs = trace.input_lens[rows], trace.output_lens[rows]
        if trace.hash_ids is not None:
            hashes = [trace.hash_ids[i] for i in rows]
        if wl.arrival == "trace":
            # wrap-around repeats continue after the trace's span
            span = trace.timestamps[-1] + (trace.timestamps[-1] / max(len(trace) - 1, 1))
            times = (trace.timestamps[rows] + (np.arange(n) // len(trace)) * span) / wl.time_scale
        else:
            times = arrival_times(n, wl.rate, wl.arrival, wl.burstiness, rng)
    else:
        n = wl.num_requests or 1000
        times = arrival_times(n, wl.rate, wl.arrival, wl.burstiness, rng)
        ins = sample_lengths(wl.input, n, rng)
        outs = sample_lengths(wl.output, n, rng)
    if wl.rate_shape:
        times = shape_times(times, wl.rate_shape, wl.rate_period_s)
    order = np.argsort(times, kind="stable")
    outs = np.maximum(outs, 1)  # a request always yields at least its first token
    ins = np.maximum(ins, 1)
    hashes = [hashes[i] for i in order] if hashes else None
    return times[order], ins[order].astype(np.int32), outs[order].astype(np.int32), hashes
