"""A decoder with random weights, built from `kernels`, for validating predictions.

Performance does not depend on weight values, so weights are random (bf16, or fp8 for the
layers' linear projections with `dtype="fp8"`, embedding and LM head staying bf16 as in vLLM's
fp8 checkpoints); the KV cache is bf16 or fp8 (`kv_dtype`). One forward pass runs a batch
of one prefill chunk (L new tokens after C cached) and B decodes (each attending to its
C_d cached tokens plus its new one), whole model: embedding, layers, final norm, and the
LM head on the last token of each sequence. With `tp` > 1 it is one rank's shard of a
tensor-parallel model, as vLLM splits it: its share of the attention heads (key/value heads
replicated where there are fewer than ranks), of the MLP and of the vocabulary, and an
all-reduce over NCCL after each layer's attention output and MLP projections. A mixture-of-experts
model's MoE layers run as serving engines run them (`kernels.moe_experts`: one grouped GEMM per
projection over every routed token, each expert split over the ranks), with its shared expert and
leading dense layers; query and key heads are RMS-normalised where the model does (Qwen3).
Multi-head latent attention (DeepSeek-V2/V3) runs as vLLM runs it: the low-rank projections, a
cache of one latent and rotary key per token, decodes absorbed into the latent space
(`kernels.mla_decode`), prompt chunks decompressed into ordinary heads (`kernels.mla_prefill`).
Routing: the router's GEMM, softmax and top-k run, but each token's logits carry a fixed random
bias that decides its experts. Without it a random-weight model's prompt collapses onto a few
experts (causal attention over random values gives every position nearly the same update: 119,
100 and 76 of Qwen3-30B-A3B's 128 experts hit by a 64-token prompt in its first three layers,
126 by 64 decodes), so a short prefill ran as fast as 8 decodes; trained models spread a
prompt's tokens over many experts, and the profiler's MoE tables route uniformly as well.
"""

from __future__ import annotations

import torch

from servesim.models import ModelSpec
from servesim.profiler import kernels as K

DT = torch.bfloat16


class Decoder:
    def __init__(self, spec: ModelSpec, device: str = "cuda", dtype: str = "bf16", kv_dtype: str = "bf16",
                 tp: int = 1):  # fmt: skip
        if spec.is_mla and kv_dtype != "bf16":
            raise ValueError(f"validation runs MLA over a bf16 latent cache only; drop --kv-cache-dtype {kv_dtype}")
        self.spec, self.dev, self.tp = spec, device, tp
        h, hd = spec.hidden, spec.head_dim
        self.hq, self.hkv = spec.heads // tp, max(1, spec.kv_heads // tp)
        inter, vocab = spec.intermediate // tp, spec.vocab // tp
        fp8 = dtype == "fp8"
        self.linear = K.linear_fp8 if fp8 else K.linear
        self.kv_dt = K.FP8 if kv_dtype == "fp8" else DT
        self.attend_prefill = K.attention_prefill_fp8 if kv_dtype == "fp8" else K.attention_prefill
        self.attend_decode = K.attention_decode_fp8 if kv_dtype == "fp8" else K.attention_decode

        def w(*shape):
            t = torch.randn(*shape, device=device, dtype=DT) * 0.02
            return K.to_fp8(t) if fp8 else t

        qkv = (self.hq + 2 * self.hkv) * hd
        self.layers = []
        for i in range(spec.layers):
            layer = dict(norm1=torch.ones(h, device=device, dtype=DT), norm2=torch.ones(h, device=device, dtype=DT))
            if spec.is_mla:
                layer.update(self._mla_weights(w))
            else:
                layer.update(qkv=w(qkv, h), o=w(h, self.hq * hd))
            if spec.qk_norm:
                layer["q_norm"] = layer["k_norm"] = torch.ones(hd, device=device, dtype=DT)
            if spec.is_moe and i >= spec.dense_layers:
                e, width = spec.num_experts, spec.moe_intermediate // tp
                layer.update(router=torch.randn(e, h, device=device, dtype=DT) * 0.02, w13=w(e, 2 * width, h),
                             w2=w(e, h, width))  # fmt: skip
                if spec.shared_intermediate:
                    shared = spec.shared_intermediate // tp
                    layer.update(gate_up=w(2 * shared, h), down=w(h, shared))
            else:
                layer.update(gate_up=w(2 * inter, h), down=w(h, inter))
            self.layers.append(layer)
        self.embed = torch.randn(spec.vocab, h, device=device, dtype=DT) * 0.02
        self.lm_head = torch.randn(vocab, h, device=device, dtype=DT) * 0.02
        self.norm = torch.ones(h, device=device, dtype=DT)

    def _mla_weights(self, w) -> dict:
        """One MLA layer's projections on this rank: queries (directly, or through their low rank and its norm),
        the latent and rotary key (fused with the query's down-projection where there is one), the latent's norm,
        kv_b_proj (prefill's decompression) and its two halves as decodes absorb them (bf16, as vLLM keeps
        them), and the output projection."""
        s, dev, hq = self.spec, self.dev, self.hq
        dl, rope, nope, v = s.kv_lora_rank, s.qk_rope_dim, s.qk_nope_dim, s.v_head_dim
        layer = dict(kv_norm=torch.ones(dl, device=dev, dtype=DT), o=w(s.hidden, hq * v),
                     kvb=torch.randn(hq * (nope + v), dl, device=dev, dtype=DT) * 0.02,
                     w_uk=torch.randn(hq, nope, dl, device=dev, dtype=DT) * 0.02,
                     w_uv=torch.randn(hq, dl, v, device=dev, dtype=DT) * 0.02)  # fmt: skip
        if s.q_lora_rank:
            layer.update(qa_kva=w(s.q_lora_rank + dl + rope, s.hidden), q_b=w(hq * (nope + rope), s.q_lora_rank),
                         q_norm_a=torch.ones(s.q_lora_rank, device=dev, dtype=DT))  # fmt: skip
        else:
            layer.update(q=w(hq * (nope + rope), s.hidden), kva=w(dl + rope, s.hidden))
        return layer

    def caches(self, batch: int, length: int) -> list:
        """Per layer: the K and V caches [batch, KV heads, length, head_dim], or MLA's latent cache
        [batch, length, latent + rope]."""
        s = self.spec
        if s.is_mla:
            shape = (batch, length, s.kv_lora_rank + s.qk_rope_dim)
            return [torch.zeros(shape, device=self.dev, dtype=DT) for _ in range(s.layers)]
        shape = (batch, self.hkv, length, s.head_dim)
        return [(torch.zeros(shape, device=self.dev, dtype=self.kv_dt), torch.zeros(shape, device=self.dev,
                                                                                    dtype=self.kv_dt))
                for _ in range(s.layers)]  # fmt: skip

    def inputs(self, chunk: int, chunk_ctx: int, decodes: int, decode_ctx: int) -> dict:
        """Static tensors for one batch shape (for CUDA-graph capture)."""
        s = self.spec
        T = chunk + decodes
        hd = s.qk_rope_dim if s.is_mla else s.head_dim  # the rotary part of a head
        return {
            "ids": torch.randint(0, s.vocab, (T,), device=self.dev),
            "cos": torch.randn(T, 1, hd, device=self.dev, dtype=DT),
            "sin": torch.randn(T, 1, hd, device=self.dev, dtype=DT),
            "last": torch.tensor(([chunk - 1] if chunk else []) + list(range(chunk, T)), device=self.dev),
            "prefill_cache": self.caches(1, chunk_ctx + chunk) if chunk else None,
            "decode_cache": self.caches(decodes, decode_ctx) if decodes else None,
            "shape": (chunk, chunk_ctx, decodes, decode_ctx),
            # 10x the router logits' spread (about 1): each token's top-k set by this bias (module docstring)
            "route_bias": torch.randn(T, s.num_experts, device=self.dev) * 10 if s.is_moe else None,
        }

    def forward(self, inp: dict) -> torch.Tensor:
        s = self.spec
        x = self.embed[inp["ids"]]
        for i, lw in enumerate(self.layers):
            h = K.rms_norm(x, lw["norm1"])
            attn = self._mla(i, h, lw, inp) if s.is_mla else self._gqa(i, h, lw, inp)
            x = K.add(x, self._reduced(self.linear(attn, lw["o"])))
            h = K.rms_norm(x, lw["norm2"])
            x = K.add(x, self._reduced(self._mlp(h, lw, inp["route_bias"])))
        x = K.rms_norm(x, self.norm)
        return K.linear(x[inp["last"]], self.lm_head)

    def _gqa(self, i: int, h: torch.Tensor, lw: dict, inp: dict) -> torch.Tensor:
        """Grouped-query attention of layer i, from its input to its heads' outputs [T, hq * head_dim]."""
        L, C, B, Cd = inp["shape"]
        hq, hkv, hd = self.hq, self.hkv, self.spec.head_dim
        qkv = self.linear(h, lw["qkv"])
        q = qkv[:, : hq * hd].view(-1, hq, hd)
        k = qkv[:, hq * hd : (hq + hkv) * hd].view(-1, hkv, hd)
        v = qkv[:, (hq + hkv) * hd :].view(-1, hkv, hd)
        if "q_norm" in lw:  # per-head RMS norm of queries and keys (Qwen3)
            q, k = K.rms_norm(q, lw["q_norm"]), K.rms_norm(k, lw["k_norm"])
        q, k = K.rope(q, k, inp["cos"], inp["sin"])
        parts = []
        if L:
            kc, vc = inp["prefill_cache"][i]
            K.write_kv(kc, k[:L], C)
            K.write_kv(vc, v[:L], C)
            parts.append(self.attend_prefill(q[:L], kc, vc))
        if B:
            kc, vc = inp["decode_cache"][i]
            K.write_kv(kc, k[L:], Cd - 1)
            K.write_kv(vc, v[L:], Cd - 1)
            parts.append(self.attend_decode(q[L:], kc, vc))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _mla(self, i: int, h: torch.Tensor, lw: dict, inp: dict) -> torch.Tensor:
        """Multi-head latent attention of layer i, from its input to its heads' outputs [T, hq * v_head_dim]."""
        s, (L, C, B, Cd) = self.spec, inp["shape"]
        dl, nope = s.kv_lora_rank, s.qk_nope_dim
        if "qa_kva" in lw:
            a = self.linear(h, lw["qa_kva"])
            q, kva = self.linear(K.rms_norm(a[:, : s.q_lora_rank], lw["q_norm_a"]), lw["q_b"]), a[:, s.q_lora_rank :]
        else:
            q, kva = self.linear(h, lw["q"]), self.linear(h, lw["kva"])
        q = q.view(q.shape[0], self.hq, -1)
        latent = K.rms_norm(kva[:, :dl], lw["kv_norm"])
        q_rot, rot = K.rope(q[..., nope:], kva[:, None, dl:], inp["cos"], inp["sin"])
        q_nope, rot = q[..., :nope], rot[:, 0]
        parts = []
        if L:
            parts.append(K.mla_prefill(q_nope[:L], q_rot[:L], latent[:L], rot[:L], inp["prefill_cache"][i], C,
                                       lw["kvb"]))  # fmt: skip
        if B:
            parts.append(K.mla_decode(q_nope[L:], q_rot[L:], latent[L:], rot[L:], inp["decode_cache"][i], Cd - 1,
                                      lw["w_uk"], lw["w_uv"]))  # fmt: skip
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _mlp(self, h: torch.Tensor, lw: dict, route_bias: torch.Tensor | None) -> torch.Tensor:
        """The layer's MLP on this rank: dense, or routed experts (and a shared expert beside them)."""
        if "w13" not in lw:
            return self.linear(K.silu_mul(self.linear(h, lw["gate_up"])), lw["down"])
        weights, ids = K.moe_route(K.linear(h, lw["router"]) + route_bias, self.spec.top_k)
        out = K.moe_experts(h, lw["w13"], lw["w2"], weights, ids)
        if "gate_up" in lw:
            out = K.add(out, self.linear(K.silu_mul(self.linear(h, lw["gate_up"])), lw["down"]))
        return out

    def _reduced(self, partial: torch.Tensor) -> torch.Tensor:
        """The sum of every rank's partial output (tensor parallelism), in place."""
        if self.tp > 1:
            torch.distributed.all_reduce(partial)
        return partial
