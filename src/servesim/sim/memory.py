"""GPU memory plan of a replica: weights, activation reserve, and what is left for the KV cache.

As vLLM does it: KV cache = memory x gpu_memory_utilization - weights - peak activations
- runtime (non-torch) memory, per GPU, divided into blocks of `block_size` tokens. With
pipeline parallelism each stage caches its own layers, and the cache is shared by the pp
micro-batch streams in flight, so each stream gets 1/pp of the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.config import EngineConfig
from servesim.errors import ServesimError
from servesim.hardware import GPUSpec
from servesim.kv_geometry import KVGeometry, kv_dtype
from servesim.layout import Layout
from servesim.models import DTYPE_BYTES, ModelSpec
from servesim.offload.placement import Placement, place
from servesim.perf.quant import weight_quant
from servesim.perf.speculative import draft_spec

GIB = 2**30
RUNTIME_GIB = 0.75  # CUDA context, NCCL and cuBLAS workspaces, CUDA-graph pools


@dataclass(frozen=True)
class MemoryPlan:
    budget_gib: float  # memory x utilisation, per GPU
    weights_gib: float  # per GPU
    reserve_gib: float  # activations + runtime, per GPU
    kv_gib: float  # per GPU
    kv: KVGeometry  # how a token's KV lies on the GPUs
    num_blocks: int  # per micro-batch stream (the whole cache without pipeline parallelism)
    block_size: int
    placement: Placement | None = None  # what is offloaded to slower tiers (weights_gib: what stays)

    @property
    def kv_bytes_per_token(self) -> float:
        """Per GPU."""
        return self.kv.bytes_per_token

    @property
    def kv_tokens(self) -> int:
        return self.num_blocks * self.block_size


def kv_geometry(model: ModelSpec, engine: EngineConfig, layout: Layout | None = None) -> KVGeometry:
    """The KV geometry of the engine's replicas: its layout, KV dtype and speculative drafter."""
    return KVGeometry.of(model, layout or Layout.of(engine), kv_dtype(engine.dtype, engine.kv_cache_dtype),
                         draft_spec(model, engine.speculative))  # fmt: skip


def weight_bytes(model: ModelSpec, engine: EngineConfig) -> float:
    """Bytes of the weights the engine loads: the model's (weight-only quantised linear layers where asked)
    plus a speculative drafter's (an EAGLE head shares the target's embedding and LM head)."""
    quant = weight_quant(engine.quantization, engine.quantization_bits)
    total = model.weight_bytes(engine.dtype)
    if quant is not None:
        wide = model.embedding_params() + 2 * model.hidden * model.layers + model.hidden  # embeddings and norms
        total = wide * DTYPE_BYTES["bf16"] + (model.num_params - wide) * quant.bytes_per_weight
    draft = draft_spec(model, engine.speculative)
    if draft is not None:
        shared = draft.embedding_params() * DTYPE_BYTES["bf16"] if engine.speculative.method == "eagle" else 0
        total += draft.weight_bytes("bf16") - shared
    return total


def expert_bytes(model: ModelSpec, engine: EngineConfig) -> float:
    """Bytes of the routed experts' weights (weight-only quantised where asked)."""
    if not model.is_moe:
        return 0.0
    quant = weight_quant(engine.quantization, engine.quantization_bits)
    per = quant.bytes_per_weight if quant is not None else DTYPE_BYTES[engine.dtype]
    return model.moe_layers * model.num_experts * model.expert_params() * per


def activation_reserve_gib(model: ModelSpec, engine: EngineConfig) -> float:
    """Peak activation memory of a max_num_batched_tokens forward pass, plus runtime memory."""
    if engine.activation_reserve_gib is not None:
        return engine.activation_reserve_gib
    t, wb = engine.max_num_batched_tokens, DTYPE_BYTES["bf16"]
    width = (model.moe_intermediate * model.top_k if model.is_moe else model.intermediate) // engine.tp
    mlp = t * 3 * width * wb  # gate/up output and the activated product live together
    hidden = t * 4 * model.hidden * wb  # residual, normed input and two temporaries
    logits = engine.max_num_seqs * model.vocab * 4 * 2  # fp32 logits and sampler copy
    return (mlp + hidden + logits) / GIB + RUNTIME_GIB


def plan_memory(model: ModelSpec, gpu: GPUSpec, engine: EngineConfig, layout: Layout | None = None) -> MemoryPlan:
    """Size the KV cache of the engine's replicas on `layout` (the engine's own by default), or say clearly why
    the model does not fit."""
    budget = gpu.memory_gib * engine.gpu_memory_utilization
    layout = layout or Layout.of(engine)
    stage_share = layout.stage_layers(model) * layout.pp / model.layers  # 1 unless stages are uneven
    experts = expert_bytes(model, engine)  # spread over an MoE layer's dp x tp GPUs; the rest over tp
    rest = weight_bytes(model, engine) - experts
    weights = (rest / (layout.tp * layout.pp) + experts / (layout.moe_gpus * layout.pp)) * stage_share / GIB
    reserve = activation_reserve_gib(model, engine)
    kv = budget - weights - reserve
    geometry = kv_geometry(model, engine, layout)
    per_token = geometry.bytes_per_token
    if engine.offload is not None:
        return _offloaded(model, gpu, engine, layout, budget, weights, reserve, geometry)
    if kv <= 0:
        raise ServesimError(
            f"{model.name} does not fit on {gpu.name} at TP {engine.tp} x PP {engine.pp}: {weights:.1f} GiB of weights "
            f"+ {reserve:.1f} GiB reserve per GPU > {budget:.1f} GiB usable "
            f"(gpu_memory_utilization {engine.gpu_memory_utilization}); use a larger --tp or GPU, or offload the "
            "weights to host memory (--offload stream)"
        )
    blocks = int(kv * GIB // (per_token * engine.block_size)) // layout.streams
    return MemoryPlan(budget, weights, reserve, kv, geometry, blocks, engine.block_size)


def _offloaded(model: ModelSpec, gpu: GPUSpec, engine: EngineConfig, layout: Layout, budget: float, weights: float,
               reserve: float, geometry: KVGeometry) -> MemoryPlan:  # fmt: skip
    """The plan with part of the weights, or the KV cache, in a slower tier (offload/placement.py): the device
    keeps the rest, the staging buffers and, unless it is offloaded, the KV cache."""
    if layout.pp > 1:
        raise ServesimError("offloading is priced for one pipeline stage; use --pp 1 (or --tp) with --offload")
    max_len = engine.max_model_len or model.max_position
    free = (budget - reserve) * GIB
    p = place(model, gpu, engine, weights * GIB, free, geometry.bytes_per_token, geometry.per_layer, max_len,
              layout.tp)  # fmt: skip
    kept = weights * GIB - p.layer_io_bytes * p.layers
    on_device = free - kept - p.staging_bytes
    kv_bytes = on_device if p.kv_capacity_bytes is None else p.kv_capacity_bytes
    if on_device < 0 or kv_bytes <= 0:
        raise ServesimError(
            f"{model.name} with {1 - p.offloaded:.0%} of its layers' offloadable weights resident does not "
            f"fit on {gpu.name}: {kept / GIB:.1f} GiB of weights + {p.staging_bytes / GIB:.1f} GiB of staging + "
            f"{reserve:.1f} GiB reserve > {budget:.1f} GiB usable; lower offload.resident (or leave it unset)"
        )
    blocks = int(kv_bytes // (geometry.bytes_per_token * engine.block_size))
    return MemoryPlan(budget, kept / GIB, reserve + p.staging_bytes / GIB, kv_bytes / GIB, geometry, blocks,
                      engine.block_size, p)  # fmt: skip
