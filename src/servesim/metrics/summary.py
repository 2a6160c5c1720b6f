"""Per-request records and the run summary, defined as `vllm bench serve` defines them.

TTFT: first token time - arrival. TPOT: (E2EL - TTFT) / (output tokens - 1), for
requests with more than one output token. ITL: every gap between consecutive tokens
of a request, pooled over requests. E2EL: finish - arrival. Duration: from the first
arrival (t = 0) to the last finish. Goodput: requests meeting every SLO, per second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from servesim.config import SLO

PERCENTILES = (50, 90, 99)


def request_records(requests, iter_end: np.ndarray) -> pd.DataFrame:
    """One row per request, with ITL statistics from its token times."""
    rows = []
    for r in requests:
        done = r.finish is not None
        itl_mean = itl_max = np.nan
        if done and r.output_len > 1:
            times = token_times(r, iter_end)
            gaps = np.diff(times)
            itl_mean, itl_max = float(gaps.mean()), float(gaps.max())
        rows.append((
            r.id, r.arrival, r.prompt_len, r.output_len, r.first_token, r.finish, done,
            r.rejected, r.preemptions, r.cached_tokens, r.first_scheduled, itl_mean, itl_max,
        ))  # fmt: skip
    df = pd.DataFrame(rows, columns=[
        "request_id", "arrival_s", "input_len", "output_len", "first_token_s", "finish_s",
        "completed", "rejected", "preemptions", "cached_tokens", "first_scheduled_s",
        "itl_mean_s", "itl_max_s",
    ])  # fmt: skip
    df["ttft_s"] = df.first_token_s - df.arrival_s
    df["e2el_s"] = df.finish_s - df.arrival_s
    df["queue_s"] = df.first_scheduled_s - df.arrival_s
    multi = df.output_len > 1
    df["tpot_s"] = np.where(multi, (df.e2el_s - df.ttft_s) / (df.output_len - 1).clip(lower=1), np.nan)
    return df


def token_times(req, iter_end: np.ndarray) -> np.ndarray:
    """The time of every output token of a finished request."""
    return np.concatenate([iter_end[a : b + 1] for a, b in req.segments])


def all_itls(requests, iter_end: np.ndarray) -> np.ndarray:
    parts = [np.diff(token_times(r, iter_end)) for r in requests if r.finish is not None and r.output_len > 1]
    return np.concatenate(parts) if parts else np.empty(0)


def _stats(values_s: np.ndarray) -> dict:
    v = np.asarray(values_s, dtype=float) * 1000.0
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {"mean": None, "median": None, "std": None, "p90": None, "p99": None}
    out = {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std())}
    for p in PERCENTILES[1:]:
        out[f"p{p}"] = float(np.percentile(v, p))
    return out


def good_mask(df: pd.DataFrame, slo: SLO) -> np.ndarray:
    ok = df.completed.to_numpy().copy()
    checks = (("ttft_ms", "ttft_s"), ("tpot_ms", "tpot_s"), ("e2el_ms", "e2el_s"))
    for field, col in checks:
        target = getattr(slo, field)
        if target is not None:
            v = df[col].to_numpy() * 1000.0
            # a request with one output token has no TPOT and meets any TPOT target
            ok &= np.where(np.isnan(v), col == "tpot_s", v <= target)
    return ok


def summarize(df: pd.DataFrame, itls: np.ndarray, steps: dict, slo: SLO, kv_blocks: int,
              kv_hit_rate: float | None) -> dict:
    done = df[df.completed]
    duration = float(done.finish_s.max()) if len(done) else 0.0
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    in_tok, out_tok = int(done.input_len.sum()), int(done.output_len.sum())
    span = steps["end"] - steps["start"]
    busy = float(span.sum())

    def time_avg(x):
        return float((x * span).sum() / busy) if busy > 0 else 0.0

    summary = {
        "completed": int(len(done)),
        "failed": int((~df.completed).sum()),
        "duration_s": duration,
        "total_input_tokens": in_tok,
        "total_output_tokens": out_tok,
        "request_throughput": per_s(len(done)),
        "output_throughput": per_s(out_tok),
        "total_token_throughput": per_s(in_tok + out_tok),
        "ttft_ms": _stats(done.ttft_s),
        "tpot_ms": _stats(done.tpot_s),
        "itl_ms": _stats(itls),
        "e2el_ms": _stats(done.e2el_s),
        "preemptions": int(df.preemptions.sum()),
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
            "prefix_hit_rate": kv_hit_rate,
        },
    }
    if slo.any:
        good = good_mask(df, slo)
        summary["slo"] = slo.model_dump(exclude_none=True)
        summary["good_requests"] = int(good.sum())
        summary["request_goodput"] = per_s(int(good.sum()))
    return summary
