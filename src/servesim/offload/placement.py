"""What of one replica's weights and KV cache lives on the device and what in a slower tier, per GPU.

The device keeps the embedding and LM head, the resident share of each decoder layer,
two layer-sized staging buffers for what is streamed in (one loading while the other
computes) and, unless the KV cache is offloaded too, the KV cache. Which part of a layer a
policy may offload is the policy's (`offloadable`: the whole layer, or only its FFN); how
much is offloaded is the user's `resident`, else the least that lets the rest fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.config import EngineConfig, OffloadConfig
from servesim.errors import ServesimError
from servesim.hardware import GPUSpec
from servesim.hardware.tiers import TierPath
from servesim.models import DTYPE_BYTES, ModelSpec

GIB = 2**30


@dataclass(frozen=True)
class Placement:
    """Per GPU: each decoder layer's offloaded bytes, where they and the KV cache come from, and what the device
    keeps for them."""

    layers: int
    offloadable_bytes: float  # per layer: what the policy may offload
    offloaded: float  # fraction of that in the weights tier
    weights: TierPath | None
    kv: TierPath | None
    staging_bytes: float  # the device's buffers for streamed layers and KV
    kv_capacity_bytes: float | None  # the KV tier's room for the cache (None: the KV cache is on the device)
    config: OffloadConfig

    @property
    def layer_io_bytes(self) -> float:
        """Weight bytes each decoder layer reads from the tier (before a policy's sparsity)."""
        return self.offloadable_bytes * self.offloaded

    @property
    def idle(self) -> bool:
        """Nothing is offloaded: the weights fit whole and the KV cache stays on the device."""
        return self.layer_io_bytes == 0 and self.kv is None

    @property
    def offloaded_gib(self) -> float:
        return self.layer_io_bytes * self.layers / GIB


def layer_bytes(model: ModelSpec, engine: EngineConfig, weights_per_gpu: float, tp: int) -> float:
    """Bytes of one decoder layer on one GPU: the weights less the embedding and LM head (vocab-parallel)."""
    wide = model.embedding_params() * DTYPE_BYTES["bf16" if engine.dtype == "fp8" else engine.dtype] / tp
    return max(0.0, weights_per_gpu - wide) / model.layers


def place(model: ModelSpec, gpu: GPUSpec, engine: EngineConfig, weights_per_gpu: float, free_bytes: float,
          kv_per_token: float, kv_layer_per_token: float, max_len: int, tp: int) -> Placement:  # fmt: skip
    """The placement of `engine.offload` when `free_bytes` of device memory are left after the activation reserve
    (the weights not yet counted): the least offloaded that leaves room for the KV cache of one max_len request
    (or its staging, if the KV is offloaded), unless `resident` says how much to keep."""
    from servesim.offload import OFFLOADS

    cfg = engine.offload
    policy = OFFLOADS.get(cfg.policy)
    policy.check(cfg, model)
    weights = gpu.tier_path(cfg.weights) if cfg.weights else None
    kv = gpu.tier_path(cfg.kv) if cfg.kv else None
    if kv is not None and cfg.attention == "near" and kv.tier.near_gbs is None:
        raise ServesimError(f"nothing computes next to {gpu.name}'s {cfg.kv} tier (it has no near_gbs), so attention "
                            "cannot run there; use offload attention = device, or give the tier near_gbs")  # fmt: skip
    L = model.layers
    per_layer = layer_bytes(model, engine, weights_per_gpu, tp)
    movable = per_layer * policy.offloadable(model)
    # the device's KV: one max_len request's cache, or (offloaded, attention on the device) two layers of it
    kv_stage = 2 * kv_layer_per_token * max_len if kv is not None and cfg.attention == "device" else 0.0
    kv_need = max_len * kv_per_token if kv is None else kv_stage
    if weights is None:
        off = 0.0
    elif cfg.resident is not None:
        off = 1.0 - cfg.resident
    else:  # least f with free >= weights - f * movable * L + 2 * f * movable + kv_need
        room = movable * (L - 2)
        off = max(0.0, (weights_per_gpu + kv_need - free_bytes) / room * (1 + 1e-9)) if room > 0 else 1.0
        if off > 1.0:
            raise ServesimError(
                f"{model.name} does not fit on {gpu.name} even with every decoder layer's {policy.part} in the "
                f"{cfg.weights} tier: the rest of the model, two staging layers and one {max_len}-token request's "
                f"KV cache need {(weights_per_gpu - room + kv_need) / GIB:.1f} GiB of the {free_bytes / GIB:.1f} "
                "GiB free; lower --max-model-len, raise --tp or use a larger device"
            )
    staging = 2 * movable * off + kv_stage
    kv_room = None
    if kv is not None:
        kv_room = kv.tier.capacity_bytes - (movable * off * L if cfg.weights == cfg.kv else 0.0)
    if weights is not None:
        need = movable * off * L
        have = weights.tier.capacity_bytes
        if need > have:
            raise ServesimError(f"the {cfg.weights} tier of {gpu.name} holds {have / GIB:.0f} GiB, fewer than the "
                                f"{need / GIB:.0f} GiB offloaded to it per GPU; raise --tp or offload to a larger "
                                "tier (--offload-tier ssd)")  # fmt: skip
    return Placement(L, movable, off, weights, kv, staging, kv_room, cfg)

