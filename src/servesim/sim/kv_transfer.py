"""The cost of moving a request's KV cache from a prefill replica to a decode replica.

Each GPU moves its share over its own link (`KVGeometry.link_bytes_per_token`: every
receiving GPU takes what it will hold; the sending GPUs share that out). `whole`: the
cache is sent after the prefill ends. `layerwise`: each layer is sent while the next ones
compute (as Splitwise and DistServe do), so only the last layer's share, or the part the
prefill could not hide, delays the first decode step.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class HandOff:
    """How a pool passes the requests it prefilled to the next pool: their KV caches over the network, each
    GPU's share over its own link, or in place (`paired`: semi-PD's decode worker reads the cache where the
    prefill worker of the same GPUs wrote it, and each replica hands on to its partner)."""

    cfg: KVTransferConfig | None = None
    link_bytes_per_token: float = 0.0
    layers: int = 1
    paired: bool = False

    def seconds(self, tokens: int, last_prefill_s: float) -> float:
        """Delay between a prompt's last prefill iteration ending and its KV cache being usable downstream."""
        if self.paired:
            return 0.0
        return kv_transfer_seconds(tokens, self.link_bytes_per_token, self.layers, self.cfg, last_prefill_s)
