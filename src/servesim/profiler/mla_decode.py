"""Split-KV decode attention of multi-head latent attention (MLA, DeepSeek-V2/V3), written in Triton.

Absorbed decode, as serving engines run MLA (FlashMLA, FlashInfer's MLA, vLLM's Triton MLA):
every query head has been multiplied into the latent space (`kernels.mla_decode` does that
with a batched GEMM), so all heads score against one shared cache row per token, the
latent (512 wide) joined by its rotary key (64), and the values are the latent itself.
A program takes a block of 16 heads of one sequence and one span of its cache, reading
each cache row once for all of them; long caches are split over programs whose partial
results `fp8_decode.combine` joins. PyTorch's attention backends cannot run it
(576-wide keys, 512-wide values).

This is servesim's kernel, not FlashMLA (which DeepSeek reports at up to 3,000 GB/s
memory-bound and 660 TFLOPS compute-bound on H800s): the profiler records what this one
reaches, and the tables price it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from servesim.profiler import kernels
from servesim.profiler.fp8_decode import _cdiv, _sms, combine, num_splits, split_buffers
from servesim.profiler.kernels import mla_attention_reference

# query heads per program (the smallest tile tl.dot takes). 32 and 64 were tried on the H100 (2026-12-06): 64 heads a
# program gained 5% on 128-head tuning shapes but was 0.54-1.57x of this across the 128-head grid and 1.37x slower at
# 32 heads, so one block size serves every head count
HEADS = 16
CONFIGS = [(32, 4, 2), (64, 4, 2), (32, 8, 3), (64, 8, 2)]  # (block of cache rows, warps, stages) tried by tune()
CONFIG = CONFIGS[0]


@triton.jit
def _mla_split(Q, CACHE, PART, LSE, OUT, scale, H, C, split_len,
               sqb, sqh, scb, scc, sob, soh, sos, slb, slh, sOb, sOh,
               HB: tl.constexpr, DL: tl.constexpr, DR: tl.constexpr, BN: tl.constexpr,
               DIRECT: tl.constexpr):  # fmt: skip
    b, hb, s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    g, dl, dr, n = tl.arange(0, HB), tl.arange(0, DL), tl.arange(0, DR), tl.arange(0, BN)
    heads = hb * HB + g
    live = heads < H
    qb = Q + b * sqb + heads[:, None] * sqh
    q_lat = tl.load(qb + dl[None, :], mask=live[:, None], other=0.0)
    q_rot = tl.load(qb + DL + dr[None, :], mask=live[:, None], other=0.0)
    start = s * split_len
    end = tl.minimum(start + split_len, C)
    m_i = tl.full([HB], float("-inf"), tl.float32)
    l_i = tl.zeros([HB], tl.float32)
    acc = tl.zeros([HB, DL], tl.float32)
    for off in range(start, end, BN):
        pos = off + n
        inside = pos < end
        row = CACHE + b * scb + pos[:, None] * scc
        lat = tl.load(row + dl[None, :], mask=inside[:, None], other=0.0)
        rot = tl.load(row + DL + dr[None, :], mask=inside[:, None], other=0.0)
        qk = (tl.dot(q_lat, tl.trans(lat)) + tl.dot(q_rot, tl.trans(rot))) * scale
        qk = tl.where(inside[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(qk - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(tl.bfloat16), lat)  # the values are the latent itself
        m_i = m_new
    out = acc / l_i[:, None]
    if DIRECT:
        tl.store(OUT + b * sOb + heads[:, None] * sOh + dl[None, :], out.to(tl.bfloat16), mask=live[:, None])
    else:
        tl.store(PART + b * sob + heads[:, None] * soh + s * sos + dl[None, :], out, mask=live[:, None])
        tl.store(LSE + b * slb + heads * slh + s, m_i + tl.log(l_i), mask=live)


def mla_attention(q: torch.Tensor, cache: torch.Tensor, latent: int, scale: float) -> torch.Tensor:
    """q [B, H, latent + rope] (absorbed queries and their rotary part, contiguous); cache [B, C, latent + rope]
    (last dim contiguous); returns [B, H, latent] bf16: softmax(q . cache^T * scale) . cache[..., :latent]."""
    B, H, width = q.shape
    C = cache.shape[1]
    block, warps, stages = CONFIG
    blocks = _cdiv(H, HEADS)
    S = num_splits(B, blocks, C, _sms(q.device.index or 0))
    split_len = _cdiv(_cdiv(C, S), block) * block
    S = _cdiv(C, split_len)
    out = torch.empty(B, H, latent, device=q.device, dtype=torch.bfloat16)
    parts, lse = split_buffers(out, B, H, S, latent)
    _mla_split[(B, blocks, S)](
        q, cache, parts, lse, out, scale, H, C, split_len,
        q.stride(0), q.stride(1), cache.stride(0), cache.stride(1),
        parts.stride(0), parts.stride(1) if S > 1 else 0, parts.stride(2) if S > 1 else 0,
        lse.stride(0), lse.stride(1) if S > 1 else 0, out.stride(0), out.stride(1),
        HB=HEADS, DL=latent, DR=width - latent, BN=block, DIRECT=S == 1, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    combine(parts, lse, out, S)
    return out


def tune(device: str, heads: int = 16, latent: int = 512, rope: int = 64) -> dict:
    """Check every config against the reference and keep the fastest over a few decode shapes (a long single
    sequence, a mid batch, a large batch); returns what meta.json records, and sets kernels.MLA_ATTENTION."""
    global CONFIG
    from servesim.profiler.timing import time_calls

    report, timed = {}, []
    shapes = [(1, 16384), (32, 2048), (128, 4096)]
    cases = []
    for B, C in shapes:
        q = torch.randn(B, heads, latent + rope, device=device, dtype=torch.bfloat16)
        cache = torch.randn(B, C, latent + rope, device=device, dtype=torch.bfloat16)
        cases.append((q, cache))
    scale = 192**-0.5
    for cfg in CONFIGS:
        CONFIG = cfg
        try:
            q, cache = cases[1][0][:2], cases[1][1][:2]
            ref = mla_attention_reference(q, cache, latent, scale)
            err = float((mla_attention(q, cache, latent, scale).float() - ref).abs().max())
            if err > 2e-2:
                raise ValueError(f"max error {err:.3g}")
            total = sum(time_calls([lambda q=q, c=c: mla_attention(q, c, latent, scale)]) for q, c in cases)
            timed.append((total, cfg))
            report[f"mla_config_{cfg[0]}_{cfg[1]}_{cfg[2]}_us"] = round(total * 1e6, 1)
        except Exception as e:  # noqa: BLE001 - a config that fails here is not used
            report[f"mla_config_{cfg[0]}_{cfg[1]}_{cfg[2]}_error"] = f"{type(e).__name__}: {e}"[:160]
    if not timed:
        raise RuntimeError(f"no MLA decode config runs here: {report}")
    CONFIG = min(timed)[1]
    kernels.MLA_ATTENTION = mla_attention  # what kernels.mla_decode runs from now on
    B, C = shapes[2]
    t = time_calls([lambda: mla_attention(*cases[2], latent, scale)])
    report["mla_config"] = list(CONFIG)
    report["mla_gbs_128x4096"] = round(B * C * (latent + rope) * 2 / t / 1e9, 1)  # cache bytes over time
    return report
