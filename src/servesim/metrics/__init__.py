"""Metrics: per-request records and summaries as `vllm bench serve` defines them."""

from servesim.metrics.summary import (
    ITLs,
    Records,
    good_mask,
    itl_table,
    pool_stats,
    request_records,
    summarize,
    summary_stats,
    token_times,
)

__all__ = [
    "ITLs", "Records", "good_mask", "itl_table", "pool_stats", "request_records", "summarize", "summary_stats",
    "token_times",
]  # fmt: skip
