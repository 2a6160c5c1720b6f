"""Per-request records and the run summary, defined as `vllm bench serve` defines them.

TTFT: first token time - arrival. TPOT: (E2EL - TTFT) / (output tokens - 1), for
requests with more than one output token. ITL: every gap between consecutive tokens
of a request, pooled over requests. E2EL: finish - arrival. Duration: from the first
arrival (t = 0) to the last finish. Goodput: requests meeting every SLO, per second.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servesim.config import SLO
from servesim.records import Records

PERCENTILES = (50, 90, 99)


def request_records(requests, itls: ITLs) -> Records:
    """One row per request, with ITL statistics from `itl_table(requests, ...)`."""
    cols = {
        "request_id": [r.id for r in requests],
        "arrival_s": [r.arrival for r in requests],
        "input_len": [r.prompt_len for r in requests],
        "output_len": [r.output_len for r in requests],
        "first_token_s": [r.first_token for r in requests],
        "finish_s": [r.finish for r in requests],
        "completed": [r.finish is not None for r in requests],
        "rejected": [r.rejected for r in requests],
        "preemptions": [r.preemptions for r in requests],
        "cached_tokens": [r.cached_tokens for r in requests],
        "first_scheduled_s": [r.first_scheduled for r in requests],
        "replica": [r.segments[-1][0] if r.segments else -1 for r in requests],
        "kv_transfer_s": [r.transfer_s for r in requests],
        "migrations": [r.migrations for r in requests],
        "prefill_j": [r.prefill_j for r in requests],
        "decode_j": [r.decode_j for r in requests],
        "prefill_usd": [r.prefill_usd for r in requests],
        "decode_usd": [r.decode_usd for r in requests],
    }
    df = Records({k: np.array(v, dtype=float if k in OPTIONAL_TIMES else None) for k, v in cols.items()})
    if not len(requests):
        df.update({k: np.empty(0, dtype=int if k in INT_COLUMNS else bool if k in FLAGS else float) for k in cols})
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


OPTIONAL_TIMES = ("first_token_s", "finish_s", "first_scheduled_s", "kv_transfer_s")  # None -> NaN
INT_COLUMNS = ("request_id", "input_len", "output_len", "preemptions", "cached_tokens", "replica", "migrations")
FLAGS = ("completed", "rejected")


def token_times(req, iter_ends: list[np.ndarray]) -> np.ndarray:
    """The time of every output token of a finished request (iter_ends: each replica's iteration ends)."""
    return np.concatenate([iter_ends[rid][a : b + 1] for rid, a, b in req.segments])


class ITLs(NamedTuple):
    """Inter-token latencies: each request's mean and largest gap (NaN without one), and every gap."""

    mean: np.ndarray
    max: np.ndarray
    gaps: np.ndarray


def itl_table(requests, iter_ends: list[np.ndarray], chunk: int = 20_000) -> ITLs:
    """Every inter-token gap of every finished request, `chunk` requests at a time so the index arrays
    stay small next to the gaps themselves (a run of 10^6 requests has ~2 x 10^8 gaps)."""
    offsets = np.cumsum([0] + [len(x) for x in iter_ends])
    iter_end = np.concatenate(iter_ends) if iter_ends else np.empty(0)
    n = len(requests)
    mean, largest = np.full(n, np.nan), np.full(n, np.nan)
    spans = [sum(b - a + 1 for _, a, b in r.segments) - 1 if r.finish is not None and r.output_len > 1 else 0
             for r in requests]  # fmt: skip
    gaps = np.empty(sum(spans))
    filled = 0
    for lo in range(0, n, chunk):
        seg_owner, seg_a, seg_b = [], [], []
        for i in range(lo, min(lo + chunk, n)):
            if spans[i]:
                for rid, a, b in requests[i].segments:
                    seg_owner.append(i)
                    seg_a.append(a + offsets[rid])
                    seg_b.append(b + offsets[rid])
        if not seg_owner:
            continue
        a, b = np.asarray(seg_a), np.asarray(seg_b)
        lengths = b - a + 1
        first = np.cumsum(lengths) - lengths
        times = iter_end[np.repeat(a - first, lengths) + np.arange(lengths.sum())]
        owner = np.repeat(np.asarray(seg_owner), lengths)
        same = owner[1:] == owner[:-1]
        owner, part = owner[1:][same], np.diff(times)[same]
        gaps[filled : filled + len(part)] = part
        filled += len(part)
        count = np.bincount(owner - lo, minlength=min(chunk, n - lo))
        sums = np.bincount(owner - lo, weights=part, minlength=min(chunk, n - lo))
        has = count > 0
        mean[lo : lo + len(count)][has] = sums[has] / count[has]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        largest[owner[starts]] = np.maximum.reduceat(part, starts)
    return ITLs(mean, largest, gaps)


def summary_stats(values_s) -> dict:
    """Mean, median, std, P90 and P99 in milliseconds of values in seconds."""
    return _stats(values_s)


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


def _stats(values_s: np.ndarray, scratch: bool = False) -> dict:
    """scratch: the values may be reordered in place (spares a copy of what may be 10^8 gaps)."""
    v = np.asarray(values_s, dtype=float)
    nan = np.isnan(v)
    if nan.any():
        v = v[~nan]
    if len(v) == 0:
        return {"mean": None, "median": None, "std": None, "p90": None, "p99": None}
    # in seconds, scaled after: no millisecond copy of what may be 10^8 gaps
    mean, std = float(v.mean()), float(v.std())  # before the percentiles may reorder v
    median, *tail = np.percentile(v, PERCENTILES, overwrite_input=scratch and not nan.any())
    out = {"mean": 1000.0 * mean, "median": 1000.0 * float(median), "std": 1000.0 * std}
    out.update({f"p{p}": 1000.0 * float(x) for p, x in zip(PERCENTILES[1:], tail, strict=True)})
    return out


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


def replica_stats(steps: dict, kv_blocks: int, duration: float) -> dict:
    """Time-weighted batch and KV-cache statistics of one replica's step log."""
    span = steps["end"] - steps["start"]
    busy = float(span.sum())

    def time_avg(x):
        return float((x * span).sum() / busy) if busy > 0 else 0.0

    return {
        "iterations": int(steps["iters"].sum()),
        "busy_fraction": busy / duration if duration > 0 else 0.0,
        "batch_size": {
            "mean": time_avg(steps["seqs"]),
            "max": int(steps["seqs"].max()) if len(span) else 0,
            "mean_tokens": time_avg(steps["tokens"]),
        },
        "kv_cache": {
            "blocks": kv_blocks,
            "mean_usage": time_avg(steps["kv_used"]) / kv_blocks if kv_blocks else 0.0,
            "max_usage": float(steps["kv_used"].max()) / kv_blocks if len(span) and kv_blocks else 0.0,
        },
    }


def summarize(df: Records, itls: np.ndarray, replica_steps: list[dict], slo: SLO, kv_blocks: list[int],
              kv_hit_rate: float | None) -> dict:  # fmt: skip
    """The run's summary; batch and KV statistics are means over replicas, each replica listed too."""
    done = df.select(df.completed)
    duration = float(done.finish_s.max()) if done.rows else 0.0
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    in_tok, out_tok = int(done.input_len.sum()), int(done.output_len.sum())
    reps = [replica_stats(s, b, duration) for s, b in zip(replica_steps, kv_blocks, strict=True)]
    mean = lambda f: float(np.mean([f(r) for r in reps]))  # noqa: E731
    summary = {
        "completed": done.rows,
        "failed": int((~df.completed).sum()),
        "duration_s": duration,
        "total_input_tokens": in_tok,
        "total_output_tokens": out_tok,
        "request_throughput": per_s(done.rows),
        "output_throughput": per_s(out_tok),
        "total_token_throughput": per_s(in_tok + out_tok),
        "ttft_ms": _stats(done.ttft_s),
        "tpot_ms": _stats(done.tpot_s),
        "itl_ms": _stats(itls, scratch=True),  # (the gaps' order means nothing)
        "e2el_ms": _stats(done.e2el_s),
        "preemptions": int(df.preemptions.sum()),
        "migrations": int(df.migrations.sum()),
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
        served = np.bincount(df.replica[df.replica >= 0], minlength=len(reps))
        for i, r in enumerate(reps):
            r["replica"] = i
            r["completed"] = int(served[i])
            r["request_throughput"] = per_s(r["completed"])
        summary["replicas"] = reps
    if slo.any:
        good = good_mask(df, slo)
        summary["slo"] = slo.model_dump(exclude_none=True)
        summary["good_requests"] = int(good.sum())
        summary["request_goodput"] = per_s(int(good.sum()))
    return summary
