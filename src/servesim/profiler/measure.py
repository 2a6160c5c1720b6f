"""`servesim profile`: measure the kernels of a decoder on this GPU and write a profile.

A profile is a folder of CSV tables plus meta.json (GPU, driver, CUDA, PyTorch, clocks,
date). Sections: GEMMs over token counts for the (N, K) shapes the catalog's models use
at TP 1/2/4/8; prefill and decode attention over lengths for their head layouts;
elementwise kernels; collectives when several GPUs are present; power under load;
(section `fp8`) fp8 GEMMs, decode attention over an fp8 KV cache and the fp8 cache's
elementwise kernels; (section `moe`) MoE layers as grouped kernels, bf16 and fp8, over
every expert split of the catalog's MoE models, and their routing; (section `mla`) the
multi-head latent attention of DeepSeek-V2/V3 layouts, decodes absorbed and prompts
decompressed; and (section `long_prefill`) causal prefill attention of prompts up to 128k tokens.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from servesim.errors import ServesimError
from servesim.perf.profile_data import MOE_COLUMNS, TABLES
from servesim.profiler import kernels as K
from servesim.profiler.timing import check_this_gpu, copies_for, time_calls, time_long
from servesim.profiler.validate import is_oom

FORMAT_VERSION = 1
# Token counts M of the GEMM tables: every 64 to 1024, 128 to 2048, 256 to 4096, so that the tile steps
# cuBLAS takes just past each power of two (up to +35% on the H200 at M = 2^k + 16) are at most one step
# of the grid away (a mixed iteration's M is a chunk plus its decodes, e.g. 2048 + 64).
M_GRID = ([1, 2, 4, 8, 16, 24, 32, 48, 64, 96] + list(range(128, 1024, 64)) + list(range(1024, 2048, 128))
          + list(range(2048, 4096, 256)) + [4096, 5120, 6144, 7168, 8192, 12288, 16384])  # fmt: skip
PREFILL_L = [16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
PREFILL_C = [0, 1024, 2048, 4096, 8192, 16384]
DECODE_B = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
DECODE_C = [128, 512, 1024, 2048, 4096, 8192, 16384, 32768]
EW_TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
DT = torch.bfloat16


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _line(row) -> str:
    return ",".join(f"{x:.6g}" if isinstance(x, float) else str(x) for x in row) + "\n"


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    with path.open("w") as f:
        f.write(",".join(header) + "\n")
        f.writelines(_line(r) for r in rows)


def _appender(path: Path, header: list[str]):
    """Start `path` with its header; return a sink that appends rows as they are measured (a run cut short keeps
    what it finished)."""
    _write_csv(path, header, [])

    def sink(rows) -> None:
        with path.open("a") as f:
            f.writelines(_line(r) for r in rows)

    return sink


# ----- what to measure: taken from the performance model, so the profile covers what it asks for -----
def catalog_layouts(tps=(1, 2, 4, 8), fp8: bool = False) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """(N, K) GEMM shapes and (Hq, Hkv, D) attention layouts of the catalog models; with `fp8`, only the GEMMs
    that fp8 weights quantise (not the LM head or MoE router)."""
    import numpy as np

    from servesim.hardware import get_gpu
    from servesim.layout import Layout
    from servesim.models import get_model, model_names
    from servesim.perf import Batch, RooflineModel

    shapes, heads = set(), set()

    class Recorder(RooflineModel):
        def _gemm(self, rows, n, k, count=1.0, wide=False):
            if not (fp8 and wide):
                shapes.add((int(n), int(k)))
            return super()._gemm(rows, n, k, count, wide)

    gpu = get_gpu("h100")
    for name in model_names():
        m = get_model(name)
        for tp in tps:
            if m.heads % tp:
                continue
            rec = Recorder(m, gpu, Layout(tp))
            rec._token_ops(np.array([64.0]))
            rec._seq_ops(np.array([8.0]))
            rec._attention(Batch.prefill(64, 64) + Batch.decode(4, 100))
            if not m.is_mla:
                heads.add((rec.hq, rec.hkv, m.head_dim))
    return sorted(shapes), sorted(heads)


# ----- sections -----
def measure_gemms(shapes, m_grid, dev, sink=None, fp8: bool = False) -> list:
    """Time every (N, K) shape at every token count M; `sink(rows)` receives each shape's rows. With `fp8`, fp8
    weights through K.linear_fp8 (the activations' cast included)."""
    linear, wb = (K.linear_fp8, 1) if fp8 else (K.linear, 2)
    rows = []
    for i, (n, k) in enumerate(shapes):
        ws = [torch.randn(n, k, device=dev, dtype=DT) * 0.02 for _ in range(copies_for(n * k * wb))]
        ws = [K.to_fp8(w) for w in ws] if fp8 else ws
        times = [_time_gemm(linear, ws, m, k, dev) for m in m_grid]
        for j in range(len(times) - 1):  # slower than a larger M by >10%: a clock dip, or cuBLAS's own step;
            if times[j] > 1.1 * times[j + 1]:  # timed again, the lower kept (interference only slows)
                times[j] = min(times[j], _time_gemm(linear, ws, m_grid[j], k, dev))
        rows += [(n, k, m, t) for m, t in zip(m_grid, times, strict=True)]
        if sink:
            sink(rows[-len(m_grid) :])
        del ws
        torch.cuda.empty_cache()
        if i % 20 == 0:
            _log(f"gemm{' fp8' * fp8} {i + 1}/{len(shapes)} (N={n}, K={k})")
    return rows


def _time_gemm(linear, ws, m: int, k: int, dev) -> float:
    x = torch.randn(m, k, device=dev, dtype=DT)
    return time_calls([lambda w=w: linear(x, w) for w in ws])


# powers of two, with points between them past 2,048 and one 128-row tile past 16,384 and 32,768 copies: in the fp8
# validation of 2026-12-06 Qwen3-30B-A3B's 2,064-token batches (16,512 copies a layer) took 121 ms against 79 ms for
# 2,048 tokens, a step the table, read between 16,384 and 32,768 copies, did not see
MOE_COPIES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 16512, 24576,
              32768, 32896, 49152, 65536]  # fmt: skip
MOE_TOKENS = [1, 4, 16, 64, 256, 1024, 4096, 16384]
WIDE_EP = (16, 32, 64)  # experts spread whole over this many GPUs (DeepSeek-V3 style expert parallelism)


def catalog_moe() -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """(hidden, width, local experts) of every way the catalog's MoE models split an MoE layer over GPUs: each
    expert split over tp GPUs, experts spread whole over ep groups of tp/ep GPUs, or spread whole over 16-64
    GPUs (wide expert parallelism); and the (experts, top_k) their routers choose among."""
    from servesim.models import get_model, model_names

    shapes, routers = set(), set()
    for name in model_names():
        m = get_model(name)
        if not m.is_moe:
            continue
        routers.add((m.num_experts, m.top_k))
        for tp in (t for t in (1, 2, 4, 8) if m.heads % t == 0):
            for ep in (e for e in (1, 2, 4, 8) if tp % e == 0 and m.num_experts % e == 0):
                shapes.add((m.hidden, m.moe_intermediate // (tp // ep), m.num_experts // ep))
        shapes |= {(m.hidden, m.moe_intermediate, m.num_experts // ep) for ep in WIDE_EP if m.num_experts % ep == 0}
    # the splits the most common deployments use first (whole models at TP1, TensorRT-LLM's DEP4/DEP8 and vLLM's
    # TP8 for the large ones), so a profile cut short still has them
    first = [(2048, 768, 128), (4096, 14336, 8), (7168, 2048, 32), (7168, 256, 256), (4096, 1536, 32),
             (4096, 1536, 16), (5120, 8192, 16), (4096, 1536, 128), (7168, 2048, 16)]  # fmt: skip
    return sorted(shapes, key=lambda x: (first.index(x) if x in first else len(first), x)), sorted(routers)


def measure_moe(dev, fp8: bool = False, quick: bool = False, sink=None) -> tuple[list, list]:
    """Section `moe`: the MoE layer as engines run it (`K.moe_experts`: gather, one grouped GEMM per projection,
    SiLU x up, weighting and combine) over `copies` routed token copies spread uniformly over a GPU's local
    experts, per layer shape; and (bf16 only) the routing (`K.moe_route`: softmax, top-k, renormalise) over
    tokens. Rows (op, hidden, width, experts, tokens, seconds): op `experts` with tokens = routed copies,
    op `route` with width = top_k. The router's GEMM is in the GEMM table. `sink(rows)` receives each shape's
    rows as they are measured."""
    shapes, routers = catalog_moe()
    if quick:
        shapes, routers = shapes[:2], routers[:1]
    rows, route = [], []
    gen = torch.Generator(device=dev).manual_seed(0)
    for i, (h, width, experts) in enumerate(shapes):
        need = experts * 3 * h * width * (1 if fp8 else 2)
        if not _fits(2 * need, f"moe H={h} I={width} E={experts}"):
            continue
        w13 = torch.randn(experts, 2 * width, h, device=dev, dtype=DT, generator=gen) * 0.02
        w2 = torch.randn(experts, h, width, device=dev, dtype=DT, generator=gen) * 0.02
        if fp8:
            w13, w2 = K.to_fp8(w13), K.to_fp8(w2)
        for a in MOE_COPIES:
            x = torch.randn(a, h, device=dev, dtype=DT, generator=gen)
            ids = torch.randint(0, experts, (a, 1), device=dev, generator=gen)  # uniform routing, one copy each
            weights = torch.ones(a, 1, device=dev, dtype=torch.float32)
            call = lambda x=x, ids=ids, w=weights, w13=w13, w2=w2: K.moe_experts(x, w13, w2, w, ids)  # noqa: E731
            rows.append(("experts", h, width, experts, a, time_calls([call])))
            del x, ids
        if sink:
            sink(rows[-len(MOE_COPIES) :])
        del w13, w2
        torch.cuda.empty_cache()
        _log(f"moe{' fp8' * fp8} {i + 1}/{len(shapes)} (H={h}, I={width}, E={experts})")
    if not fp8:
        for experts, k in routers:
            for t in MOE_TOKENS:
                logits = torch.randn(t, experts, device=dev, dtype=DT, generator=gen)
                route.append(("route", 0, k, experts, t, time_calls([lambda g=logits: K.moe_route(g, k)])))
        if sink:
            sink(route)
    return rows, route


LONG_PREFILL = [(32768, 0), (65536, 0), (131072, 0), (32768, 32768), (16384, 65536)]  # (new tokens, cached before)


def measure_long_prefill(heads, dev, quick: bool = False, sink=None) -> list:
    """Section `long_prefill`: causal prefill attention of prompts past the main grid (to 128k tokens), rows as
    attention_prefill.csv's; a shape whose K/V does not fit the free memory is skipped with a note."""
    rows = []
    for hq, hkv, d in heads[:1] if quick else heads:
        for L, C in LONG_PREFILL:
            if not _fits(2 * (C + L) * hkv * d * 2 + 3 * L * hq * d * 2, f"prefill {L}:{C} Hkv={hkv}"):
                continue
            q = torch.randn(L, hq, d, device=dev, dtype=DT)
            k, v = _kv(1, hkv, C + L, d, dev, 1)[0]
            rows.append((hq, hkv, d, L, C, time_long(lambda q=q, k=k, v=v: K.attention_prefill(q, k, v))))
            if sink:
                sink(rows[-1:])
            del q, k, v
            torch.cuda.empty_cache()
        _log(f"long prefill Hq={hq} Hkv={hkv} D={d}: done")
    return rows


def catalog_mla(tps=(1, 2, 4, 8)) -> list[tuple[int, int, int, int, int]]:
    """MLA_KEY (query heads on one GPU, latent, rope, nope and value widths) of the catalog's MLA models split
    over 1-8 GPUs by tensor parallelism (TP1: also data-parallel attention), the most served first."""
    from servesim.models import get_model, model_names

    keys = []
    for name in model_names():
        m = get_model(name)
        if m.is_mla:
            keys += [(m.heads // tp, m.kv_lora_rank, m.qk_rope_dim, m.qk_nope_dim, m.v_head_dim) for tp in tps
                     if m.heads % tp == 0]  # fmt: skip
    return sorted(set(keys), key=lambda k: (k[0] not in (16, 128), -k[0]))


def measure_mla(dev, quick: bool = False, decode_sink=None, prefill_sink=None) -> None:
    """Section `mla`: MLA attention as vLLM runs it, from the projections' outputs to the heads' outputs, per
    catalog layout (`catalog_mla`): decodes (`K.mla_decode`: cache write, absorption GEMMs, servesim's Triton
    latent attention) over batch x context, prompt chunks (`K.mla_prefill`: cache write, decompression GEMM,
    FlashAttention over the heads) over length x context. Rows MLA_KEY + (batch or q_len, ctx, seconds), each
    layout's rows sent to its sink as measured."""
    keys = catalog_mla()
    for key in keys[:2] if quick else keys:
        hq, dl, rope, nope, v = key
        w_uk = torch.randn(hq, nope, dl, device=dev, dtype=DT) * 0.02
        w_uv = torch.randn(hq, dl, v, device=dev, dtype=DT) * 0.02
        w_kvb = torch.randn(hq * (nope + v), dl, device=dev, dtype=DT) * 0.02
        rows = []
        for B, C, copies in _decode_shapes(1, dl + rope, 1, "mla decode"):  # one bf16 row a token: 2 x 1 byte
            args = [torch.randn(*shape, device=dev, dtype=DT) for shape in ((B, hq, nope), (B, hq, rope), (B, dl),
                                                                            (B, rope))]  # fmt: skip
            caches = [torch.randn(B, C, dl + rope, device=dev, dtype=DT) for _ in range(copies)]
            rows.append(key + (B, C, time_calls([lambda c=c, uk=w_uk, uv=w_uv: K.mla_decode(*args, c, C - 1, uk, uv)
                                                 for c in caches])))  # fmt: skip
            del caches
        if decode_sink:
            decode_sink(rows)
        rows = []
        for L in PREFILL_L:
            for C in PREFILL_C:
                nbytes = (C + L) * (dl + rope) * 2
                work = (C + L) * hq * (3 * (nope + rope) + nope + v) * 2  # decompressed K, V, padded V, output
                copies = copies_for(nbytes, cap=8)
                if L + C > 32768 or not _fits(copies * nbytes + 2 * work, f"mla prefill {L}:{C} Hq={hq}"):
                    continue
                args = [torch.randn(*shape, device=dev, dtype=DT) for shape in ((L, hq, nope), (L, hq, rope), (L, dl),
                                                                                (L, rope))]  # fmt: skip
                caches = [torch.randn(1, C + L, dl + rope, device=dev, dtype=DT) for _ in range(copies)]
                calls = [lambda c=c, w=w_kvb: K.mla_prefill(*args, c, C, w) for c in caches]
                rows.append(key + (L, C, time_calls(calls)))
                del caches
        if prefill_sink:
            prefill_sink(rows)
        del w_uk, w_uv, w_kvb
        torch.cuda.empty_cache()
        _log(f"mla Hq={hq} latent={dl}+{rope}: done")


def _kv(b, hkv, c, d, dev, copies):
    return [(torch.randn(b, hkv, c, d, device=dev, dtype=DT), torch.randn(b, hkv, c, d, device=dev, dtype=DT))
            for _ in range(copies)]  # fmt: skip


def measure_attention(heads, dev, prefill: list, decode: list) -> None:
    """Append (hq, hkv, d, len, ctx, seconds) rows; shapes whose KV cache does not fit the free memory are
    skipped with a note, so the grid follows the GPU in hand."""
    for hq, hkv, d in heads:
        for L in PREFILL_L:
            for C in PREFILL_C:
                copies = copies_for(2 * (C + L) * hkv * d * 2, cap=8)
                if L + C > 32768 or not _fits(copies * 2 * (C + L) * hkv * d * 2, f"prefill {L}:{C} Hkv={hkv}"):
                    continue
                q = torch.randn(L, hq, d, device=dev, dtype=DT)
                kvs = _kv(1, hkv, C + L, d, dev, copies)
                prefill.append((hq, hkv, d, L, C, time_calls([lambda k=k, v=v: K.attention_prefill(q, k, v)
                                                               for k, v in kvs])))  # fmt: skip
                del kvs
        for B, C, copies in _decode_shapes(hkv, d, 2, "decode"):
            q = torch.randn(B, hq, d, device=dev, dtype=DT)
            kvs = _kv(B, hkv, C, d, dev, copies)
            decode.append((hq, hkv, d, B, C, time_calls([lambda k=k, v=v: K.attention_decode(q, k, v)
                                                         for k, v in kvs])))  # fmt: skip
            del kvs
        torch.cuda.empty_cache()
        _log(f"attention Hq={hq} Hkv={hkv} D={d}: done")


def _decode_shapes(hkv: int, d: int, elem_bytes: int, what: str):
    """(batch, context, operand copies) of the decode grid whose KV caches fit the free memory."""
    for B in DECODE_B:
        for C in DECODE_C:
            nbytes = 2 * B * C * hkv * d * elem_bytes
            copies = copies_for(nbytes, cap=8)
            if B * C <= 2**21 and _fits(copies * nbytes, f"{what} {B}x{C} Hkv={hkv}"):
                yield B, C, copies


def _fits(nbytes: float, what: str) -> bool:
    free = torch.cuda.mem_get_info()[0]
    if nbytes <= 0.8 * free:
        return True
    _log(f"skipped {what}: needs {nbytes / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free")
    return False


def measure_fp8(out: Path, heads, m_grid, dev, quick: bool, gemms: bool = True) -> dict:
    """Section `fp8`: gemm_fp8.csv (K.linear_fp8: the activation cast and a per-tensor-scaled fp8 GEMM),
    attention_decode_fp8.csv (the split-KV Triton kernel over an fp8 cache), elementwise_fp8.csv (writing to
    and widening from an fp8 cache) and fp8_kernel_check.csv (the Triton kernel on a bf16 cache against
    PyTorch's decode backend on the same shapes); `gemms=False` (section fp8_attention) leaves out the GEMMs.
    Returns what meta.json records about it."""
    from servesim.perf.profile_data import EW_BYTES_PER_ELEM as PER
    from servesim.profiler import fp8_decode

    if gemms:
        shapes = catalog_layouts(fp8=True)[0]
        _write_csv(out / "gemm_fp8.csv", ["n", "k", "m", "seconds"],
                   measure_gemms(shapes[:6] if quick else shapes, m_grid, dev, fp8=True))  # fmt: skip
    decode, check = [], []
    for hq, hkv, d in heads:
        for B, C, copies in _decode_shapes(hkv, d, 1, "fp8 decode"):
            q = torch.randn(B, hq, d, device=dev, dtype=DT)
            kvs = [(K.to_fp8(k), K.to_fp8(v)) for k, v in _kv(B, hkv, C, d, dev, copies)]
            t = time_calls([lambda k=k, v=v: K.attention_decode_fp8(q, k, v) for k, v in kvs])
            decode.append((hq, hkv, d, B, C, t))
            del kvs
            if (hq, hkv) == (32, 8) and B in (1, 4, 32, 128) and C in (512, 2048, 8192, 32768):
                sdpa, tri = _bf16_decode_check(q, B, hkv, C, d, dev, copies)
                check.append((hq, hkv, d, B, C, sdpa, tri, t))
                _log(f"check {B}x{C}: sdpa {sdpa * 1e6:.1f} us, triton bf16 {tri * 1e6:.1f} us, "
                     f"triton fp8 {t * 1e6:.1f} us")  # fmt: skip
        torch.cuda.empty_cache()
        _log(f"fp8 decode attention Hq={hq} Hkv={hkv} D={d}: done")
    _write_csv(out / "attention_decode_fp8.csv", ["hq", "hkv", "d", "batch", "ctx", "seconds"], decode)
    _write_csv(out / "fp8_kernel_check.csv", ["hq", "hkv", "d", "batch", "ctx", "sdpa_bf16_s", "triton_bf16_s",
                                              "triton_fp8_s"], check)  # fmt: skip
    ew, widths = [], sorted(catalog_widths()["kv"])
    for T in EW_TOKENS:
        for width in widths:
            h = width // 128
            new = torch.randn(T, h, 128, device=dev, dtype=DT)
            cache = torch.zeros(1, h, T + 16, 128, device=dev, dtype=K.FP8)
            batch_cache = torch.zeros(T, h, 64, 128, device=dev, dtype=K.FP8)
            full = [torch.zeros(1, h, T, 128, device=dev, dtype=K.FP8) for _ in range(copies_for(T * width, 8))]
            cases = [("write_kv_fp8", [lambda: K.write_kv(cache, new, 8)]),
                     ("write_kv_decode_fp8", [lambda: K.write_kv(batch_cache, new, 40)]),
                     ("dequant_kv_fp8", [lambda c=c: K.dequant_kv(c) for c in full])]  # fmt: skip
            for op, calls in cases:
                ew.append((op, T, width, PER[op] * T * width, time_calls(calls)))
    _write_csv(out / "elementwise_fp8.csv", ["op", "tokens", "width", "bytes", "seconds"], ew)
    return {"gemm": "torch._scaled_mm, per-tensor scales, after a cast of the bf16 activations",
            "decode_attention": f"servesim split-KV Triton kernel (profiler/fp8_decode.py), triton "
                                f"{fp8_decode.triton.__version__}, block {fp8_decode.BLOCK_N}, "
                                f"{fp8_decode.NUM_WARPS} warps, {fp8_decode.NUM_STAGES} stages, "
                                f"{fp8_decode.FP8_COMPUTE} compute",
            "prefill_attention": "cache widened to bf16 (dequant_kv_fp8), then the bf16 prefill attention"}  # fmt: skip


def _bf16_decode_check(q, B, hkv, C, d, dev, copies) -> tuple[float, float]:
    """Seconds of PyTorch's split-KV decode and of servesim's fp8 decode kernel, both on one bf16 cache."""
    from servesim.profiler import fp8_decode

    kvs = _kv(B, hkv, C, d, dev, copies)
    sdpa = time_calls([lambda k=k, v=v: K.attention_decode(q, k, v) for k, v in kvs])
    return sdpa, time_calls([lambda k=k, v=v: fp8_decode.decode_attention(q, k, v) for k, v in kvs])


def catalog_widths(tps=(1, 2, 4, 8)) -> dict[str, set[int]]:
    """Per elementwise kernel, the widths the catalog's dense and MoE models give it at each TP."""
    from servesim.hardware import get_gpu
    from servesim.layout import Layout
    from servesim.models import get_model, model_names
    from servesim.perf import RooflineModel

    widths: dict[str, set[int]] = {op: set() for op in ("hidden", "act", "rope", "kv", "attn")}
    for name in model_names():
        m = get_model(name)
        for tp in tps:
            if m.heads % tp or m.is_mla:
                continue
            r = RooflineModel(m, get_gpu("h100"), Layout(tp))
            widths["hidden"].add(m.hidden)
            widths["act"] |= {width for _, width in r.silu_widths}
            widths["rope"].add((r.hq + r.hkv) * m.head_dim)
            widths["kv"].add(r.hkv * m.head_dim)
            widths["attn"].add(r.hq * m.head_dim)
    return widths


def elementwise_cases(dev, widths: dict[str, set[int]]):
    """(op, tokens, width, bytes moved, calls) for each elementwise kernel and size."""
    from servesim.perf.profile_data import EW_BYTES_PER_ELEM as PER

    table = torch.randn(32768, max(widths["hidden"]), device=dev, dtype=DT)
    for T in EW_TOKENS:
        ids = torch.randint(0, 32768, (T,), device=dev)
        for h in sorted(widths["hidden"]):
            x = [torch.randn(T, h, device=dev, dtype=DT) for _ in range(copies_for(T * h * 2, 8))]
            w = torch.ones(h, device=dev, dtype=DT)
            yield "rms_norm", T, h, PER["rms_norm"] * T * h, [lambda a=a: K.rms_norm(a, w) for a in x]
            yield "add", T, h, PER["add"] * T * h, [lambda a=a: K.add(a, a) for a in x]
            rows = table[:, :h]
            yield "embedding", T, h, PER["embedding"] * T * h, [lambda: rows[ids]]
        for inter in sorted(widths["act"]):
            x = [torch.randn(T, 2 * inter, device=dev, dtype=DT) for _ in range(copies_for(T * inter * 4, 8))]
            yield "silu_mul", T, inter, PER["silu_mul"] * T * inter, [lambda a=a: K.silu_mul(a) for a in x]
        for width in sorted(widths["rope"]):
            hq, hkv = width // 128 - 1, 1  # rotary cost follows the total head count
            # q and k are views into the fused QKV projection's output, as in a decoder layer
            qkv = torch.randn(T, (hq + 2 * hkv) * 128, device=dev, dtype=DT)
            q = qkv[:, : hq * 128].view(T, hq, 128)
            k = qkv[:, hq * 128 : (hq + hkv) * 128].view(T, hkv, 128)
            cos = torch.randn(T, 1, 128, device=dev, dtype=DT)
            yield "rope", T, width, PER["rope"] * T * width, [lambda: K.rope(q, k, cos, cos)]
        for width in sorted(widths["kv"]):
            new = torch.randn(T, width // 128, 128, device=dev, dtype=DT)
            cache = torch.empty(1, width // 128, T + 16, 128, device=dev, dtype=DT)
            yield "write_kv", T, width, PER["write_kv"] * T * width, [lambda: K.write_kv(cache, new, 8)]
            batch_cache = torch.empty(T, width // 128, 64, 128, device=dev, dtype=DT)
            yield (
                "write_kv_decode",
                T,
                width,
                PER["write_kv_decode"] * T * width,
                [lambda: K.write_kv(batch_cache, new, 40)],
            )
        for width in sorted(widths["attn"]):
            a = torch.randn(T, width, device=dev, dtype=DT)
            yield "concat", T, width, PER["concat"] * T * width, [lambda: torch.cat((a, a))]


def measure_elementwise(dev) -> list:
    widths = catalog_widths()
    rows = [(op, T, w, nbytes, time_calls(calls)) for op, T, w, nbytes, calls in elementwise_cases(dev, widths)]
    torch.cuda.empty_cache()
    return rows


def measure_sustained(dev, seconds: float = 3.0) -> list:
    """Slow-down of compute- and memory-bound kernels under sustained load versus a short burst.

    Profile tables time short bursts; a serving GPU runs for minutes, and under sustained
    compute-bound load the power limit lowers the clocks. Each factor is the time of a
    kernel after `seconds` of continuous load over its time in a burst.
    """
    import torch.cuda as tc

    a = torch.randn(8192, 4096, device=dev, dtype=DT)
    w = torch.randn(14336, 4096, device=dev, dtype=DT)
    src = torch.randn(2**29, device=dev, dtype=DT)
    dst = torch.empty_like(src)
    cases = {"compute": lambda: K.linear(a, w), "memory": lambda: dst.copy_(src)}
    rows = []
    for name, fn in cases.items():
        burst = time_calls([fn])
        graph = tc.CUDAGraph()
        side = tc.Stream()
        side.wait_stream(tc.current_stream())
        with tc.stream(side):
            fn()
        tc.current_stream().wait_stream(side)
        with tc.graph(graph):
            for _ in range(10):
                fn()
        end = time.time() + seconds
        while time.time() < end:
            graph.replay()
            tc.synchronize()
        start_ev, end_ev = tc.Event(enable_timing=True), tc.Event(enable_timing=True)
        start_ev.record()
        for _ in range(10):
            graph.replay()
        end_ev.record()
        end_ev.synchronize()
        sustained = start_ev.elapsed_time(end_ev) / 1e3 / 100
        rows.append((f"sustained_{name}", sustained / burst))
        _log(f"sustained {name}: burst {burst * 1e6:.1f} us, sustained {sustained * 1e6:.1f} us")
        del graph
    return rows


def measure_kernel_gap(dev, length: int = 300) -> list:
    """Idle time between dependent, different kernels in a CUDA graph, per kernel.

    Profile tables replay one kernel many times, where launches overlap; a decoder layer
    is a chain of different kernels, each waiting for the last. The gap is the chain's
    time minus the sum of its kernels' times in isolation, over the number of kernels.
    """
    x = torch.randn(8, 4096, device=dev, dtype=DT)
    w = torch.ones(4096, device=dev, dtype=DT)
    steps = [lambda t: K.rms_norm(t, w), lambda t: K.add(t, x), lambda t: t * 0.5]
    alone = sum(time_calls([lambda f=f: f(x)]) for f in steps) / len(steps)

    def chain():
        t = x
        for i in range(length):
            t = steps[i % len(steps)](t)
        return t

    chained = time_calls([chain], target_s=5e-3) / length
    _log(f"kernel gap: {alone * 1e6:.2f} us alone, {chained * 1e6:.2f} us in a dependent chain")
    return [("kernel_gap_s", max(chained - alone, 0.0))]


def _nvml_sampler():
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        return lambda: (
            pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
            pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
            pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
        )
    except Exception:  # noqa: BLE001 - no NVML: no power section
        return None


def measure_power(dev, seconds: float = 4.0) -> list:
    """Mean board power at idle, under a compute-bound GEMM loop and a memory-bound copy loop."""
    import threading

    sample = _nvml_sampler()
    if sample is None:
        _log("NVML unavailable: no power measurements")
        return []
    a = torch.randn(8192, 8192, device=dev, dtype=DT)
    src = torch.randn(2**30 // 2, device=dev, dtype=DT)
    dst = torch.empty_like(src)
    work = {"idle": None, "compute": lambda: a @ a, "memory": lambda: dst.copy_(src)}
    rows = []
    for state, fn in work.items():
        readings, stop = [], threading.Event()

        def poll(readings=readings, stop=stop):
            while not stop.is_set():
                readings.append(sample())
                time.sleep(0.02)

        end = time.time() + seconds
        if fn is not None:  # load first, then sample the steady state
            while time.time() < end - seconds / 2:
                fn()
            torch.cuda.synchronize()
        thread = threading.Thread(target=poll)
        thread.start()
        while time.time() < end + (0 if fn is None else seconds / 2):
            if fn is not None:
                for _ in range(20):
                    fn()
                torch.cuda.synchronize()
            else:
                time.sleep(0.05)
        stop.set()
        thread.join()
        watts = [r[0] for r in readings]
        clocks = [r[1] for r in readings]
        temps = [r[2] for r in readings]
        rows.append((state, sum(watts) / len(watts), max(watts), sum(clocks) / len(clocks), max(temps), len(watts)))
        _log(f"power {state}: {rows[-1][1]:.0f} W mean, SM {rows[-1][3]:.0f} MHz")
    return rows


def _allreduce_worker(rank, world, out_path):
    """All-reduce of bf16 tensors of 1 KiB .. 1 GiB on `world` GPUs, as tensor parallelism runs it, and all-to-all
    of 1 KiB .. 256 MiB per GPU (each sending an equal share to every GPU, as expert parallelism's dispatch and
    combine do): repeated calls captured in a CUDA graph on every rank, replays timed with CUDA events (median
    of 5). Rows (op, world, bytes per GPU, seconds)."""
    import os

    import torch.distributed as dist

    from servesim.profiler.timing import capture, replay_seconds

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world, device_id=torch.device("cuda", rank))
    rows = []
    for exp in range(10, 31):  # 1 KiB .. 1 GiB, every power of two
        x = torch.ones(2**exp // 2, device=f"cuda:{rank}", dtype=DT)
        reps = 20 if exp <= 24 else 4

        def body(x=x, reps=reps):
            for _ in range(reps):
                dist.all_reduce(x)

        dist.barrier()
        graph = capture(body)
        dist.barrier()
        rows.append(("all_reduce", world, 2**exp, replay_seconds(graph) / reps))
        del graph
    for exp in range(10, 29):
        x = torch.ones(2**exp // 2, device=f"cuda:{rank}", dtype=DT)
        y = torch.empty_like(x)
        reps = 20 if exp <= 24 else 4

        def body(x=x, y=y, reps=reps):
            for _ in range(reps):
                dist.all_to_all_single(y, x)

        dist.barrier()
        graph = capture(body)
        dist.barrier()
        rows.append(("all_to_all", world, 2**exp, replay_seconds(graph) / reps))
        del graph
    if rank == 0:
        _write_csv(Path(out_path), ["op", "world", "bytes", "seconds"], rows)
    dist.destroy_process_group()


def measure_collectives(out: Path) -> bool:
    """collectives.csv: all-reduce and all-to-all over 2 GPUs and over all of them (4 and 8 too where there are
    that many)."""
    n = torch.cuda.device_count()
    if n < 2:
        return False
    import torch.multiprocessing as mp

    parts = []
    for world in sorted({w for w in (2, 4, 8) if w <= n} | {n}):
        part = out / f".collectives_{world}.csv"
        mp.spawn(_allreduce_worker, args=(world, str(part)), nprocs=world)
        parts.append(part.read_text().splitlines())
        part.unlink()
    (out / "collectives.csv").write_text("\n".join(parts[0][:1] + [r for p in parts for r in p[1:]]) + "\n")
    return True


def _smi(query: str) -> str:
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]  # fmt: skip
    except Exception:  # noqa: BLE001
        return ""


def _meta(gpu, probe, quick, durations, started, complete) -> dict:
    props = torch.cuda.get_device_properties(0)
    meta = {
        "format_version": FORMAT_VERSION,
        "gpu": gpu,
        "device_name": props.name,
        "memory_bytes": props.total_memory,
        "multiprocessors": props.multi_processor_count,
        "gpu_count": torch.cuda.device_count(),
        "driver": _smi("driver_version"),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "clocks_max_mhz": _smi("clocks.max.sm,clocks.max.mem"),
        "power_limit_w": _smi("power.limit"),
        "date": datetime.date.today().isoformat(),
        "sdpa": probe,
        "dtype": "bf16" if "fp8" not in durations else "fp8",
        "quick": quick,
        "seconds": {k: round(v, 1) for k, v in durations.items()},
        "total_seconds": round(time.time() - started, 1),
        "complete": complete,
        "method": "CUDA-graph replay of rotated operand copies, timed with CUDA events, median of 5",
    }
    return meta


def run_profile(
    out: Path, gpu: str, quick: bool = False, sections: str = "gemm,attention,elementwise,calibration,power"
) -> Path:
    """Measure and write a profile folder; returns it. Running out of GPU memory ends in one clear line, with
    the tables measured before it written and meta.json marked incomplete."""
    try:
        return _run_profile(out, gpu, quick, sections)
    except Exception as e:
        if not is_oom(e):
            raise
        free = torch.cuda.mem_get_info()[0] / 2**30
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        detail = ". ".join(str(e).splitlines()[0].split(". ")[:2])  # torch's "CUDA out of memory. Tried to allocate X"
        raise ServesimError(f"out of GPU memory while profiling ({detail}); {free:.1f} of "
                            f"{total:.1f} GiB free now; the tables measured before it are in {out} (meta.json "
                            "says complete: false)") from None  # fmt: skip


def _run_profile(out: Path, gpu: str, quick: bool, sections: str) -> Path:
    if not torch.cuda.is_available():
        raise RuntimeError("servesim profile needs a CUDA GPU")
    check_this_gpu(gpu)
    dev = "cuda"
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    probe = K.probe(dev)
    _log(f"SDPA probe: {probe}")
    shapes, heads = catalog_layouts()
    m_grid = M_GRID[::3] if quick else M_GRID
    if quick:
        shapes, heads = shapes[:6], heads[:2]
    todo = set(sections.split(","))
    durations = {}
    (out / "meta.json").write_text(json.dumps(_meta(gpu, probe, quick, durations, started, False), indent=2))
    if "gemm" in todo:
        t = time.time()
        measure_gemms(shapes, m_grid, dev, _appender(out / "gemm.csv", TABLES["gemm.csv"]))
        durations["gemm"] = time.time() - t
    if "attention" in todo:
        t = time.time()
        prefill, decode = [], []
        try:
            measure_attention(heads, dev, prefill, decode)
        finally:  # what was measured is written even if a shape ran the GPU out of memory
            _write_csv(out / "attention_prefill.csv", ["hq", "hkv", "d", "q_len", "ctx", "seconds"], prefill)
            _write_csv(out / "attention_decode.csv", ["hq", "hkv", "d", "batch", "ctx", "seconds"], decode)
        durations["attention"] = time.time() - t
    if "elementwise" in todo:
        t = time.time()
        _write_csv(out / "elementwise.csv", ["op", "tokens", "width", "bytes", "seconds"], measure_elementwise(dev))
        durations["elementwise"] = time.time() - t
    if "calibration" in todo:
        t = time.time()
        _write_csv(out / "calibration.csv", ["name", "value"], measure_sustained(dev) + measure_kernel_gap(dev))
        durations["calibration"] = time.time() - t
    if "power" in todo:
        t = time.time()
        rows = measure_power(dev)
        if rows:
            _write_csv(out / "power.csv", ["state", "watts_mean", "watts_max", "sm_clock_mhz", "temp_c", "samples"],
                       rows)  # fmt: skip
        durations["power"] = time.time() - t
    if "fp8" in todo or "fp8_attention" in todo:
        t = time.time()
        probe["fp8"] = measure_fp8(out, heads, m_grid, dev, quick, gemms="fp8" in todo)
        durations["fp8"] = time.time() - t
    if "moe" in todo:
        t = time.time()
        probe.update(K.probe_moe(dev))
        _log(f"MoE probe: {probe}")
        for name, fp8 in (("moe.csv", False), ("moe_fp8.csv", True)):
            if fp8 and not probe.get("moe_fp8"):
                continue
            measure_moe(dev, fp8=fp8, quick=quick, sink=_appender(out / name, MOE_COLUMNS))
        durations["moe"] = time.time() - t
    if "mla" in todo:
        t = time.time()
        from servesim.perf.profile_data import OPTIONAL
        from servesim.profiler import mla_decode

        probe.update(mla_decode.tune(dev))
        _log(f"MLA decode kernel: {probe}")
        tables = ("attention_decode_mla.csv", "attention_prefill_mla.csv")
        measure_mla(dev, quick, *(_appender(out / name, OPTIONAL[name]) for name in tables))
        durations["mla"] = time.time() - t
    if "long_prefill" in todo:
        t = time.time()
        sink = _appender(out / "attention_prefill_long.csv", TABLES["attention_prefill.csv"])
        measure_long_prefill(heads, dev, quick, sink=sink)
        durations["long_prefill"] = time.time() - t
    if "collectives" in todo:
        t = time.time()
        measure_collectives(out)
        durations["collectives"] = time.time() - t
    meta = _meta(gpu, probe, quick, durations, started, complete=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    _log(f"profile written to {out} in {meta['total_seconds']} s")
    return out
