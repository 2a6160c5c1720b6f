"""Turn a workload description into a list of requests, deterministically from its seed."""

from __future__ import annotations

import numpy as np

from servesim.config import WorkloadConfig
from servesim.sim.request import Request
from servesim.workload.arrivals import arrival_times
from servesim.workload.lengths import sample_lengths
from servesim.workload.traces import read_trace


def generate(wl: WorkloadConfig, share: tuple[int, int] = (0, 1)) -> list[Request]:
    """Requests sorted by arrival, ids 0..n-1 in arrival order; with share = (g, G), only those whose id is
    g modulo G (the stream dealt in turn to G groups), keeping their ids."""
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
    order = np.argsort(times, kind="stable")
    outs = np.maximum(outs, 1)  # a request always yields at least its first token
    ins = np.maximum(ins, 1)
    g, groups = share
    return [
        Request(k, float(times[i]), int(ins[i]), int(outs[i]), hashes[i] if hashes else None)
        for k, i in enumerate(order)
        if k % groups == g
    ]
