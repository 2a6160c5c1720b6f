"""How one replica's KV cache lies on its GPUs: the one answer to "how many bytes is a token's KV here?".

On each GPU of the largest pipeline stage, one token's KV cache takes, in every layer of
that stage, the keys and values of the KV heads the GPU holds (the heads split over TP,
each replicated when TP exceeds the KV head count, as vLLM does), or for MLA the whole
compressed latent (replicated on every TP GPU); a speculative drafter caches its own KV
beside it. The memory plan, the CPU swap tier, KV transfers between pools, live migration
and the performance model all ask this object, so they cannot disagree (they did: the
swap tier divided the model's total by tp x pp, 8x too little for DeepSeek-V3 at TP8).
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.layout import Layout
from servesim.models import DTYPE_BYTES, ModelSpec


def kv_dtype(dtype: str, kv_cache_dtype: str = "auto") -> str:
    """The KV cache's dtype: as asked, else the weights' (vLLM's "auto"); fp8 weights keep a bf16 cache."""
    if kv_cache_dtype != "auto":
        return kv_cache_dtype
    return "bf16" if dtype == "fp8" else dtype


def _per_layer(model: ModelSpec, tp: int) -> tuple[int, int, int]:
    """(KV heads on one GPU, elements one token caches per layer there, per-layer tensors): keys and values
    of its heads, or MLA's latent whole."""
    if model.is_mla:
        return 0, model.kv_lora_rank + model.qk_rope_dim, 1
    heads = max(1, model.kv_heads // tp)
    return heads, 2 * heads * model.head_dim, 2


@dataclass(frozen=True)
class KVGeometry:
    """One token's KV cache on one GPU of a replica (of the largest stage), and how the replica holds it."""

    dtype: str  # the cache's dtype, resolved
    layers: int  # layers of the largest stage: those whose KV one GPU holds
    kv_heads: int  # KV heads one GPU holds (0 for MLA, whose latent has none)
    per_layer: float  # bytes of one token in one layer on one GPU
    tensors_per_layer: int  # 2 (keys, values), or 1 for MLA's latent
    gpus: int  # GPUs of the replica, each holding its share
    draft_bytes: float = 0.0  # a speculative drafter's KV of one token, on each GPU
    draft_tensors: int = 0  # the drafter's per-layer tensors, all its layers

    @classmethod
    def of(cls, model: ModelSpec, layout: Layout | None = None, dtype: str = "bf16",
           draft: ModelSpec | None = None) -> KVGeometry:  # fmt: skip
        """The geometry of `model` (and its drafter's, which runs whole on each GPU) on `layout`, in `dtype`."""
        layout = layout or Layout()
        b = DTYPE_BYTES[dtype]
        heads, elems, tensors = _per_layer(model, layout.tp)
        draft_bytes, draft_tensors = 0.0, 0
        if draft is not None:
            _, d_elems, d_tensors = _per_layer(draft, layout.tp)
            draft_bytes, draft_tensors = float(d_elems * b * draft.layers), d_tensors * draft.layers
        return cls(dtype, layout.stage_layers(model), heads, float(elems * b), tensors, layout.gpus, draft_bytes,
                   draft_tensors)  # fmt: skip

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def bytes_per_token(self) -> float:
        """Bytes one token's KV takes on each GPU: its stage's layers, and the drafter's."""
        return self.per_layer * self.layers + self.draft_bytes

    @property
    def tensors(self) -> int:
        """Tensors one block of the cache lives in on one GPU (vLLM keeps each layer's keys and values apart):
        a copy to or from host memory is one per tensor."""
        return self.layers * self.tensors_per_layer + self.draft_tensors

    def block_bytes(self, block_size: int) -> float:
        """Bytes of one block on one GPU, all its tensors."""
        return self.bytes_per_token * block_size

    def link_bytes_per_token(self, to: KVGeometry) -> float:
        """Bytes of one token each GPU's link carries when a request's KV cache moves from a replica of this
        geometry to one of geometry `to`: every receiving GPU takes what it will hold over its own link, and
        the sending GPUs share that out evenly over theirs, so the busier side sets the pace."""
        return to.bytes_per_token * max(1.0, to.gpus / self.gpus)
