"""Metrics: per-request records and summaries as `vllm bench serve` defines them."""

from servesim.metrics.summary import good_mask, itl_table, request_records, summarize, token_times

__all__ = ["good_mask", "itl_table", "request_records", "summarize", "token_times"]
