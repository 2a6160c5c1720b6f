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


# ----- mixture of experts, as serving engines run it: one grouped kernel per projection over all routed tokens -----
MOE_ALIGN = 1  # rows each expert's group is padded to (set by probe_moe: 1 where the grouped GEMM takes any offsets)


def moe_route(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's top_k experts and their weights from the router's logits [T, E]: softmax in fp32, the top k,
    renormalised (Mixtral, Qwen3-MoE; DeepSeek-V3's grouped sigmoid scoring costs about the same)."""
    weights, ids = torch.topk(torch.softmax(logits, dim=-1, dtype=torch.float32), top_k, dim=-1)
    return weights / weights.sum(dim=-1, keepdim=True), ids


def _groups(ids: torch.Tensor, experts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The routed copies in expert order: (their order, each group's end offset [E] int32, and where each copy's row
    lies in the padded layout when groups are padded to MOE_ALIGN rows). Device work only: no host sync, so it can
    be captured in a CUDA graph."""
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.zeros(experts, dtype=torch.int64, device=ids.device).scatter_add_(0, flat, torch.ones_like(flat))
    if MOE_ALIGN == 1:
        return order, torch.cumsum(counts, 0).to(torch.int32), None
    padded = (counts + MOE_ALIGN - 1) // MOE_ALIGN * MOE_ALIGN
    ends = torch.cumsum(padded, 0)
    first = torch.cumsum(counts, 0) - counts  # each expert's first copy in the unpadded order
    expert = flat[order]
    rows = ends[expert] - padded[expert] + torch.arange(flat.numel(), device=ids.device) - first[expert]
    return order, ends.to(torch.int32), rows


def moe_experts(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, weights: torch.Tensor,
                ids: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The experts' part of an MoE layer over routed tokens: gather each copy in expert order, one grouped GEMM for
    every expert's gate and up projections, SiLU x up, one grouped GEMM for the down projections, scale by the
    routing weight, and add the copies back into their tokens. x [T, H]; w13 [E, 2I, H] and w2 [E, H, I] stored as
    checkpoints store them ([out, in]); weights, ids [T, k]. With fp8 weights (w13.dtype float8), the activations
    are quantised per row and the grouped GEMMs are row- and column-scaled fp8 (torch._scaled_grouped_mm)."""
    T, k = ids.shape
    order, offs, rows = _groups(ids, w13.shape[0])
    src = order // k  # the token of each copy
    xs = x.index_select(0, src)
    if rows is not None:  # padded groups: every copy at its row, the padding rows zero
        padded = x.new_zeros(xs.shape[0] + w13.shape[0] * (MOE_ALIGN - 1), x.shape[1])
        xs = padded.index_copy_(0, rows, xs)
    h = silu_mul(_grouped(xs, w13, offs))
    y = _grouped(h, w2, offs)
    if rows is not None:
        y = y.index_select(0, rows)
    y = y * weights.reshape(-1)[order].unsqueeze(1).to(y.dtype)
    return torch.zeros_like(x).index_add_(0, src, y)


def _grouped(a: torch.Tensor, w: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
    """Rows of `a` grouped by `offs`, each group times its expert's w^T (w [E, N, K]): [rows, N] in bf16."""
    if w.dtype != FP8:
        return torch._grouped_mm(a, w.transpose(-2, -1), offs=offs)
    amax = a.abs().amax(dim=-1).float().clamp(min=1e-12)  # per-token dynamic scaling, as vLLM quantises activations
    scale = amax / 448.0
    qa = (a / scale.unsqueeze(1).to(a.dtype)).to(FP8)
    ones = _moe_ones(w)
    return torch._scaled_grouped_mm(qa, w.transpose(-2, -1), scale, ones, offs=offs, out_dtype=torch.bfloat16)


_W_SCALES: dict = {}


def _moe_ones(w: torch.Tensor) -> torch.Tensor:
    """Per-column scales of fp8 expert weights [E, N] (ones: random weights need no scaling)."""
    key = (w.shape[0], w.shape[1], w.device)
    s = _W_SCALES.get(key)
    if s is None:
        s = _W_SCALES[key] = torch.ones(w.shape[0], w.shape[1], device=w.device, dtype=torch.float32)
    return s


def moe_reference(x, w13, w2, weights, ids) -> torch.Tensor:
    """The same layer one expert at a time in float32 (the check the grouped path is held to)."""
    out = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
    for e in range(w13.shape[0]):
        tok, slot = (ids == e).nonzero(as_tuple=True)
        if not len(tok):
            continue
        h = x[tok].float() @ w13[e].float().t()
        gate, up = h.chunk(2, dim=-1)
        y = (F.silu(gate) * up) @ w2[e].float().t()
        out.index_add_(0, tok, y * weights[tok, slot].unsqueeze(1))
    return out


def probe_moe(device: str) -> dict:
    """Check the grouped path against the reference (bf16, and fp8 where it runs), with uneven groups, some empty;
    pad groups to 16 rows where the grouped GEMM refuses unaligned offsets."""
    global MOE_ALIGN
    report = {}
    gen = torch.Generator(device=device).manual_seed(0)
    E, H, inter, T, k = 16, 256, 128, 37, 2
    x = torch.randn(T, H, device=device, dtype=torch.bfloat16, generator=gen)
    w13 = torch.randn(E, 2 * inter, H, device=device, dtype=torch.bfloat16, generator=gen) * 0.05
    w2 = torch.randn(E, H, inter, device=device, dtype=torch.bfloat16, generator=gen) * 0.05
    logits = torch.randn(T, E, device=device, generator=gen)
    logits[:, : E // 2] -= 100.0  # half the experts get nothing
    weights, ids = moe_route(logits, k)
    ref = moe_reference(x, w13, w2, weights, ids)
    for align in (1, 16):
        MOE_ALIGN = align
        try:
            out = moe_experts(x, w13, w2, weights, ids).float()
            err = float((out - ref).norm() / ref.norm())
        except Exception as e:  # noqa: BLE001 - a refusal means this alignment is unusable here
            report[f"moe_align_{align}_error"] = f"{type(e).__name__}: {e}"[:200]
            continue
        report[f"moe_align_{align}_rel_error"] = err
        if err < 2e-2:
            break
    else:
        raise RuntimeError(f"no grouped MoE path matches the reference here: {report}")
    report["moe_align"] = MOE_ALIGN
    try:
        w13_8, w2_8 = to_fp8(w13), to_fp8(w2)  # (the reference on the same rounded weights: fp8 tests the GEMMs)
        out8 = moe_experts(x, w13_8, w2_8, weights, ids).float()
        ref8 = moe_reference(x, w13_8.to(torch.bfloat16), w2_8.to(torch.bfloat16), weights, ids)
        report["moe_fp8_rel_error"] = float((out8 - ref8).norm() / ref8.norm())
        report["moe_fp8"] = report["moe_fp8_rel_error"] < 0.1
    except Exception as e:  # noqa: BLE001 - no fp8 grouped GEMM here: the fp8 tables are left out
        report["moe_fp8"], report["moe_fp8_error"] = False, f"{type(e).__name__}: {e}"[:200]
    return report


# ----- multi-head latent attention (DeepSeek-V2/V3) as vLLM runs it: decodes absorbed, prompts decompressed -----
MLA_ATTENTION = None  # set by mla_decode.tune(): the Triton latent-attention kernel (None: the float32 reference)


def write_latent(cache: torch.Tensor, latent: torch.Tensor, rot: torch.Tensor, start: int) -> None:
    """Store new tokens' latent [n, DL] and rotary key [n, DR] in an MLA cache [B, S, DL + DR]: at positions
    start.. of one sequence (B = 1), or at `start` of each of B sequences (one token each)."""
    dl = latent.shape[-1]
    if cache.shape[0] == 1:
        cache[0, start : start + latent.shape[0], :dl].copy_(latent)
        cache[0, start : start + latent.shape[0], dl:].copy_(rot)
    else:
        cache[:, start, :dl].copy_(latent)
        cache[:, start, dl:].copy_(rot)


def mla_decode(q_nope, q_rot, latent, rot, cache, pos: int, w_uk, w_uv) -> torch.Tensor:
    """MLA attention of B decodes, one token each, from their projections to the output heads: store each new
    token's latent and rotary key at `pos`, absorb the no-rope queries into the latent space (a batched GEMM per
    head with W_UK), attend over the latent cache (`mla_decode.mla_attention`), and lift the result back to the
    value heads (W_UV). q_nope [B, H, nope], q_rot [B, H, rope]; latent [B, DL], rot [B, rope]; cache
    [B, C, DL + rope]; w_uk [H, nope, DL], w_uv [H, DL, v]; returns [B, H * v]."""
    B, H, nope = q_nope.shape
    dl = latent.shape[-1]
    write_latent(cache, latent, rot, pos)
    q_lat = torch.bmm(q_nope.transpose(0, 1), w_uk).transpose(0, 1)  # [B, H, DL]
    q = torch.cat((q_lat, q_rot), dim=-1)
    if q.is_cuda and MLA_ATTENTION is None:  # timing the float32 reference would misprice every decode
        raise RuntimeError("MLA decode on the GPU needs its kernel: call profiler.mla_decode.tune() first")
    out = (MLA_ATTENTION or mla_attention_reference)(q, cache, dl, (nope + q_rot.shape[-1]) ** -0.5)  # [B, H, DL]
    out = out.to(q.dtype)
    return torch.bmm(out.transpose(0, 1), w_uv).transpose(0, 1).reshape(B, H * w_uv.shape[-1])


def mla_attention_reference(q: torch.Tensor, cache: torch.Tensor, latent: int, scale: float) -> torch.Tensor:
    """Absorbed MLA attention in float32 (what `mla_decode.mla_attention` computes): q [B, H, DL + rope] against
    every cache row [B, C, DL + rope], the latents [..., :DL] as values; returns [B, H, DL]."""
    scores = torch.einsum("bhd,bcd->bhc", q.float(), cache.float()) * scale
    return torch.einsum("bhc,bcd->bhd", torch.softmax(scores, -1), cache[..., :latent].float())


def mla_prefill(q_nope, q_rot, latent, rot, cache, start: int, w_kvb) -> torch.Tensor:
    """MLA attention of one prompt chunk of L tokens after `start` cached ones: store their latents and rotary
    keys, decompress the whole cache into per-head keys and values (one GEMM with W_UK and W_UV stacked as
    kv_b_proj), join each head's key with the shared rotary key, pad the values to the key width (FlashAttention
    takes one head size) and run causal attention. q_nope [L, H, nope], q_rot [L, H, rope]; latent [L, DL],
    rot [L, rope]; cache [1, S, DL + rope] with S >= start + L; w_kvb [H * (nope + v), DL]; returns [L, H * v]."""
    L, H, nope = q_nope.shape
    dl, rope = latent.shape[-1], rot.shape[-1]
    write_latent(cache, latent, rot, start)
    S = start + L
    seq = cache[0, :S]
    kv = linear(seq[:, :dl], w_kvb).view(S, H, -1)
    v_dim = kv.shape[-1] - nope
    k = torch.cat((kv[..., :nope], seq[:, None, dl:].expand(S, H, rope)), dim=-1)
    v = F.pad(kv[..., nope:], (0, nope + rope - v_dim))
    q = torch.cat((q_nope, q_rot), dim=-1)
    out = attention_prefill(q, k.transpose(0, 1).unsqueeze(0), v.transpose(0, 1).unsqueeze(0))
    return out.view(L, H, nope + rope)[..., :v_dim].reshape(L, H * v_dim)
