"""Roofline performance model: each operator costs max(FLOPs / compute, bytes / bandwidth).

Efficiencies (how much of the datasheet peak real kernels reach) are parameters; the
profiled model fits them from measurements. Shapes are per GPU after tensor parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servesim.errors import ServesimError
from servesim.hardware import GPUSpec
from servesim.models import DTYPE_BYTES, ModelSpec
from servesim.perf.base import OpCost, PerfModel
from servesim.perf.batch import Batch


@dataclass(frozen=True)
class RooflineParams:
    """Achievable fractions of peak and fixed costs. Defaults are typical of Hopper + vLLM."""

    gemm_efficiency: float = 0.75  # large bf16 GEMMs via cuBLAS reach ~75-80% of peak
    gemm_half_rows: float = 48.0  # token rows at which a GEMM reaches half that efficiency
    attn_efficiency: float = 0.45  # FlashAttention-2/3 prefill, fraction of peak
    mem_efficiency: float = 0.85  # streaming kernels, fraction of datasheet bandwidth
    kernel_overhead_s: float = 3e-6  # launch gap and tail of each kernel (CUDA graphs)
    link_efficiency: float = 0.7  # NCCL bus bandwidth over datasheet per-direction link
    link_latency_s: float = 8e-6  # per ring step
    cpu_overhead_s: float = 5e-4  # scheduler, input preparation, sampling launch
    cpu_per_seq_s: float = 2e-6  # per scheduled request


def _bound(compute_s: float, memory_s: float) -> str:
    return "compute" if compute_s >= memory_s else "memory"


class RooflineModel(PerfModel):
    """Iteration time of `model` on `tp` GPUs of type `gpu`."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GPUSpec,
        tp: int = 1,
        dtype: str = "bf16",
        kv_dtype: str | None = None,
        params: RooflineParams | None = None,
    ):
        if tp < 1 or model.heads % tp:
            raise ServesimError(
                f"tensor parallel size {tp} must divide {model.name}'s {model.heads} attention heads"
            )
        self.model, self.gpu, self.tp = model, gpu, tp
        self.p = params or RooflineParams()
        self.wb = DTYPE_BYTES[dtype]
        self.kvb = DTYPE_BYTES[kv_dtype or ("bf16" if dtype == "fp8" else dtype)]
        self.peak = gpu.peak_flops(dtype)
        # attention runs in bf16 even when weights are fp8
        self.attn_peak = gpu.peak_flops("bf16") * self.p.attn_efficiency
        self.bw = gpu.mem_bw_gbs * 1e9 * self.p.mem_efficiency
        self.link_bw = gpu.link_gbs / 2 * 1e9 * self.p.link_efficiency
        m = model
        self.hq = m.heads // tp
        self.hkv = max(1, m.kv_heads // tp)  # KV heads are replicated when fewer than tp
        self._linear_cache: dict[tuple[int, int], list[OpCost]] = {}
        self._linear_sum: dict[tuple[int, int], float] = {}
        self._dec_fixed: dict[int, float] = {}

    # ----- primitives -----
    def _gemm(self, rows: float, n: int, k: int, count: float = 1.0) -> tuple[float, float, float]:
        """(seconds, flops, bytes) of `count` GEMMs of [rows x k] @ [k x n]."""
        if rows <= 0:
            return 0.0, 0.0, 0.0
        p = self.p
        flops = 2.0 * rows * n * k
        nbytes = (rows * k + k * n + rows * n) * self.wb
        eff = p.gemm_efficiency * rows / (rows + p.gemm_half_rows)
        t = max(flops / (self.peak * eff), nbytes / self.bw) + p.kernel_overhead_s
        return t * count, flops * count, nbytes * count

    def _stream(self, nbytes: float, kernels: float) -> float:
        return nbytes / self.bw + kernels * self.p.kernel_overhead_s

    def _allreduce(self, nbytes: float) -> float:
        if self.tp == 1 or nbytes <= 0:
            return 0.0
        steps = 2 * (self.tp - 1)
        return steps / self.tp * nbytes / self.link_bw + steps * self.p.link_latency_s

    # ----- operators that depend only on token and sequence counts -----
    def _linear_ops(self, tokens: int, seqs: int) -> list[OpCost]:
        key = (tokens, seqs)
        ops = self._linear_cache.get(key)
        if ops is None:
            ops = self._build_linear_ops(tokens, seqs)
            self._linear_cache[key] = ops
            self._linear_sum[key] = sum(o.seconds for o in ops)
        return ops

    def _build_linear_ops(self, T: int, S: int) -> list[OpCost]:
        m, p, tp, L = self.model, self.p, self.tp, self.model.layers
        ops: list[OpCost] = []

        def add(name, parts, bound=None):
            t = sum(x[0] for x in parts)
            f = sum(x[1] for x in parts)
            b = sum(x[2] for x in parts)
            if t > 0:
                ops.append(OpCost(name, t, f, b, bound or _bound(f / self.peak, b / self.bw)))

        emb_bytes = 2.0 * T * m.hidden * self.wb
        ops.append(OpCost("embedding", self._stream(emb_bytes, 1), 0.0, emb_bytes, "memory"))
        if m.is_mla:
            qk = m.qk_nope_dim + m.qk_rope_dim
            q_in = m.q_lora_rank or m.hidden
            a_out = (m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_dim
            add("qkv_proj", [self._gemm(T, a_out, m.hidden, L), self._gemm(T, self.hq * qk, q_in, L)])
            add("o_proj", [self._gemm(T, m.hidden, self.hq * m.v_head_dim, L)])
        else:
            qkv_n = (self.hq + 2 * self.hkv) * m.head_dim
            add("qkv_proj", [self._gemm(T, qkv_n, m.hidden, L)])
            add("o_proj", [self._gemm(T, m.hidden, self.hq * m.head_dim, L)])
        dense = L - m.moe_layers
        if dense:
            inter = m.intermediate // tp
            add("mlp", [self._gemm(T, 2 * inter, m.hidden, dense), self._gemm(T, m.hidden, inter, dense)])
        if m.moe_layers:
            ops.extend(self._moe_ops(T))
        # fused add+RMSNorm twice (read 2h, write 2h), rotary on q/k, SiLU*mul on the MLP
        act_width = (m.moe_intermediate * m.top_k if m.is_moe else m.intermediate) // tp
        elems = 8 * m.hidden + 2 * (self.hq + self.hkv) * m.head_dim + 3 * act_width
        ew_bytes = float(T) * elems * self.wb * L
        ops.append(OpCost("norm_act", self._stream(ew_bytes, 4 * L), 0.0, ew_bytes, "memory"))
        if tp > 1:
            ar_bytes = T * m.hidden * self.wb
            ops.append(OpCost("tp_comm", 2 * L * self._allreduce(ar_bytes), 0.0, 2 * L * ar_bytes, "comm"))
        lm = self._gemm(S, m.vocab // tp, m.hidden)
        sample_bytes = 2.0 * S * m.vocab * 4  # fp32 logits written and read by the sampler
        lm_t = lm[0] + self._stream(sample_bytes, 2)
        ops.append(OpCost("lm_head", lm_t, lm[1], lm[2] + sample_bytes, _bound(lm[1] / self.peak, lm[2] / self.bw)))
        cpu = p.cpu_overhead_s + p.cpu_per_seq_s * S
        ops.append(OpCost("cpu_overhead", cpu, bound="overhead"))
        return ops

    def _moe_ops(self, T: int) -> list[OpCost]:
        m, L = self.model, self.model.moe_layers
        inter = m.moe_intermediate // self.tp
        E, k = m.num_experts, m.top_k
        # expected number of distinct experts hit by T tokens with uniform routing
        active = E * (1.0 - (1.0 - k / E) ** T)
        rows = T * k / active  # tokens per active expert
        up = self._gemm(rows, 2 * inter, m.hidden, active * L)
        down = self._gemm(rows, m.hidden, inter, active * L)
        router = self._gemm(T, E, m.hidden, L)
        ops = []
        parts = [router, up, down]
        if m.shared_intermediate:
            si = m.shared_intermediate // self.tp
            parts += [self._gemm(T, 2 * si, m.hidden, L), self._gemm(T, m.hidden, si, L)]
        t = sum(x[0] for x in parts)
        f = sum(x[1] for x in parts)
        b = sum(x[2] for x in parts)
        ops.append(OpCost("moe", t, f, b, _bound(f / self.peak, b / self.bw)))
        return ops

    # ----- attention: depends on context lengths -----
    def _decode_attn_coeffs(self) -> tuple[float, float, float]:
        """Per layer: (flops per context token, bytes per context token, bytes per request)."""
        m = self.model
        if m.is_mla:  # absorbed MLA: every head scores against the shared latent
            lat = m.kv_lora_rank + m.qk_rope_dim
            return 2.0 * self.hq * (2 * m.kv_lora_rank + m.qk_rope_dim), lat * self.kvb, 0.0
        per_tok = 2 * self.hkv * m.head_dim * self.kvb
        return 4.0 * self.hq * m.head_dim, per_tok, 2.0 * self.hq * m.head_dim * self.wb

    def _decode_fixed(self, n: int) -> float:
        """Decode attention costs that depend on the request count only (MLA absorption GEMMs)."""
        t = self._dec_fixed.get(n)
        if t is None:
            m = self.model
            t = 0.0
            if m.is_mla and n:
                t = self._gemm(n, self.hq * (m.qk_nope_dim + m.v_head_dim), m.kv_lora_rank, m.layers)[0]
            self._dec_fixed[n] = t
        return t

    def _attention(self, b: Batch) -> OpCost:
        m, L, ko = self.model, self.model.layers, self.p.kernel_overhead_s
        t = f = nb = 0.0
        if b.num_decodes:
            fc, bc, br = self._decode_attn_coeffs()
            df = fc * b.decode_ctx_sum
            db = bc * b.decode_ctx_sum + br * b.num_decodes
            t += L * (max(df / self.attn_peak, db / self.bw) + ko) + self._decode_fixed(b.num_decodes)
            f += L * df
            nb += L * db
        if b.prefill_lens:
            pairs, new, kv_tok = b.prefill_pairs, b.num_prefill_tokens, b.prefill_kv_tokens
            if m.is_mla:
                width = m.qk_nope_dim + m.qk_rope_dim + m.v_head_dim
                pf = 2.0 * self.hq * width * pairs
                pb = (kv_tok * self.hq * width + new * self.hq * width) * self.wb
                up = self._gemm(kv_tok, self.hq * (m.qk_nope_dim + m.v_head_dim), m.kv_lora_rank, L)
                t += up[0]
                f += up[1]
                nb += up[2]
            else:
                pf = 4.0 * self.hq * m.head_dim * pairs
                pb = kv_tok * 2 * self.hkv * m.head_dim * self.kvb + new * 2 * self.hq * m.head_dim * self.wb
            t += L * (max(pf / self.attn_peak, pb / self.bw) + ko)
            f += L * pf
            nb += L * pb
        return OpCost("attention", t, f, nb, _bound(f / self.attn_peak, nb / self.bw))

    # ----- PerfModel -----
    def breakdown(self, batch: Batch) -> list[OpCost]:
        if batch.num_tokens == 0:
            return []
        ops = list(self._linear_ops(batch.num_tokens, batch.num_seqs))
        ops.insert(3, self._attention(batch))
        return ops

    def iteration_time(self, batch: Batch) -> float:
        key = (batch.num_decodes + sum(batch.prefill_lens), batch.num_decodes + len(batch.prefill_lens))
        lin = self._linear_sum.get(key)
        if lin is None:
            self._linear_ops(*key)
            lin = self._linear_sum[key]
        return lin + self._attention(batch).seconds

    def decode_times(self, num_seqs: int, ctx_sums: np.ndarray) -> np.ndarray:
        key = (num_seqs, num_seqs)
        if key not in self._linear_sum:
            self._linear_ops(*key)
        fc, bc, br = self._decode_attn_coeffs()
        L = self.model.layers
        per_layer = np.maximum(fc * ctx_sums / self.attn_peak, (bc * ctx_sums + br * num_seqs) / self.bw)
        const = self._linear_sum[key] + self._decode_fixed(num_seqs) + L * self.p.kernel_overhead_s
        return L * per_layer + const
