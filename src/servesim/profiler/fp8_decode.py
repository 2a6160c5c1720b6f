"""Split-KV decode attention over an FP8 (e4m3) KV cache, written in Triton.

PyTorch's attention backends take no FP8 operands, so this is servesim's own kernel for
the decode attention of an FP8 KV cache, built the way engine kernels for it are
(FlashInfer's decode, vLLM's Triton decode): K and V are read as one byte per element and
widened to bf16 in registers, the query heads that share a KV head are scored together
in one program, and a long cache is split over several programs (flash-decoding) whose
partial results a second kernel combines. Per-tensor scales multiply scores and output.

The same kernel runs on a bf16 cache, which lets the profiler compare it with PyTorch's
own split-KV backends on identical shapes (a check that it is engine-grade).
"""

from __future__ import annotations

from functools import cache

import torch
import triton
import triton.language as tl

BLOCK_N = 128  # cache positions per loop step (tuned on H100 and H200: benchmarks/gpu_fp8.py)
MIN_SPLIT = 256  # shortest span of the cache one program reads
MAX_SPLITS = 64
NUM_WARPS = 4
NUM_STAGES = 3
FP8_COMPUTE = "fp16"  # e4m3 widens to fp16 in one instruction per pair, to bf16 only through more


@triton.jit
def _split_kernel(Q, K, V, PART, LSE, OUT, scale, v_scale, C, split_len,
                  sqb, sqh, skb, skh, skc, sob, soh, sos, slb, slh, sOb,
                  G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, BN: tl.constexpr,
                  DIRECT: tl.constexpr, CDT: tl.constexpr):  # fmt: skip
    b, h, s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    g, d, n = tl.arange(0, GP), tl.arange(0, D), tl.arange(0, BN)
    heads = h * G + g
    live = g < G
    q = tl.load(Q + b * sqb + heads[:, None] * sqh + d[None, :], mask=live[:, None], other=0.0).to(CDT)
    start = s * split_len
    end = tl.minimum(start + split_len, C)
    m_i = tl.full([GP], float("-inf"), tl.float32)
    l_i = tl.zeros([GP], tl.float32)
    acc = tl.zeros([GP, D], tl.float32)
    kb, vb = K + b * skb + h * skh, V + b * skb + h * skh
    for off in range(start, end, BN):
        pos = off + n
        inside = pos < end
        k = tl.load(kb + pos[:, None] * skc + d[None, :], mask=inside[:, None], other=0.0).to(CDT)
        qk = tl.dot(q, tl.trans(k)) * scale
        qk = tl.where(inside[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(qk - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(vb + pos[:, None] * skc + d[None, :], mask=inside[:, None], other=0.0).to(CDT)
        acc = acc * alpha[:, None] + tl.dot(p.to(CDT), v)
        m_i = m_new
    out = acc * v_scale / l_i[:, None]
    if DIRECT:  # one split: the result itself
        tl.store(OUT + b * sOb + heads[:, None] * D + d[None, :], out.to(tl.bfloat16), mask=live[:, None])
    else:
        tl.store(PART + b * sob + heads[:, None] * soh + s * sos + d[None, :], out, mask=live[:, None])
        tl.store(LSE + b * slb + heads * slh + s, m_i + tl.log(l_i), mask=live)


@triton.jit
def _combine_kernel(PART, LSE, OUT, S, sob, soh, sos, slb, slh, sOb, D: tl.constexpr, SP: tl.constexpr):
    b, h = tl.program_id(0), tl.program_id(1)
    s, d = tl.arange(0, SP), tl.arange(0, D)
    used = s < S
    lse = tl.load(LSE + b * slb + h * slh + s, mask=used, other=float("-inf"))
    w = tl.exp(lse - tl.max(lse, 0))
    w = w / tl.sum(w, 0)
    o = tl.load(PART + b * sob + h * soh + s[:, None] * sos + d[None, :], mask=used[:, None], other=0.0)
    tl.store(OUT + b * sOb + h * D + d, tl.sum(o * w[:, None], 0).to(tl.bfloat16))


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def num_splits(batch: int, kv_heads: int, ctx: int, sms: int) -> int:
    """Programs per (sequence, KV head): enough to fill the GPU twice, none shorter than MIN_SPLIT."""
    return max(1, min(_cdiv(2 * sms, batch * kv_heads), MAX_SPLITS, _cdiv(ctx, MIN_SPLIT)))


def _compute_dtype(cache_dtype):
    if cache_dtype == torch.float8_e4m3fn and FP8_COMPUTE == "fp16":
        return tl.float16
    return tl.bfloat16


@cache
def _sms(device: int) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_scale: float = 1.0,
                     v_scale: float = 1.0) -> torch.Tensor:  # fmt: skip
    """q [B, Hq, D] bf16; k, v [B, Hkv, C, D] (fp8 e4m3 or bf16, last dim contiguous); returns [B, Hq * D]."""
    B, Hq, D = q.shape
    Hkv, C = k.shape[1], k.shape[2]
    G = Hq // Hkv
    S = num_splits(B, Hkv, C, _sms(q.device.index or 0))
    split_len = _cdiv(_cdiv(C, S), BLOCK_N) * BLOCK_N
    S = _cdiv(C, split_len)
    out = torch.empty(B, Hq * D, device=q.device, dtype=torch.bfloat16)
    parts, lse = split_buffers(out, B, Hq, S, D)
    _split_kernel[(B, Hkv, S)](
        q, k, v, parts, lse, out, D**-0.5 * k_scale, v_scale, C, split_len,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2),
        parts.stride(0), parts.stride(1) if S > 1 else 0, parts.stride(2) if S > 1 else 0,
        lse.stride(0), lse.stride(1) if S > 1 else 0, out.stride(0),
        G=G, GP=max(16, triton.next_power_of_2(G)), D=D, BN=BLOCK_N, DIRECT=S == 1,
        CDT=_compute_dtype(k.dtype), num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    combine(parts, lse, out, S)
    return out


def split_buffers(out: torch.Tensor, B: int, H: int, S: int, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each split's partial output [B, H, S, D] and log-sum-exp [B, H, S] (float32); with one split, `out` stands
    in for both (the kernel writes its result directly)."""
    if S == 1:
        return out, out
    return (torch.empty(B, H, S, D, device=out.device, dtype=torch.float32),
            torch.empty(B, H, S, device=out.device, dtype=torch.float32))  # fmt: skip


def combine(parts: torch.Tensor, lse: torch.Tensor, out: torch.Tensor, S: int) -> None:
    """Join S > 1 splits' partial outputs into `out` [B, H * D] (contiguous), weighted by their log-sum-exps."""
    if S > 1:
        B, H, _, D = parts.shape
        _combine_kernel[(B, H)](parts, lse, out, S, parts.stride(0), parts.stride(1), parts.stride(2),
                                lse.stride(0), lse.stride(1), out.stride(0), D=D,
                                SP=max(2, triton.next_power_of_2(S)))  # fmt: skip
