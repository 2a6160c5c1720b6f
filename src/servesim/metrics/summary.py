"""Per-request records and the run summary, defined as `vllm bench serve` defines them.

TTFT: first token time - arrival. TPOT: (E2EL - TTFT) / (output tokens - 1), for
requests with more than one output token. ITL: every gap between consecutive tokens
of a request, pooled over requests. E2EL: finish - arrival. Duration: from the first
arrival (t = 0) to the last finish. Goodput: requests meeting every SLO, per second.
"""

from __future__ import annotations

from operator import attrgetter
from typing import NamedTuple

import numpy as np

from servesim.metrics.tally import StepTotals, Tally
from servesim.records import Records


def request_records(requests, itls: ITLs, replica_of: list[int] | None = None) -> Records:
    """One row per request (what the workload said of it, what its record holds), with ITL statistics from
    `itl_table(requests, ...)`; `replica_of` maps the engine that made its last token to its replica (with
    pipeline parallelism a replica's micro-batch streams are engines of their own)."""
    recs = [r.record for r in requests]
    of = replica_of or _Same()
    derived = {  # the columns that are not one attribute of the request or its record
        "completed": lambda: [c.finish is not None for c in recs],
        "replica": lambda: [of[c.segments[-1][0]] if c.segments else -1 for c in recs],
        "program": lambda: [r.program.id if r.program is not None else -1 for r in requests],
    }

    def column(name: str) -> np.ndarray:  # one at a time, so that only one list of Python values lives at once
        src = COLUMNS[name]
        if src is None:
            values = derived[name]()
        else:
            of_what, attr = src
            values = list(map(attrgetter(attr), recs if of_what == "record" else requests))
        return np.array(values, dtype=float if name in OPTIONAL_TIMES else None)

    df = Records({name: column(name) for name in COLUMNS})
    if not len(requests):
        df.update({k: np.empty(0, dtype=int if k in INT_COLUMNS else bool if k in FLAGS else float) for k in COLUMNS})
    df["energy_j"] = df.prefill_j + df.decode_j
    df["cost_usd"] = df.prefill_usd + df.decode_usd
    df["ttft_s"] = df.first_token_s - df.arrival_s
    df["e2el_s"] = df.finish_s - df.arrival_s
    df["queue_s"] = df.first_scheduled_s - df.arrival_s
    multi = df.output_len > 1
    with np.errstate(invalid="ignore", divide="ignore"):
        df["tpot_s"] = np.where(multi, (df.e2el_s - df.ttft_s) / np.maximum(df.output_len - 1, 1), np.nan)
    df["itl_mean_s"] = itls.mean
    df["itl_max_s"] = itls.max
    return df


class _Same:
    """Every engine its own replica."""

    def __getitem__(self, i: int) -> int:
        return i


# column -> (the request or its record, the attribute), or None where derived; in the order the records list them
COLUMNS = {
    "request_id": ("request", "id"), "arrival_s": ("record", "arrival"),
    "input_len": ("request", "prompt_len"), "output_len": ("request", "output_len"),
    "first_token_s": ("record", "first_token"), "finish_s": ("record", "finish"), "completed": None,
    "rejected": ("record", "rejected"), "preemptions": ("record", "preemptions"),
    "cached_tokens": ("record", "cached_tokens"), "first_scheduled_s": ("record", "first_scheduled"),
    "replica": None, "program": None, "tenant": ("request", "tenant"), "priority": ("request", "priority"),
    "kv_transfer_s": ("record", "transfer_s"), "migrations": ("record", "migrations"),
    "prefill_j": ("record", "prefill_j"), "decode_j": ("record", "decode_j"),
    "prefill_usd": ("record", "prefill_usd"), "decode_usd": ("record", "decode_usd"),
}  # fmt: skip
OPTIONAL_TIMES = ("first_token_s", "finish_s", "first_scheduled_s", "kv_transfer_s")  # None -> NaN
INT_COLUMNS = ("request_id", "input_len", "output_len", "preemptions", "cached_tokens", "replica", "program",
               "tenant", "priority", "migrations")  # fmt: skip
FLAGS = ("completed", "rejected")


def token_times(req, iter_ends: list[np.ndarray]) -> np.ndarray:
    """The time of every output token of a finished request (iter_ends: each replica's iteration ends)."""
    return np.concatenate([iter_ends[i][a : b + 1] for i, a, b in req.record.segments])


class ITLs(NamedTuple):
    """Inter-token latencies: each request's mean and largest gap (NaN without one), and every gap as distinct
    values with how many times each occurs (`gaps`, `counts`)."""

    mean: np.ndarray
    max: np.ndarray
    gaps: np.ndarray
    counts: np.ndarray

    def expanded(self) -> np.ndarray:
        """Every gap, each as often as it occurs."""
        return np.repeat(self.gaps, self.counts)


def itl_table(requests, iter_ends: list[np.ndarray], bases: list[int] | None = None) -> ITLs:
    """The inter-token gaps of the finished requests, without listing them one by one (a run of 10^6 requests
    has ~2 x 10^8): a request's tokens come from runs of consecutive iterations of one replica (its
    `segments`), so its gaps inside a segment are those iterations' durations, and every iteration's duration
    is counted once per segment that spans it; the gaps between a request's segments (preempted, moved) are
    listed. Replica i's iter_ends start at iteration bases[i] (default 0). Worked replica by replica, so that
    no array spans every iteration of the fleet."""
    n = len(requests)
    mean, largest = np.full(n, np.nan), np.full(n, np.nan)
    owner, where, first, last = [], [], [], []  # each segment of a request with a gap: request, replica, iterations
    for i, r in enumerate(requests):
        segs = r.record.segments
        if r.record.finish is None or r.output_len < 2 or (len(segs) == 1 and segs[0][1] == segs[0][2]):
            continue
        for rep, a, b in segs:
            owner.append(i)
            where.append(rep)
            first.append(a)
            last.append(b)
    if not owner:
        return ITLs(mean, largest, np.empty(0), np.empty(0, dtype=np.int64))
    owner, where = np.asarray(owner), np.asarray(where)
    a, b = np.asarray(first), np.asarray(last)
    t_first, t_last, peak = np.empty(len(a)), np.empty(len(a)), np.full(len(a), -np.inf)
    gaps, counts = [], []
    for rep in np.unique(where):
        sel = np.flatnonzero(where == rep)
        sa, sb = a[sel] - (bases[rep] if bases else 0), b[sel] - (bases[rep] if bases else 0)
        end = iter_ends[rep][: sb.max() + 1]  # (past the last iteration a request used: nothing, or unwritten room)
        t_first[sel], t_last[sel] = end[sa], end[sb]
        # step[g]: iteration g's duration (the gap to the token before it); one slot more for reduceat's bounds
        size = len(end)
        step = np.empty(size + 1)
        step[0], step[size] = 0.0, -np.inf
        np.subtract(end[1:], end[:-1], out=step[1:size])
        # how many segments span each iteration past their first: a difference array over iterations
        inside = sb > sa
        spans = np.bincount(sa[inside] + 1, minlength=size + 1)
        spans -= np.bincount(sb[inside] + 1, minlength=size + 1)
        spans = np.cumsum(spans, out=spans)[:size]
        used = spans > 0
        gaps.append(step[:size][used])
        counts.append(spans[used])
        # the largest step inside each segment: reduceat over [a+1, b+1), segments taken by their start so that
        # the stretches between them, which reduceat also reduces, add up to one pass over the iterations
        order = np.argsort(sa, kind="stable")
        bounds = np.stack([sa[order] + 1, sb[order] + 1], axis=1).ravel()
        most = np.empty(len(sa))
        most[order] = np.maximum.reduceat(step, bounds)[::2]
        peak[sel] = np.where(inside, most, -np.inf)
    # the gaps between one request's consecutive segments
    same = owner[1:] == owner[:-1]
    between = t_first[1:][same] - t_last[:-1][same]
    peak[1:][same] = np.maximum(peak[1:][same], between)
    starts = np.flatnonzero(np.r_[True, ~same])
    ids = owner[starts]
    largest[ids] = np.maximum.reduceat(peak, starts)
    tokens = np.add.reduceat(b - a + 1, starts)
    stops = np.r_[starts[1:], len(owner)] - 1
    mean[ids] = (t_last[stops] - t_first[starts]) / (tokens - 1)
    return ITLs(mean, largest, np.concatenate([*gaps, between]),
                np.concatenate([*counts, np.ones(len(between), dtype=np.int64)]))


def pool_stats(replicas: list[dict], pools: dict[str, list[int]], served: dict[str, int]) -> dict:
    """Replica statistics gathered per pool: requests it served, mean busy fraction, batch and KV use."""
    out = {}
    for name, ids in pools.items():
        reps = [replicas[i] for i in ids]
        out[name] = {
            "replicas": ids,
            "requests": served[name],
            "busy_fraction": float(np.mean([r["busy_fraction"] for r in reps])),
            "mean_batch_size": float(np.mean([r["batch_size"]["mean"] for r in reps])),
            "mean_tokens_per_iteration": float(np.mean([r["batch_size"]["mean_tokens"] for r in reps])),
            "kv_mean_usage": float(np.mean([r["kv_cache"]["mean_usage"] for r in reps])),
        }
    return out


def summarize(tally: Tally, steps: list[StepTotals], kv_blocks: list[int], kv_hit_rate: float | None,
              offline: bool = False, replica_of: list[int] | None = None,
              engine_ids: list[dict] | None = None) -> dict:  # fmt: skip
    """The run's summary; batch and KV statistics are means over engines, each replica listed too (a replica of
    several engines, pipeline streams or data-parallel attention ranks, with them inside it: `replica_of` gives
    each engine's replica, `engine_ids` its rank and stream there). An offline run (all requests at once) adds
    its steady-state throughput (`steady_state`)."""
    duration = tally.duration
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    reps = [s.stats(b, duration) for s, b in zip(steps, kv_blocks, strict=True)]
    mean = lambda f: float(np.mean([f(r) for r in reps]))  # noqa: E731
    summary = {
        "completed": tally.completed,
        "failed": tally.failed,
        "duration_s": duration,
        "total_input_tokens": tally.input_tokens,
        "total_output_tokens": tally.output_tokens,
        "request_throughput": per_s(tally.completed),
        "output_throughput": per_s(tally.output_tokens),
        "total_token_throughput": per_s(tally.input_tokens + tally.output_tokens),
        "ttft_ms": tally.ttft.stats(),
        "tpot_ms": tally.tpot.stats(),
        "itl_ms": tally.itl.stats(),
        "e2el_ms": tally.e2el.stats(),
        "preemptions": tally.preemptions,
        "migrations": tally.migrations,
        "iterations": sum(r["iterations"] for r in reps),
        "busy_fraction": mean(lambda r: r["busy_fraction"]),
        "batch_size": {
            "mean": mean(lambda r: r["batch_size"]["mean"]),
            "max": max(r["batch_size"]["max"] for r in reps),
            "mean_tokens": mean(lambda r: r["batch_size"]["mean_tokens"]),
        },
        "kv_cache": {
            "blocks": sum(kv_blocks),
            "mean_usage": mean(lambda r: r["kv_cache"]["mean_usage"]),
            "max_usage": max(r["kv_cache"]["max_usage"] for r in reps),
            "prefix_hit_rate": kv_hit_rate,
        },
    }
    if len(reps) > 1:
        entries = by_replica(reps, replica_of or list(range(len(reps))), engine_ids)
        for i, r in enumerate(entries):
            r["replica"] = i
            r["completed"] = int(tally.served[i])
            r["request_throughput"] = per_s(r["completed"])
        summary["replicas"] = entries
    if tally.programs:
        summary["programs"] = tally.program_stats(duration)
    if offline:
        summary.update(steady_state(steps, tally.output_tokens))
    if tally.slo.any:
        summary["slo"] = tally.slo.model_dump(exclude_none=True)
        summary["good_requests"] = tally.good
        summary["request_goodput"] = per_s(tally.good)
    return summary


def by_replica(engines: list[dict], replica_of: list[int], engine_ids: list[dict] | None = None) -> list[dict]:
    """Each replica's statistics: its engine's, or for a replica of several engines (pipeline streams, data-parallel
    attention ranks), theirs together (iterations summed, busy fraction and batch means averaged, KV blocks
    summed) with each engine's inside, named by its rank and stream."""
    groups: list[list[dict]] = [[] for _ in range(max(replica_of) + 1)]
    ids = engine_ids or [{} for _ in engines]
    for stats, r, name in zip(engines, replica_of, ids, strict=True):
        groups[r].append({**name, **stats})
    return [group[0] if len(group) == 1 else _engines_together(group) for group in groups]


def _engines_together(engines: list[dict]) -> dict:
    mean = lambda f: float(np.mean([f(s) for s in engines]))  # noqa: E731
    return {
        "iterations": sum(s["iterations"] for s in engines),
        "busy_fraction": mean(lambda s: s["busy_fraction"]),
        "batch_size": {"mean": mean(lambda s: s["batch_size"]["mean"]),
                       "max": max(s["batch_size"]["max"] for s in engines),
                       "mean_tokens": mean(lambda s: s["batch_size"]["mean_tokens"])},
        "kv_cache": {"blocks": sum(s["kv_cache"]["blocks"] for s in engines),
                     "mean_usage": mean(lambda s: s["kv_cache"]["mean_usage"]),
                     "max_usage": max(s["kv_cache"]["max_usage"] for s in engines)},
        "engines": engines,
    }  # fmt: skip


STEADY_SHARE = 0.2


def steady_state(steps: list[StepTotals], output_tokens: int) -> dict:
    """Throughput while requests still waited in the queue, the engine at full load, summed over replicas.

    This is what `trtllm-bench throughput` and `vllm bench throughput` report from thousands of requests, where
    the ramp-down at the end is a sliver of the run; a simulation of fewer requests would be diluted by it. Left
    out where less than STEADY_SHARE of the output was made at full load: too few requests for a steady state
    (all of them fit in one batch, say), only the ramp-up."""
    full = [s for s in steps if s.full_s > 0]
    share = sum(s.full_out for s in full) / output_tokens if output_tokens else 0.0
    if share < STEADY_SHARE:
        return {}
    return {"steady_state": {
        "output_throughput": sum(s.full_out / s.full_s for s in full),
        "total_token_throughput": sum(s.full_tokens / s.full_s for s in full),
        "duration_s": max(s.full_s for s in full),
        "output_share": share,
    }}  # fmt: skip


def pool_counts(requests, pools: dict[str, list[int]], replica_of: list[int] | None = None) -> dict[str, int]:
    """Requests that made a token on each pool's replicas (`replica_of`: each engine's replica)."""
    of = replica_of or _Same()
    out = {}
    for name, ids in pools.items():
        members = set(ids)
        out[name] = sum(1 for r in requests if any(of[seg[0]] in members for seg in r.record.segments))
    return out
