"""The cost of moving a request's KV cache from a prefill replica to a decode replica.

Bytes = prompt tokens x the model's KV bytes per token; each GPU of the smaller tensor-
parallel group sends its shard over its own link. `whole`: the cache is sent after the
prefill ends. `layerwise`: each layer is sent while the next ones compute (as Splitwise
and DistServe do), so only the last layer's share, or the part the prefill could not
hide, delays the first decode step.
"""

from __future__ import annotations

from servesim.config import KVTransferConfig
from servesim.models import ModelSpec


def kv_transfer_seconds(tokens: int, model: ModelSpec, kv_bytes_per_token: float, cfg: KVTransferConfig,
                        links: int, last_prefill_s: float) -> float:  # fmt: skip
    """Delay between the prefill's end and the KV cache being usable on the decode replica."""
    total = tokens * kv_bytes_per_token / (cfg.bandwidth_gbs * 1e9 * links)
    if cfg.mode == "whole":
        visible = total
    else:
        hidden = last_prefill_s * (model.layers - 1) / model.layers
        visible = max(total / model.layers, total - hidden)
    return visible + cfg.latency_us * 1e-6
