"""Roofline performance model: each operator costs max(FLOPs / compute, bytes / bandwidth).

Efficiencies (how much of the datasheet peak real kernels reach) are parameters; the
profiled model fits them from measurements. Shapes are per GPU after tensor parallelism.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from servesim.hardware import GPUSpec
from servesim.kv_geometry import KVGeometry
from servesim.kv_geometry import kv_dtype as resolve_kv_dtype
from servesim.layout import Layout
from servesim.models import DTYPE_BYTES, ModelSpec
from servesim.perf.base import FAR, DecodeCurve, OpCost, PerfModel
from servesim.perf.batch import Batch
from servesim.perf.quant import BANDWIDTH_SHARE, COMPUTE_SHARE, WeightQuant


@dataclass(frozen=True)
class RooflineParams:
    """Achievable fractions of peak and fixed costs. Defaults are typical of Hopper + vLLM."""

    gemm_efficiency: float = 0.75  # large bf16 GEMMs via cuBLAS reach ~75-80% of peak
    gemm_half_rows: float = 48.0  # token rows at which a GEMM reaches half that efficiency
    attn_efficiency: float = 0.45  # FlashAttention-2/3 prefill, fraction of peak
    mem_efficiency: float = 0.85  # streaming kernels, fraction of datasheet bandwidth
    kernel_overhead_s: float = 3e-6  # launch gap and tail of each kernel (CUDA graphs)
    link_efficiency: float = 0.7  # NCCL bus bandwidth over datasheet per-direction link
    collective_base_s: float = 6e-6  # launch and synchronisation of one collective
    link_latency_s: float = 1e-6  # per ring step
    cpu_overhead_s: float = 5e-4  # scheduler, input preparation, sampling launch
    cpu_per_seq_s: float = 2e-6  # per scheduled request


# A system-on-chip's GPU (Apple M-series, Jetson, a phone's Adreno) at small batches runs GEMV-class kernels on
# its vector units: no token rows are padded to tensor-core tiles, so the efficiency does not fall with the row
# count as cuBLAS tiles do on a datacenter GPU (gemm_half_rows 48), and decode stays bandwidth-bound, as
# measured on an M1 Max's GPU (about 318 of its 409.6 GB/s attained: llama.cpp pull request #1642). Assumed for
# every SoC until one is profiled.
SOC_PARAMS = RooflineParams(gemm_half_rows=1.0)


def dense_gemm(rows, n: int, k: int, peak: float, bw: float, efficiency, half_rows, wb: float, ab: float):
    """(seconds, flops, bytes) of one dense [rows x k] @ [k x n] GEMM, arrays broadcasting: the longer of its
    FLOPs at `peak` x an efficiency that falls with fewer rows than `half_rows`, and its bytes at `bw` (weights
    of `wb` bytes, activations of `ab`), without the kernel's fixed overhead."""
    flops = 2.0 * rows * n * k
    eff = efficiency * rows / (rows + half_rows)
    nbytes = (rows * k + k * n) * wb + rows * n * ab
    return np.maximum(flops / (peak * eff), nbytes / bw), flops, nbytes


def _bound(compute_s: float, memory_s: float) -> str:
    return "compute" if compute_s >= memory_s else "memory"


class RooflineModel(PerfModel):
    """Iteration time of `model` on one replica of `layout` (a checked `Layout`) on GPUs of type `gpu`."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GPUSpec,
        layout: Layout | None = None,
        dtype: str = "bf16",
        kv_dtype: str | None = None,
        params: RooflineParams | None = None,
        expert_skew: float = 1.0,
        network_gbs: float = 50.0,
        quant: WeightQuant | None = None,
    ):
        self.layout = layout = layout or Layout()
        self.model, self.gpu, self.tp = model, gpu, layout.tp
        self.pp, self.ep, self.dp, self.expert_skew = layout.pp, layout.ep, layout.dp, max(1.0, expert_skew)
        self.p = params or (SOC_PARAMS if gpu.kind == "soc" else RooflineParams())
        self.quant = quant  # weight-only quantised linear layers (quant.py)
        self.wb = DTYPE_BYTES[dtype]  # weights of the layers' linear projections
        self.ab = 2  # activations stay bf16/fp16 under fp8 weights, as do embedding, LM head and MoE router
        self.kv = KVGeometry.of(model, layout, kv_dtype or resolve_kv_dtype(dtype))  # the target's own cache
        self.kvb = self.kv.dtype_bytes
        self.peak = gpu.peak_flops(dtype)
        self.peak_wide = gpu.peak_flops("bf16")
        # attention runs in bf16 even when weights are fp8
        self.attn_peak = gpu.peak_flops("bf16") * self.p.attn_efficiency
        self.bw = gpu.mem_bw_gbs * 1e9 * self.p.mem_efficiency
        # tensor-parallel collectives run over NVLink inside a node, over the network once the group spans nodes;
        # pipeline stages sit on consecutive GPUs, so their sends cross the network when tp x pp spans nodes
        self.nvlink_bw = nvlink = gpu.link_gbs / 2 * 1e9 * self.p.link_efficiency
        self.network_bw = network = network_gbs * 1e9 * self.p.link_efficiency
        self.link_bw = nvlink if layout.tp <= layout.gpus_per_node else network
        self.pp_bw = nvlink if layout.gpus <= layout.gpus_per_node else network
        self.hq = model.heads // layout.tp
        self.hkv = self.kv.kv_heads  # KV heads are replicated when fewer than tp
        self._tok_table = np.zeros(1)  # seconds of token-count operators, by token count
        self._bound_tables: dict[str, np.ndarray] = {}  # their compute- and memory-bound parts
        self._seq_table = np.zeros(1)  # seconds of per-sequence operators, by sequence count
        self._dec_fixed: dict[int, float] = {}
        self._curves: dict[int, DecodeCurve] = {}

    # ----- primitives (vectorised over the row count) -----
    def _gemm(self, rows, n: int, k: int, count=1.0, wide: bool = False):
        """(seconds, flops, bytes) of `count` GEMMs of [rows x k] @ [k x n]; `wide`: one that stays bf16 under
        fp8 weights (LM head, MoE router: vLLM's fp8 checkpoints leave them unquantised)."""
        p = self.p
        wb, peak = (self.ab, self.peak_wide) if wide else (self.wb, self.peak)
        rows = np.maximum(rows, 1e-9)
        q = None if wide else self.quant
        if q is None:
            t, flops, nbytes = dense_gemm(rows, n, k, peak, self.bw, p.gemm_efficiency, p.gemm_half_rows, wb, self.ab)
        else:  # weight-only: fewer weight bytes, streamed and multiplied less efficiently (quant.py)
            flops = 2.0 * rows * n * k
            eff = p.gemm_efficiency * rows / (rows + p.gemm_half_rows)
            wbytes = k * n * q.bytes_per_weight
            nbytes = (rows * k + rows * n) * self.ab + wbytes
            t = np.maximum(flops / (self.peak_wide * eff * COMPUTE_SHARE),
                           (nbytes - wbytes) / self.bw + wbytes / (self.bw * BANDWIDTH_SHARE))  # fmt: skip
        t = t + p.kernel_overhead_s
        return t * count, flops * count, nbytes * count

    def gemm_seconds(self, rows: float, n: int, k: int) -> float:
        """Seconds of one [rows x k] @ [k x n] GEMM on one GPU (measured where the profile has the shape)."""
        return float(self._gemm(np.asarray(float(rows)), n, k)[0])

    def _stream(self, nbytes, kernels: float):
        return nbytes / self.bw + kernels * self.p.kernel_overhead_s

    def _allreduce(self, nbytes):
        steps = 2 * (self.tp - 1)  # ring all-reduce: reduce-scatter then all-gather
        p = self.p
        return steps / self.tp * nbytes / self.link_bw + steps * p.link_latency_s + p.collective_base_s

    def _alltoall(self, nbytes):
        """One all-to-all over the ep GPUs of `nbytes` per GPU (each sends (ep-1)/ep of it to the others)."""
        return nbytes * (self.ep - 1) / self.ep / self.link_bw + self.p.collective_base_s

    # ----- operators whose cost depends only on the token count T or sequence count S -----
    def _token_ops(self, T: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]]:
        """(name, seconds, flops, bytes, bound) per operator class, each an array over T."""
        m, tp, L = self.model, self.tp, self.model.layers
        T = np.asarray(T, dtype=float)
        zero = np.zeros_like(T)
        ops = []

        def add(name, parts, bound=None):
            t, f, b = (sum(x[i] for x in parts) for i in range(3))
            ops.append((name, t, f, b, bound or ("compute" if np.all(f / self.peak >= b / self.bw) else "memory")))

        emb = 2.0 * T * m.hidden * self.ab
        ops.append(("embedding", self._embedding(T, emb), zero, emb, "memory"))
        if m.is_mla:
            qk = m.qk_nope_dim + m.qk_rope_dim
            q_in = m.q_lora_rank or m.hidden
            a_out = (m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_dim
            add("qkv_proj", [self._gemm(T, a_out, m.hidden, L), self._gemm(T, self.hq * qk, q_in, L)])
            add("o_proj", [self._gemm(T, m.hidden, self.hq * m.v_head_dim, L)])
        else:
            add("qkv_proj", [self._gemm(T, (self.hq + 2 * self.hkv) * m.head_dim, m.hidden, L)])
            add("o_proj", [self._gemm(T, m.hidden, self.hq * m.head_dim, L)])
        dense = L - m.moe_layers
        if dense:
            inter = m.intermediate // tp
            add("mlp", [self._gemm(T, 2 * inter, m.hidden, dense), self._gemm(T, m.hidden, inter, dense)])
        if m.moe_layers:
            add("moe", self._moe_parts(T))
        ew, ew_bytes = self._elementwise(T)
        ops.append(("norm_act", ew, zero, ew_bytes, "memory"))
        if tp > 1:
            ar = T * m.hidden * self.ab
            ops.append(("tp_comm", 2 * L * self._allreduce(ar), zero, 2 * L * ar, "comm"))
        if self.pp > 1:  # activations cross each stage boundary once per iteration
            act = T * m.hidden * self.ab / tp
            send = act / self.pp_bw + self.p.collective_base_s
            ops.append(("pp_comm", (self.pp - 1) * send, zero, (self.pp - 1) * act, "comm"))
        return ops

    def _embedding(self, T, nbytes):
        return self._stream(nbytes, 1)

    def _elementwise(self, T):
        """(seconds, bytes) of norms, residual adds, rotary, query/key norms, activation and KV writes, all layers."""
        m = self.model
        # fused add+RMSNorm twice (read 2h, write 2h), rotary on q/k (and their RMS norms where the model has them),
        # SiLU*mul outside the routed experts (whose grouped kernel does its own)
        qk = self.rope_width * (4 if m.qk_norm else 2)
        elems = (8 * m.hidden + qk) * m.layers + 3 * sum(layers * width for layers, width in self.silu_widths)
        nbytes = T * elems * self.ab
        return self._stream(nbytes, (4 + m.qk_norm) * m.layers), nbytes

    @property
    def rope_width(self) -> int:
        """Elements per token the rotary kernel turns on one GPU: its query and key heads, or MLA's rotary parts
        of the query heads and the one rotary key beside the latent."""
        m = self.model
        return (self.hq + 1) * m.qk_rope_dim if m.is_mla else (self.hq + self.hkv) * m.head_dim

    @property
    def attn_width(self) -> int:
        """Attention output elements per token on one GPU (the output projection's input)."""
        return self.hq * (self.model.v_head_dim if self.model.is_mla else self.model.head_dim)

    @property
    def silu_widths(self) -> list[tuple[int, int]]:
        """(layers, outputs per token on one GPU) of the SiLU x up kernels outside the routed experts (whose grouped
        kernel does its own): dense MLPs, and shared experts."""
        m = self.model
        widths = [(m.layers - m.moe_layers, m.intermediate // self.tp),
                  (m.moe_layers * bool(m.shared_intermediate), m.shared_intermediate // self.tp)]  # fmt: skip
        return [(layers, width) for layers, width in widths if layers]

    def _moe_split(self, T):
        """(routed copies the busiest GPU's experts take, the expert width on each GPU, its local experts) of an
        iteration of T tokens on this attention rank (every data-parallel rank taken to run as many): experts split
        over the layer's dp x tp GPUs, or (EP) spread whole over ep groups of dp x tp / ep GPUs, the busiest group
        taking expert_skew x the mean load."""
        m = self.model
        group = self.tp * self.dp // self.ep  # GPUs each expert is split over
        if self.ep > 1:
            return T * self.dp * m.top_k / self.ep * self.expert_skew, m.moe_intermediate // group, \
                m.num_experts // self.ep  # fmt: skip
        return T * self.dp * m.top_k, m.moe_intermediate // group, m.num_experts

    def _moe_parts(self, T: np.ndarray) -> list:
        """(seconds, flops, bytes) parts of every MoE layer: the router's GEMM, routing, the routed experts as one
        grouped kernel per projection (`_experts`), all-to-all dispatch and combine under EP, shared experts."""
        m, L = self.model, self.model.moe_layers
        T = np.maximum(T, 1.0)
        copies, width, local = self._moe_split(T)
        parts = [
            self._gemm(T, m.num_experts, m.hidden, L, wide=True),  # router
            tuple(x * L for x in self._route(T)),
            tuple(x * L for x in self._experts(copies, width, local)),
        ]
        if self.ep > 1:  # all-to-all dispatch and combine of each GPU's share of its rank's tokens to the experts
            nbytes = T / self.tp * m.top_k * m.hidden * self.ab
            parts.append((2 * L * self._alltoall(nbytes), 0 * T, 2 * L * nbytes * (self.ep - 1) / self.ep))
        if m.shared_intermediate:
            si = m.shared_intermediate // self.tp
            parts += [self._gemm(T, 2 * si, m.hidden, L), self._gemm(T, m.hidden, si, L)]
        return parts

    def _route(self, T):
        """(seconds, flops, bytes) of one layer's routing: softmax over the router's logits, the top k, their
        renormalisation (three small kernels)."""
        nbytes = T * self.model.num_experts * 4 * 3  # fp32 probabilities written and read
        return self._stream(nbytes, 3), 0 * T, nbytes

    MOE_KERNELS = 8  # sort, count, gather, two grouped GEMMs, SiLU x up, weighting, combine

    def _experts(self, copies, width: int, local: int):
        """(seconds, flops, bytes) of one layer's routed experts as engines run them (vLLM's fused_moe, CUTLASS
        grouped GEMM): `copies` routed token copies over `local` experts of `width` on this GPU, one grouped GEMM
        per projection; the weights of every expert hit are read once, and a GEMM's efficiency follows the rows
        each expert gets."""
        p, h = self.p, self.model.hidden
        copies = np.maximum(copies, 1.0)
        active = local * (1.0 - (1.0 - 1.0 / local) ** copies)  # distinct experts hit under uniform routing
        rows = copies / active
        flops = 2.0 * copies * 3 * h * width
        if self.quant is None:
            wbytes, peak = active * 3 * h * width * self.wb, self.peak * p.gemm_efficiency * rows / (rows +
                                                                                                 p.gemm_half_rows)
        else:  # weight-only quantised experts: fewer bytes, multiplied less efficiently (quant.py)
            wbytes = active * 3 * h * width * self.quant.bytes_per_weight
            peak = self.peak_wide * p.gemm_efficiency * rows / (rows + p.gemm_half_rows) * COMPUTE_SHARE
        act = copies * (6 * h + 6 * width) * self.ab  # gather, the projections' inputs and outputs, the combine
        t = np.maximum(flops / peak, act / self.bw + wbytes / (self.bw * (BANDWIDTH_SHARE if self.quant else 1.0)))
        return t + self.MOE_KERNELS * p.kernel_overhead_s, flops, wbytes + act

    def _seq_ops(self, S: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]]:
        """LM head and sampler (one row per sequence) and CPU overhead, arrays over S."""
        m, p = self.model, self.p
        S = np.asarray(S, dtype=float)
        t, f, b = self._gemm(S, m.vocab // self.tp, m.hidden, wide=True)
        sample = 2.0 * S * m.vocab * 4  # fp32 logits written and read by the sampler
        lm_bound = "compute" if np.all(f / self.peak_wide >= b / self.bw) else "memory"
        return [
            ("lm_head", t, f, b, lm_bound),
            ("sampler", self._stream(sample, 2), 0 * S, sample, "memory"),
            ("cpu_overhead", p.cpu_overhead_s + p.cpu_per_seq_s * S, 0 * S, 0 * S, "overhead"),
        ]

    def _table(self, which: str, count: int) -> None:
        """Grow the seconds (and their compute/memory split) of the token or sequence operators to 0..count."""
        size = max(count + 1, 2 * len(self._tok_table if which == "tok" else self._seq_table), 1024)
        x = np.arange(size, dtype=float)
        ops = self._token_ops(x) if which == "tok" else self._seq_ops(x)
        table = sum(op[1] for op in ops)
        table[0] = 0.0
        self._bound_tables[which] = self._split_ops(ops)
        if which == "tok":
            self._tok_table = table
        else:
            self._seq_table = table

    def _bounds(self, T: int, S: int) -> tuple[np.ndarray, np.ndarray]:
        """The compute/memory split tables of the token and sequence operators, grown to T and S."""
        if len(self._tok_table) <= T:
            self._table("tok", T)
        if len(self._seq_table) <= S:
            self._table("seq", S)
        return self._bound_tables["tok"], self._bound_tables["seq"]

    def _split_ops(self, ops) -> np.ndarray:
        """Rows (compute-bound, memory-bound) seconds of `ops`, element by element; the rest is comm/CPU."""
        comp = sum(np.where(f / self.peak >= b / self.bw, t, 0.0) for _, t, f, b, bound in ops if bound in
                   ("compute", "memory") and np.any(f))  # fmt: skip
        mem = sum(t for _, t, f, b, bound in ops if bound in ("compute", "memory")) - comp
        out = np.stack([np.broadcast_to(comp, mem.shape), mem])
        out[:, 0] = 0.0
        return out

    def split(self, batch: Batch) -> tuple[float, float, float]:
        """(compute-bound, memory-bound, other) seconds of an iteration; they sum to iteration_time.

        Decode attention counts as memory-bound and prefill attention as compute-bound.
        """
        if batch.prefill_layers != 1.0 and batch.prefill_lens:
            return self._layered(batch, self.split)
        T = batch.num_decodes * batch.decode_q + sum(batch.prefill_lens)
        S = batch.num_decodes * batch.decode_q + len(batch.prefill_lens)
        tok, seq = self._bounds(T, S)
        dt, pt, ot = self._attention_seconds(batch)
        comp = float(tok[0, T] + seq[0, S]) + pt
        mem = float(tok[1, T] + seq[1, S]) + dt + ot
        return comp, mem, float(self._tok_table[T] + self._seq_table[S]) + dt + pt + ot - comp - mem

    def _layered(self, batch: Batch, price):
        """`price` of an iteration whose prefill chunks pass through a fraction f of the layers: per-layer costs
        are linear in the layer count, so it is f x (the batch through all layers) + (1 - f) x (its decodes
        alone); layer-less costs (embedding, LM head) are shared the same way, which is their mean over the
        groups a prompt passes through."""
        f = batch.prefill_layers
        full = price(dataclasses.replace(batch, prefill_layers=1.0))
        rest = price(Batch(batch.num_decodes, batch.decode_ctx_sum, decode_q=batch.decode_q))
        if isinstance(full, list):  # a breakdown: operator by operator
            by_name = {o.name: o for o in rest}
            zero = OpCost("", 0.0)
            return [OpCost(o.name, f * o.seconds + (1 - f) * by_name.get(o.name, zero).seconds,
                           f * o.flops + (1 - f) * by_name.get(o.name, zero).flops,
                           f * o.bytes + (1 - f) * by_name.get(o.name, zero).bytes, o.bound) for o in full]  # fmt: skip
        return tuple(f * a + (1 - f) * b for a, b in zip(full, rest, strict=True))

    # ----- attention: depends on context lengths -----
    def _decode_attn_coeffs(self) -> tuple[float, float, float]:
        """Per layer: (flops per context token, bytes per context token, bytes per request)."""
        m = self.model
        if m.is_mla:  # absorbed MLA: every head scores against the shared latent
            return 2.0 * self.hq * (2 * m.kv_lora_rank + m.qk_rope_dim), self.kv.per_layer, 0.0
        return 4.0 * self.hq * m.head_dim, self.kv.per_layer, 2.0 * self.hq * m.head_dim * self.ab

    def _decode_fixed(self, n: int) -> float:
        """Decode attention costs that depend on the request count only (MLA absorption GEMMs)."""
        t = self._dec_fixed.get(n)
        if t is None:
            m = self.model
            t = 0.0
            if m.is_mla and n:
                t = float(self._gemm(n, self.hq * (m.qk_nope_dim + m.v_head_dim), m.kv_lora_rank, m.layers)[0])
            self._dec_fixed[n] = t
        return t

    def _decode_attention(self, n: int, ctx_sum, q: int = 1):
        """Seconds of decode attention over all layers, `q` query tokens per request (the KV is read once);
        ctx_sum may be an array."""
        fc, bc, br = self._decode_attn_coeffs()
        per_layer = np.maximum(q * fc * ctx_sum / self.attn_peak, (bc * ctx_sum + q * br * n) / self.bw)
        return self.model.layers * (per_layer + self.p.kernel_overhead_s) + self._decode_fixed(n * q)

    def _prefill_terms(self, b: Batch) -> tuple[tuple, float, float]:
        """MLA's latent up-projection as (seconds, flops, bytes), zeros otherwise, and the prefill chunks'
        attention flops and bytes per layer."""
        m, L = self.model, self.model.layers
        pairs, new, kv_tok = b.prefill_pairs, b.num_prefill_tokens, b.prefill_kv_tokens
        if m.is_mla:  # prefill decompresses the latent cache, then runs ordinary attention
            width = m.qk_nope_dim + m.qk_rope_dim + m.v_head_dim
            pf = 2.0 * self.hq * width * pairs
            pb = (kv_tok * self.hq * width + new * self.hq * width) * self.ab
            up = self._gemm(kv_tok, self.hq * (m.qk_nope_dim + m.v_head_dim), m.kv_lora_rank, L)
            return (float(up[0]), float(up[1]), float(up[2])), pf, pb
        pf = 4.0 * self.hq * m.head_dim * pairs
        pb = kv_tok * self.kv.per_layer + new * 2 * self.hq * m.head_dim * self.ab
        return (0.0, 0.0, 0.0), pf, pb

    def _prefill_seconds(self, b: Batch) -> float:
        """Seconds of the prefill chunks' attention over all layers."""
        up, pf, pb = self._prefill_terms(b)
        return up[0] + self.model.layers * (max(pf / self.attn_peak, pb / self.bw) + self.p.kernel_overhead_s)

    def _attention_seconds(self, b: Batch) -> tuple[float, float, float]:
        """(decode, prefill, other) seconds of the batch's attention."""
        dt = float(self._decode_attention(b.num_decodes, b.decode_ctx_sum, b.decode_q)) if b.num_decodes else 0.0
        return dt, self._prefill_seconds(b) if b.prefill_lens else 0.0, 0.0

    def _attention_parts(self, b: Batch) -> tuple[float, float, float, float, float]:
        """(decode seconds, prefill seconds, other seconds, flops, bytes) of the batch's attention."""
        L = self.model.layers
        dt, pt, ot = self._attention_seconds(b)
        f = nb = 0.0
        if b.num_decodes:
            fc, bc, br = self._decode_attn_coeffs()
            f += L * fc * b.decode_ctx_sum * b.decode_q
            nb += L * (bc * b.decode_ctx_sum + br * b.num_decodes * b.decode_q)
        if b.prefill_lens:
            up, pf, pb = self._prefill_terms(b)
            f, nb = f + up[1] + L * pf, nb + up[2] + L * pb
        return dt, pt, ot, f, nb

    def _attention(self, b: Batch) -> OpCost:
        dt, pt, ot, f, nb = self._attention_parts(b)
        return OpCost("attention", dt + pt + ot, f, nb, _bound(f / self.attn_peak, nb / self.bw))

    # ----- PerfModel -----
    def breakdown(self, batch: Batch) -> list[OpCost]:
        if batch.num_tokens == 0:
            return []
        if batch.prefill_layers != 1.0 and batch.prefill_lens:
            return self._layered(batch, self.breakdown)
        one = np.ones(1)
        rows = self._token_ops(one * batch.num_tokens) + self._seq_ops(one * batch.logit_rows)
        ops = [OpCost(n, float(t[0]), float(f[0]), float(b[0]), bd) for n, t, f, b, bd in rows]
        ops.insert(2, self._attention(batch))
        return ops

    def _decode_breaks(self, n: int, q: int = 1) -> list[float]:
        """Mean contexts at which decode attention's slope changes: where compute overtakes memory."""
        fc, bc, br = self._decode_attn_coeffs()
        compute, memory = q * fc / self.attn_peak, bc / self.bw  # per context token
        return [0.0, q * br / self.bw / (compute - memory)] if compute > memory else [0.0]

    def decode_curve(self, n: int, q: int = 1) -> DecodeCurve:
        """Decode-only iterations of n requests (q query tokens each: a speculative verify pass)."""
        curve = self._curves.get(n if q == 1 else (n, q))
        if curve is None:
            t = n * q
            tok, seq = self._bounds(t, t)
            comp, mem_const = float(tok[0, t] + seq[0, t]), float(tok[1, t] + seq[1, t])
            other = float(self._tok_table[t] + self._seq_table[t]) - comp - mem_const
            xs = np.array(sorted(set(self._decode_breaks(n, q))) + [FAR])
            seconds = comp + other + mem_const + self._decode_attention(n, n * xs, q)
            curve = self._curves[n if q == 1 else (n, q)] = DecodeCurve(comp, other, xs, seconds)
        return curve
