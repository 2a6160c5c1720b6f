"""Metrics: per-request records and summaries as `vllm bench serve` defines them."""

from servesim.metrics.summary import (
    ITLs,
    Records,
    itl_table,
    pool_counts,
    pool_stats,
    request_records,
    summarize,
    token_times,
)
from servesim.metrics.tally import StepTotals, Tally, fold_steps, good_mask

__all__ = [
    "ITLs", "Records", "StepTotals", "Tally", "fold_steps", "good_mask", "itl_table", "pool_counts", "pool_stats",
    "request_records", "summarize", "token_times",
]  # fmt: skip
