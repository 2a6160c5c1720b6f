"""A model's architecture, read from a Hugging Face `config.json`, and the sizes derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from servesim.errors import ServesimError
from servesim.files import read_structured

MAX_TOKENS = 10_000_000  # a prompt or output longer than any model's context (the catalog's longest: 1M) is an error

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "fp32": 4}

# model_type values whose layers we know how to describe
DENSE_TYPES = {"llama", "mistral", "qwen2", "qwen3"}
MOE_TYPES = {"mixtral", "qwen2_moe", "qwen3_moe", "llama4_text"}
MLA_TYPES = {"deepseek_v2", "deepseek_v3"}
SUPPORTED_TYPES = DENSE_TYPES | MOE_TYPES | MLA_TYPES


@dataclass(frozen=True)
class ModelSpec:
    """Architecture fields that decide memory and compute; everything else is derived."""

    name: str
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int  # dense MLP width
    vocab: int
    max_position: int
    tie_embeddings: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False
    # MoE (num_experts == 0 means dense)
    num_experts: int = 0
    top_k: int = 0
    moe_intermediate: int = 0
    shared_intermediate: int = 0  # total width of the shared expert(s)
    dense_layers: int = 0  # leading layers with a dense MLP instead of MoE
    # MLA (kv_lora_rank == 0 means ordinary multi-head / grouped-query attention)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_dim: int = 0
    qk_rope_dim: int = 0
    v_head_dim: int = 0

    # ----- structure -----
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0

    # ----- parameters -----
    def attention_params(self) -> int:
        h = self.hidden
        if self.is_mla:
            qk = self.qk_nope_dim + self.qk_rope_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * self.heads * qk
            else:
                q = h * self.heads * qk
            kv_a = h * (self.kv_lora_rank + self.qk_rope_dim) + self.kv_lora_rank
            kv_b = self.kv_lora_rank * self.heads * (self.qk_nope_dim + self.v_head_dim)
            o = self.heads * self.v_head_dim * h
            return q + kv_a + kv_b + o
        q_out, kv_out = self.heads * self.head_dim, self.kv_heads * self.head_dim
        params = h * (q_out + 2 * kv_out) + q_out * h
        if self.qkv_bias:
            params += q_out + 2 * kv_out
        if self.qk_norm:
            params += 2 * self.head_dim
        return params

    def dense_mlp_params(self) -> int:
        return 3 * self.hidden * self.intermediate

    def expert_params(self) -> int:
        """One routed expert (gate, up, down)."""
        return 3 * self.hidden * self.moe_intermediate

    def moe_layer_params(self, active: bool = False) -> int:
        experts = self.top_k if active else self.num_experts
        router = self.hidden * self.num_experts
        shared = 3 * self.hidden * self.shared_intermediate
        return experts * self.expert_params() + shared + router

    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    def _count(self, active: bool) -> int:
        norms = 2 * self.hidden * self.layers + self.hidden
        mlp = self.dense_mlp_params() * (self.layers - self.moe_layers)
        if self.is_moe:
            mlp += self.moe_layer_params(active) * self.moe_layers
        return self.attention_params() * self.layers + mlp + norms + self.embedding_params()

    @property
    def num_params(self) -> int:
        return self._count(active=False)

    @property
    def active_params(self) -> int:
        """Parameters touched by one token (routed experts counted top_k times)."""
        return self._count(active=True)

    def weight_bytes(self, dtype: str = "bf16") -> float:
        """Bytes of all weights; under fp8 the embedding and LM head stay bf16, as in vLLM's fp8 checkpoints."""
        wide = self.embedding_params() if dtype == "fp8" else 0
        return (self.num_params - wide) * DTYPE_BYTES[dtype] + wide * DTYPE_BYTES["bf16"]

    # ----- KV cache -----
    @property
    def kv_elems_per_token_layer(self) -> int:
        """K and V elements cached per token per layer (the compressed latent for MLA)."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_dim
        return 2 * self.kv_heads * self.head_dim

    def kv_bytes_per_token(self, dtype: str = "bf16") -> int:
        return self.kv_elems_per_token_layer * self.layers * DTYPE_BYTES[dtype]

    def kv_bytes_per_block(self, block_size: int = 16, dtype: str = "bf16") -> int:
        return self.kv_bytes_per_token(dtype) * block_size

    # ----- compute -----
    def flops_per_token(self, context: int = 0) -> float:
        """Forward FLOPs for one token: 2 per active weight, plus attention over `context` tokens."""
        linear = 2 * (self.active_params - self.vocab * self.hidden * (not self.tie_embeddings))
        if self.is_mla:
            att = 2 * self.heads * (self.qk_nope_dim + self.qk_rope_dim + self.v_head_dim)
        else:
            att = 4 * self.heads * self.head_dim
        return linear + att * context * self.layers


def _int(cfg: dict, key: str, origin: str, default: int | None = None, least: int = 1) -> int:
    """A whole-number field of config.json, at least `least`; missing ones take `default` or are an error."""
    value = cfg.get(key)
    if value is None:
        if default is None:
            raise ServesimError(f"{origin}: config.json lacks '{key}'")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ServesimError(f"{origin}: config.json '{key}' must be a whole number >= {least}, not {value!r}")
    return value


def from_hf_config(cfg: dict, name: str = "custom", origin: str = "config") -> ModelSpec:
    """Build a ModelSpec from a parsed Hugging Face config.json."""
    if not isinstance(cfg, dict):
        raise ServesimError(f"{origin}: config.json must hold an object of settings, not a {type(cfg).__name__}")
    if cfg.get("model_type") == "llama4" and isinstance(cfg.get("text_config"), dict):  # the multimodal wrapper
        cfg = cfg["text_config"]
    mtype = cfg.get("model_type", "")
    if mtype not in SUPPORTED_TYPES:
        raise ServesimError(
            f"{origin}: model_type '{mtype}' is not supported; supported: " + ", ".join(sorted(SUPPORTED_TYPES))
        )
    hidden = _int(cfg, "hidden_size", origin)
    heads = _int(cfg, "num_attention_heads", origin)
    kv_heads = _int(cfg, "num_key_value_heads", origin, heads)
    if heads % kv_heads:
        raise ServesimError(f"{origin}: num_attention_heads ({heads}) must be a multiple of num_key_value_heads "
                            f"({kv_heads})")  # fmt: skip
    common = dict(
        name=name,
        model_type=mtype,
        hidden=hidden,
        layers=_int(cfg, "num_hidden_layers", origin),
        heads=heads,
        kv_heads=kv_heads,
        head_dim=_int(cfg, "head_dim", origin, max(1, hidden // heads)),
        intermediate=_int(cfg, "intermediate_size", origin),
        vocab=_int(cfg, "vocab_size", origin),
        max_position=_int(cfg, "max_position_embeddings", origin, 4096),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=bool(cfg.get("attention_bias", mtype in ("qwen2", "qwen2_moe"))),
        qk_norm=mtype in ("qwen3", "qwen3_moe") or bool(cfg.get("use_qk_norm", False)),
    )
    if mtype == "mixtral":
        common.update(
            num_experts=_int(cfg, "num_local_experts", origin),
            top_k=_int(cfg, "num_experts_per_tok", origin),
            moe_intermediate=common["intermediate"],
        )
    elif mtype in ("qwen2_moe", "qwen3_moe"):
        if cfg.get("mlp_only_layers") or cfg.get("decoder_sparse_step", 1) != 1:
            raise ServesimError(f"{origin}: interleaved dense/MoE layers are not supported")
        common.update(
            num_experts=_int(cfg, "num_experts", origin),
            top_k=_int(cfg, "num_experts_per_tok", origin),
            moe_intermediate=_int(cfg, "moe_intermediate_size", origin),
            shared_intermediate=_int(cfg, "shared_expert_intermediate_size", origin, 0, least=0),
        )
    elif mtype == "llama4_text":
        if cfg.get("interleave_moe_layer_step", 1) != 1:
            raise ServesimError(f"{origin}: interleaved dense/MoE layers are not supported")
        common.update(  # every layer MoE with one shared expert as wide as a routed one; intermediate_size_mlp is
            num_experts=_int(cfg, "num_local_experts", origin),  # the width of dense layers, which Scout has none of
            top_k=_int(cfg, "num_experts_per_tok", origin),
            moe_intermediate=common["intermediate"],
            shared_intermediate=common["intermediate"],
            intermediate=_int(cfg, "intermediate_size_mlp", origin, common["intermediate"]),
        )
    elif mtype in MLA_TYPES:
        n_routed = _int(cfg, "n_routed_experts", origin, 0, least=0)
        moe_width = _int(cfg, "moe_intermediate_size", origin, 0, least=0)
        common.update(
            num_experts=n_routed,
            top_k=_int(cfg, "num_experts_per_tok", origin, 0, least=0) if n_routed else 0,
            moe_intermediate=moe_width,
            shared_intermediate=_int(cfg, "n_shared_experts", origin, 0, least=0) * moe_width,
            dense_layers=_int(cfg, "first_k_dense_replace", origin, 0, least=0) if n_routed else 0,
            q_lora_rank=_int(cfg, "q_lora_rank", origin, 0, least=0),
            kv_lora_rank=_int(cfg, "kv_lora_rank", origin),
            qk_nope_dim=_int(cfg, "qk_nope_head_dim", origin),
            qk_rope_dim=_int(cfg, "qk_rope_head_dim", origin),
            v_head_dim=_int(cfg, "v_head_dim", origin),
        )
    if common.get("top_k", 0) > common.get("num_experts", 0):
        raise ServesimError(f"{origin}: num_experts_per_tok ({common['top_k']}) exceeds the expert count "
                            f"({common['num_experts']})")  # fmt: skip
    return ModelSpec(**common)


def load_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a config.json file (or a directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    cfg = read_structured(p, "model config")
    return from_hf_config(cfg, name=name or p.parent.name or p.stem, origin=str(p))
