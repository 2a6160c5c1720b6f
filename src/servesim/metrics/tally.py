"""What a summary needs of a run, gathered chunk by chunk: `Tally` of the request records,
`StepTotals` of one replica's step log.

A run kept in memory adds everything once; a streamed run (`servesim.stream`) adds each
chunk of finished requests and steps as it goes and keeps nothing else, so its memory
does not grow with the number of requests. Latency distributions are exact when kept in
memory and bounded-error histograms when streamed (`sketch.py`).
"""

from __future__ import annotations

import math

import numpy as np

from servesim.config import SLO
from servesim.metrics.sketch import Exact, LogHistogram
from servesim.records import Records


def good_mask(df: Records, slo: SLO) -> np.ndarray:
    ok = df.completed.copy()
    checks = (("ttft_ms", "ttft_s"), ("tpot_ms", "tpot_s"), ("e2el_ms", "e2el_s"))
    for field, col in checks:
        target = getattr(slo, field)
        if target is not None:
            v = df[col] * 1000.0
            # a request with one output token has no TPOT and meets any TPOT target
            ok &= np.where(np.isnan(v), col == "tpot_s", v <= target)
    return ok


class Tally:
    """Counts, token and energy sums, and latency distributions of the requests added so far."""

    DISTRIBUTIONS = ("ttft", "tpot", "e2el", "itl", "kv_transfer", "jct")
    PROGRAM_SUMS = ("programs", "program_calls", "tool_s", "queued_s", "running_s")

    def __init__(self, slo: SLO, replicas: int, exact: bool = True):
        self.slo = slo
        for name in self.DISTRIBUTIONS:
            setattr(self, name, Exact() if exact else LogHistogram())
        self.completed = self.failed = self.good = 0
        self.preemptions = self.migrations = 0
        self.input_tokens = self.output_tokens = 0
        self.duration = 0.0  # the last finish
        self.served = np.zeros(replicas, dtype=np.int64)  # requests each replica finished or handed on last
        # energy of the completed requests' tokens; GPU cost of every request's tokens
        self.prefill_j = self.decode_j = self.prefill_usd = self.decode_usd = 0.0
        self.pool_served: dict[str, int] = {}
        # completed programs: count, calls, and their calls' gap, queueing and running seconds summed
        self.programs = self.program_calls = 0
        self.tool_s = self.queued_s = self.running_s = 0.0

    def add(self, df: Records, gaps: np.ndarray, gap_counts: np.ndarray | None = None) -> None:
        """A chunk of request records and the inter-token gaps of its requests (each occurring gap_counts
        times, if given)."""
        done = df.select(df.completed)
        self.completed += done.rows
        self.failed += df.rows - done.rows
        if done.rows:
            self.duration = max(self.duration, float(done.finish_s.max()))
        self.input_tokens += int(done.input_len.sum())
        self.output_tokens += int(done.output_len.sum())
        self.preemptions += int(df.preemptions.sum())
        self.migrations += int(df.migrations.sum())
        self.served += np.bincount(df.replica[df.replica >= 0], minlength=len(self.served))
        self.prefill_j += float(done.prefill_j.sum())
        self.decode_j += float(done.decode_j.sum())
        self.prefill_usd += float(df.prefill_usd.sum())
        self.decode_usd += float(df.decode_usd.sum())
        self.ttft.add(done.ttft_s)
        self.tpot.add(done.tpot_s)
        self.e2el.add(done.e2el_s)
        self.itl.add(gaps, scratch=True, counts=gap_counts)  # (the gaps' order means nothing)
        self.kv_transfer.add(df.kv_transfer_s)
        if self.slo.any:
            self.good += int(good_mask(df, self.slo).sum())

    def add_programs(self, requests) -> None:
        """The programs that these finished requests completed (each is counted at its last call)."""
        jct = []
        for r in requests:
            prog = r.program
            if prog is None or prog.last is not r:
                continue
            jct.append(prog.finish - prog.arrival)
            self.programs += 1
            self.program_calls += len(prog.calls)
            for c in prog.calls:
                rec = c.record
                self.tool_s += c.delay
                self.queued_s += rec.first_scheduled - rec.arrival
                self.running_s += rec.finish - rec.first_scheduled
        if jct:
            self.jct.add(jct)

    def program_stats(self, duration: float) -> dict:
        """Program-level metrics: completion time (first arrival to last finish), programs/s, and where
        their time went, per program (summed over calls: for a chain they add up to the completion time)."""
        n = self.programs
        return {
            "completed": n,
            "calls": self.program_calls,
            "throughput": n / duration if duration > 0 else 0.0,
            "completion_ms": self.jct.stats(),
            "tool_s_mean": self.tool_s / n if n else None,
            "queued_s_mean": self.queued_s / n if n else None,
            "running_s_mean": self.running_s / n if n else None,
        }

    def add_pools(self, counts: dict[str, int]) -> None:
        for name, c in counts.items():
            self.pool_served[name] = self.pool_served.get(name, 0) + c

    def merge(self, other: Tally) -> None:
        """Add another tally's requests, whose replicas are numbered after these (partitions, in group order)."""
        for name in self.DISTRIBUTIONS:
            getattr(self, name).merge(getattr(other, name))
        for name in ("completed", "failed", "good", "preemptions", "migrations", "input_tokens", "output_tokens",
                     "prefill_j", "decode_j", "prefill_usd", "decode_usd", *self.PROGRAM_SUMS):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duration = max(self.duration, other.duration)
        self.served = np.concatenate([self.served, other.served])
        self.add_pools(other.pool_served)


class StepTotals:
    """One replica's step log folded: time-weighted sums and maxima, and energy in `bin_s` windows."""

    def __init__(self, idle_w: float, bin_s: float = 1.0):
        self.idle_w, self.bin_s = idle_w, bin_s  # idle_w: the whole replica
        self.iterations = 0
        self.busy_s = self.energy_j = 0.0
        self.seqs_s = self.tokens_s = self.kv_s = 0.0  # batch size, tokens and KV blocks times seconds
        self.max_seqs = self.max_kv = 0
        self.last_end = 0.0
        # steps that left requests waiting (the engine at full load): seconds, output and all tokens
        self.full_s = self.full_out = self.full_tokens = 0.0
        # per window: busy energy minus what idle power would have drawn in the busy time (the idle
        # fill of the whole window is added when the run's duration is known)
        self.net_j = np.zeros(0)

    def add(self, steps: dict[str, np.ndarray]) -> None:
        """Steps that follow every step added before."""
        start, end, energy = steps["start"], steps["end"], steps["energy"]
        if not len(start):
            return
        span = end - start
        self.iterations += int(steps["iters"].sum())
        self.busy_s += float(span.sum())
        self.energy_j += float(energy.sum())
        self.seqs_s += float((steps["seqs"] * span).sum())
        self.tokens_s += float((steps["tokens"] * span).sum())
        self.kv_s += float(steps["kv_s"].sum())
        self.max_seqs = max(self.max_seqs, int(steps["seqs"].max()))
        self.max_kv = max(self.max_kv, int(steps["kv_peak"].max()))
        self.last_end = float(end[-1])
        full = steps["waiting"] > 0
        if full.any():
            self.full_s += float(span[full].sum())
            self.full_out += float(steps["out"][full].sum())
            self.full_tokens += float((steps["tokens"] * steps["iters"])[full].sum())
        # cumulative net energy at the step boundaries, read at window edges
        x = np.column_stack([start, end]).ravel()
        net = energy - self.idle_w * span
        at_end = np.cumsum(net)
        y = np.column_stack([at_end - net, at_end]).ravel()
        b0, b1 = int(start[0] // self.bin_s), int(math.ceil(end[-1] / self.bin_s))
        edges = np.arange(b0, b1 + 1) * self.bin_s
        if b1 > len(self.net_j):
            self.net_j = np.concatenate([self.net_j, np.zeros(max(b1 - len(self.net_j), len(self.net_j)))])
        self.net_j[b0:b1] += np.diff(np.interp(edges, x, y))

    def watts(self, duration: float, windows=None) -> np.ndarray:
        """Mean power in each window from 0 to the run's duration (idle between and after steps); `windows`:
        the (start, end or None) spans the replica was billed in (an autoscaled one idles only inside them)."""
        until = max(duration, self.last_end)
        edges = np.arange(0.0, max(duration, self.bin_s) + self.bin_s, self.bin_s)
        covered = billed_per_bin(edges, until, windows)
        net = np.zeros(len(covered))
        m = min(len(net), len(self.net_j))
        net[:m] = self.net_j[:m]
        return (net + self.idle_w * covered) / self.bin_s

    def stats(self, kv_blocks: int, duration: float) -> dict:
        """Time-weighted batch and KV-cache statistics."""
        busy = self.busy_s
        avg = (lambda x: x / busy) if busy > 0 else (lambda x: 0.0)
        return {
            "iterations": self.iterations,
            "busy_fraction": busy / duration if duration > 0 else 0.0,
            "batch_size": {"mean": avg(self.seqs_s), "max": self.max_seqs, "mean_tokens": avg(self.tokens_s)},
            "kv_cache": {
                "blocks": kv_blocks,
                "mean_usage": avg(self.kv_s) / kv_blocks if kv_blocks else 0.0,
                "max_usage": self.max_kv / kv_blocks if kv_blocks else 0.0,
            },
        }


def billed_per_bin(edges: np.ndarray, until: float, windows=None) -> np.ndarray:
    """Seconds of each bin (between `edges`) up to `until` that fall inside `windows` ((start, end or None);
    None: all of them)."""
    spans = [(0.0, until)] if windows is None else [(a, until if b is None else min(b, until)) for a, b in windows]
    out = np.zeros(len(edges) - 1)
    for a, b in spans:
        out += np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0.0, None)
    return out


def billed_seconds(duration: float, windows=None) -> float:
    """Seconds of the run a replica was billed for: all of it, or its windows."""
    if windows is None:
        return duration
    return sum(max((duration if b is None else min(b, duration)) - a, 0.0) for a, b in windows)


def fold_steps(steps: dict[str, np.ndarray], idle_w: float, bin_s: float = 1.0) -> StepTotals:
    totals = StepTotals(idle_w, bin_s)
    totals.add(steps)
    return totals
