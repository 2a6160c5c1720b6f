"""FP8 on the GPU: check the fp8 kernels, tune the fp8 decode-attention kernel, profile and validate fp8.

1. checks servesim's split-KV Triton decode kernel (bf16 and fp8 caches) and the fp8 linear
   layer against reference results;
2. times the decode kernel over a grid of block sizes, warps, pipeline stages and compute
   types on llama-3.1-8b shapes, and keeps the fastest (geometric mean);
3. runs `servesim profile --sections fp8` (`fp8_attention` with --attention-only) into OUT/prof;
4. validates fp8 forward passes of llama-3.1-8b and qwen2.5-14b with a bf16 and an fp8 KV cache.

Needs PyTorch, Triton and a CUDA GPU. The profiles shipped on 2026-11-23 came from two passes
on each GPU: the whole script, then `--attention-only` after the fp16 compute type was added.

    python benchmarks/gpu_fp8.py h100-sxm out/ [--attention-only]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import torch

from servesim.profiler import fp8_decode
from servesim.profiler import kernels as K
from servesim.profiler.measure import run_profile
from servesim.profiler.timing import time_calls
from servesim.profiler.validate import validate_model

DT = torch.bfloat16
TUNE_SHAPES = [(1, 8192), (1, 32768), (4, 8192), (32, 2048), (128, 2048), (256, 1024), (16, 512), (128, 8192),
               (32, 32768)]  # fmt: skip


def reference_decode(q, k, v):
    B, Hq, D = q.shape
    g = Hq // k.shape[1]
    kf, vf = k.float().repeat_interleave(g, 1), v.float().repeat_interleave(g, 1)
    s = torch.einsum("bhd,bhcd->bhc", q.float(), kf) * D**-0.5
    return torch.einsum("bhc,bhcd->bhd", s.softmax(-1), vf).reshape(B, Hq * D)


def check(dev: str) -> int:
    """Number of wrong results: the decode kernel on both caches, and the fp8 linear layer."""
    bad = 0
    for B, Hq, Hkv, C in [(1, 32, 8, 8192), (3, 28, 4, 1000), (16, 5, 1, 130), (2, 8, 8, 33000), (64, 32, 8, 517),
                          (1, 40, 8, 64), (7, 64, 8, 2049)]:  # fmt: skip
        q = torch.randn(B, Hq, 128, device=dev, dtype=DT)
        k, v = (torch.randn(B, Hkv, C, 128, device=dev, dtype=DT) for _ in "kv")
        for name, kk, vv in (("bf16", k, v), ("fp8", K.to_fp8(k), K.to_fp8(v))):
            err = (fp8_decode.decode_attention(q, kk, vv).float() - reference_decode(q, kk, vv)).abs().max().item()
            bad += err >= 2e-2
            print(f"check {name} B={B} Hq={Hq} Hkv={Hkv} C={C}: max abs err {err:.2e}")
    for M in (1, 17, 300, 4096):
        x = torch.randn(M, 4096, device=dev, dtype=DT)
        w = K.to_fp8(torch.randn(6144, 4096, device=dev, dtype=DT) * 0.02)
        want = K.linear(x.to(K.FP8).to(DT), w.to(DT)).float()
        rel = ((K.linear_fp8(x, w).float() - want).norm() / want.norm()).item()
        bad += rel > 1e-2
        print(f"check linear_fp8 M={M}: rel err {rel:.2e}")
    return bad


def tune(dev: str, wide: bool) -> tuple:
    """Time the fp8 decode kernel at each setting; set and return the fastest."""
    grid = (itertools.product(("fp16", "bf16"), (64, 128), (4, 8), (2, 3, 4)) if wide else
            itertools.product(("bf16",), (32, 64, 128), (4, 8), (3,)))  # fmt: skip
    results = {}
    for setting in grid:
        fp8_decode.FP8_COMPUTE, fp8_decode.BLOCK_N, fp8_decode.NUM_WARPS, fp8_decode.NUM_STAGES = setting
        times = []
        for B, C in TUNE_SHAPES:
            q = torch.randn(B, 32, 128, device=dev, dtype=DT)
            kv = [tuple(K.to_fp8(torch.randn(B, 8, C, 128, device=dev, dtype=DT)) for _ in "kv") for _ in range(4)]
            times.append(time_calls([lambda k=k, q=q: fp8_decode.decode_attention(q, *k) for k in kv]))
        results[setting] = times
        print(f"tune {setting}: " + " ".join(f"{t * 1e6:.1f}" for t in times), flush=True)
    best = min(results, key=lambda s: statistics.geometric_mean(results[s]))
    fp8_decode.FP8_COMPUTE, fp8_decode.BLOCK_N, fp8_decode.NUM_WARPS, fp8_decode.NUM_STAGES = best
    print(f"chosen (compute, block, warps, stages) = {best}", flush=True)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gpu")
    ap.add_argument("out", type=Path)
    ap.add_argument("--attention-only", action="store_true", help="the decode kernel and fp8-KV parts only")
    args = ap.parse_args()
    dev = "cuda"
    print(torch.cuda.get_device_name(0), torch.__version__, fp8_decode.triton.__version__, flush=True)
    K.probe(dev)
    if check(dev):
        raise SystemExit("fp8 kernels give wrong results: stopping")
    tune(dev, wide=args.attention_only)
    t = time.time()
    run_profile(args.out / "prof", args.gpu, sections="fp8_attention" if args.attention_only else "fp8")
    print(f"profile: {time.time() - t:.0f} s", flush=True)
    for model in ("llama-3.1-8b", "qwen2.5-14b"):
        for kv in ("fp8",) if args.attention_only else ("bf16", "fp8"):
            t = time.time()
            path = args.out / f"measured_{args.gpu}_{model}_fp8_kv{kv}.csv"
            validate_model(model, args.gpu, path, None, True, None, dtype="fp8", kv_dtype=kv)
            print(f"validate {model} fp8 weights, {kv} KV: {time.time() - t:.0f} s", flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
