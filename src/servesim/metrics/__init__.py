"""Metrics: per-request records and summaries as `vllm bench serve` defines them."""

from servesim.metrics.summary import all_itls, good_mask, request_records, summarize, token_times

__all__ = ["all_itls", "good_mask", "request_records", "summarize", "token_times"]
