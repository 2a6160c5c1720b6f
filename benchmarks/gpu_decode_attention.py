"""Decode attention on the GPU: which kernel each way of calling SDPA hits, and the KV bandwidth it reaches.

Compares the validation decoder's old packed-GQA call (query heads of one K/V head packed
as a short query sequence) with the engine-like call (one query row per head, GQA grouped
by the kernel) under each split-KV backend, for a few long sequences and for a large
batch; prints a table with the kernels torch.profiler saw. Needs PyTorch and a CUDA GPU.

    python benchmarks/gpu_decode_attention.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

DT = torch.bfloat16
HQ, HKV, D = 32, 8, 128  # llama-3.1-8b


def graph_ms(fn, n: int = 50) -> float:
    """Milliseconds per call, from a CUDA graph of n calls."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(n):
            fn()
    g.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(True), torch.cuda.Event(True)
    start.record()
    g.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


def kernels_of(fn) -> str:
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        fn()
        torch.cuda.synchronize()
    return "; ".join(sorted({e.name[:60] for e in p.events() if e.device_type.name == "CUDA"}))


def shape_rows(B: int, C: int) -> list[str]:
    """One row per way of calling decode attention on B sequences of C cached tokens."""
    k = torch.randn(B, HKV, C, D, device="cuda", dtype=DT)
    v = torch.randn_like(k)
    q = torch.randn(B, HQ, D, device="cuda", dtype=DT)
    kv_bytes = 2 * B * HKV * C * D * 2

    def packed():
        return F.scaled_dot_product_attention(q.view(B, HKV, HQ // HKV, D), k, v)

    def engine_like():
        return F.scaled_dot_product_attention(q.view(B, HQ, 1, D), k, v, enable_gqa=True)

    calls = [("packed GQA, default backend", None, packed)]
    calls += [(f"q_len 1, enable_gqa, {b.name}", b, engine_like)
              for b in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION)]  # fmt: skip
    rows = []
    for label, backend, fn in calls:
        try:
            if backend is None:
                ms, names = graph_ms(fn), kernels_of(fn)
            else:
                with sdpa_kernel([backend]):
                    ms, names = graph_ms(fn), kernels_of(fn)
            rows.append(f"{B}x{C} | {label} | {ms:.4f} | {kv_bytes / ms / 1e6:.0f} | {names}")
        except RuntimeError as e:
            rows.append(f"{B}x{C} | {label} | - | - | fails: {str(e).splitlines()[0][:80]}")
    return rows


def main() -> None:
    print(f"{torch.cuda.get_device_name(0)}, PyTorch {torch.__version__}")
    print("B x C | call | ms | GB/s of KV read | kernels")
    for B, C in [(1, 8192), (1, 32768), (4, 8192), (64, 2048), (64, 512)]:
        print("\n".join(shape_rows(B, C)))
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
