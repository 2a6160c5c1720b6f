"""The PyTorch building blocks of a decoder layer.

The profiler times exactly these functions and the validation decoder is built from
them, so predictions and measurements refer to the same kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # PyTorch >= 2.2: causal mask aligned to the end of the keys, as chunked prefill needs
    from torch.nn.attention.bias import causal_lower_right
except ImportError:  # pragma: no cover
    causal_lower_right = None


def linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """y = x @ w^T, w stored [out, in] as in Hugging Face checkpoints."""
    return F.linear(x, w)


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), w, eps)


def add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + y


def silu_mul(x: torch.Tensor) -> torch.Tensor:
    gate, up = x.chunk(2, dim=-1)
    return F.silu(gate) * up


def _rotate(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotary embedding; q [T, Hq, D], k [T, Hkv, D], cos/sin [T, 1, D]."""
    return q * cos + _rotate(q) * sin, k * cos + _rotate(k) * sin


NATIVE_GQA = False  # set by probe(): whether SDPA groups query heads itself on this device


def attention_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention of L new queries over C + L keys (C cached before them).

    q [L, Hq, D] in token layout; k, v [1, Hkv, C + L, D]; returns [L, Hq * D]. Grouped-query
    heads are served by repeating K/V heads only when the backend cannot group them itself.
    """
    L, Hq, D = q.shape
    q = q.transpose(0, 1).unsqueeze(0)
    S = k.shape[2]
    groups = q.shape[1] // k.shape[1]
    extra = {}
    if groups > 1 and NATIVE_GQA:
        extra["enable_gqa"] = True
    elif groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    if S == L:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, **extra)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(L, S), **extra)
    return out[0].transpose(0, 1).reshape(L, Hq * D)


def probe(device: str) -> dict:
    """Choose the grouped-query path for prefill and report which SDPA backends run."""
    global NATIVE_GQA
    report = {}
    q = torch.randn(64, 8, 128, device=device, dtype=torch.bfloat16)
    kv = torch.randn(1, 2, 96, 128, device=device, dtype=torch.bfloat16)
    ref = None
    for native in (False, True):
        NATIVE_GQA = native
        try:
            out = attention_prefill(q, kv, kv)
            if ref is None:
                ref = out
            ok = bool(torch.allclose(out.float(), ref.float(), atol=2e-2))
        except Exception as e:  # noqa: BLE001 - any failure means this path is unusable
            ok, report["gqa_native_error"] = False, f"{type(e).__name__}: {e}"[:200]
        report[f"prefill_gqa_native_{native}"] = ok
    NATIVE_GQA = report.get("prefill_gqa_native_True", False)
    if device.startswith("cuda"):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):
            backend = getattr(SDPBackend, name, None)
            if backend is None:
                continue
            try:
                with sdpa_kernel([backend]):
                    attention_prefill(q, kv, kv)
                    attention_decode(q[:1], kv[:, :, :50], kv[:, :, :50])
                report[f"backend_{name.lower()}"] = True
            except Exception:  # noqa: BLE001
                report[f"backend_{name.lower()}"] = False
        _probe_decode(device, report)
    report["native_gqa_used"] = NATIVE_GQA
    return report


DECODE_BACKENDS: list = []  # set by probe(): SDPA backends for decode, fastest first; empty: packed GQA


def attention_decode(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One new query per sequence over its whole cache; q [B, Hq, D], k, v [B, Hkv, C, D]; returns [B, Hq * D].

    As serving engines run it: one query row per head, K/V heads grouped by the kernel, through a backend that
    splits long caches across the SMs (flash-decoding: FlashAttention-2's split-KV kernel, cuDNN's lean
    reduction), so a few long sequences still read their cache near HBM bandwidth. Without such a backend the
    query heads that share a K/V head are packed as a short query sequence instead.
    """
    B, Hq, D = q.shape
    Hkv = k.shape[1]
    if not DECODE_BACKENDS:
        return F.scaled_dot_product_attention(q.view(B, Hkv, Hq // Hkv, D), k, v).reshape(B, Hq * D)
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel(DECODE_BACKENDS, set_priority=True):
        out = F.scaled_dot_product_attention(q.view(B, Hq, 1, D), k, v, enable_gqa=Hq != Hkv)
    return out.reshape(B, Hq * D)


def _probe_decode(device: str, report: dict) -> None:
    """Pick the split-KV decode backends that run here, fastest first on a long single sequence."""
    global DECODE_BACKENDS
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 32, 128, device=device, dtype=torch.bfloat16)
    kv = torch.randn(1, 8, 8192, 128, device=device, dtype=torch.bfloat16)
    ref = F.scaled_dot_product_attention(q.view(1, 8, 4, 128).float(), kv.float(), kv.float()).reshape(1, -1)
    timed = []
    for name in ("CUDNN_ATTENTION", "FLASH_ATTENTION"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            continue
        try:
            with sdpa_kernel([backend]):
                call = lambda: F.scaled_dot_product_attention(q.view(1, 32, 1, 128), kv, kv, enable_gqa=True)  # noqa: E731
                out = call().reshape(1, -1)
                if not torch.allclose(out.float(), ref, atol=2e-2):
                    raise ValueError("wrong result")
                for _ in range(3):
                    call()
                start, end = torch.cuda.Event(True), torch.cuda.Event(True)
                start.record()
                for _ in range(20):
                    call()
                end.record()
                torch.cuda.synchronize()
                timed.append((start.elapsed_time(end), backend))
        except Exception as e:  # noqa: BLE001 - a backend that fails here is not used
            report[f"decode_{name.lower()}_error"] = f"{type(e).__name__}: {e}"[:160]
    DECODE_BACKENDS = [b for _, b in sorted(timed, key=lambda x: x[0])]
    report["decode_backends"] = [b.name for b in DECODE_BACKENDS] or ["packed GQA (no split-KV backend)"]


def write_kv(cache: torch.Tensor, new: torch.Tensor, start: int) -> None:
    """Store the K or V of new tokens at positions start.. of a cache [B, Hkv, S, D].

    new is in token layout: [n, Hkv, D] for one sequence (B = 1), or [B, Hkv, D] for one
    token of each of B sequences.
    """
    if cache.shape[0] == 1:
        cache[0, :, start : start + new.shape[0]].copy_(new.transpose(0, 1))
    else:
        cache[:, :, start].copy_(new)


# ----- FP8: weights and KV cache in float8 e4m3, as vLLM's fp8 checkpoints and --kv-cache-dtype fp8 run them -----
FP8 = torch.float8_e4m3fn
_ONE: dict = {}  # per-tensor scale 1.0 on each device (random operands need no scaling)


def to_fp8(w: torch.Tensor) -> torch.Tensor:
    return w.to(FP8)


def linear_fp8(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """y = x @ w^T with w in fp8 [out, in]: x quantised to fp8 by one cast kernel (a static per-tensor scale, as
    vLLM's fp8 checkpoints carry), then one per-tensor-scaled fp8 GEMM with bf16 output (torch._scaled_mm)."""
    one = _ONE.get(x.device)
    if one is None:
        one = _ONE[x.device] = torch.ones((), device=x.device, dtype=torch.float32)
    return torch._scaled_mm(x.to(FP8), w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


def attention_decode_fp8(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Decode attention over an fp8 cache: servesim's split-KV Triton kernel (profiler/fp8_decode.py)."""
    from servesim.profiler.fp8_decode import decode_attention

    return decode_attention(q, k, v)


def attention_prefill_fp8(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Prefill over an fp8 cache: the cache read and widened to bf16 (one kernel each for K and V), then the
    bf16 prefill attention. FlashAttention-3's native fp8 prefill would skip the widening (not modelled)."""
    return attention_prefill(q, dequant_kv(k), dequant_kv(v))


def dequant_kv(cache: torch.Tensor) -> torch.Tensor:
    return cache.to(torch.bfloat16)
