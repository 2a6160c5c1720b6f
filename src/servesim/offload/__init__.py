"""Offloading: weights and KV cache kept in a slower memory tier (host DRAM, SSD, flash) and streamed in.

`placement.py` decides what of a replica lives where (the memory plan asks it), `pipeline.py`
prices an iteration as layers whose loads overlap the previous layer's compute, and each
policy in `policies/` is one way of bringing weights in: `stream` (layer by layer), `flexgen`
(FlexGen's block schedule over micro-batches), `sparse` (only the FFN rows predicted active).
"""

from servesim.registry import Registry

OFFLOADS = Registry("offload policy", "servesim.offload.policies")
register = OFFLOADS.register

__all__ = ["OFFLOADS", "register"]
