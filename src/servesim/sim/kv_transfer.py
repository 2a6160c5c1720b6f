"""The cost of moving a request's KV cache from a prefill replica to a decode replica.

Each GPU moves its share over its own link (`KVGeometry.link_bytes_per_token`: every
receiving GPU takes what it will hold; the sending GPUs share that out). `whole`: the
cache is sent after the prefill ends. `layerwise`: each layer is sent while the next ones
compute (as Splitwise and DistServe do), so only the last layer's share, or the part the
prefill could not hide, delays the first decode step.
"""

from __future__ import annotations

from servesim.config import KVTransferConfig


def kv_transfer_seconds(tokens: int, link_bytes_per_token: float, layers: int, cfg: KVTransferConfig,
                        last_prefill_s: float) -> float:  # fmt: skip
    """Delay between the prefill's end and the KV cache of `tokens` tokens being usable on the decode replica."""
    total = tokens * link_bytes_per_token / (cfg.bandwidth_gbs * 1e9)
    if cfg.mode == "whole":
        visible = total
    else:
        hidden = last_prefill_s * (layers - 1) / layers
        visible = max(total / layers, total - hidden)
    return visible + cfg.latency_us * 1e-6
