"""servesim against published serving benchmarks: offline output throughput, published vs simulated.

Source: NVIDIA TensorRT-LLM performance overview ("Throughput Measurements", TensorRT-LLM 1.0 docs,
docs/source/performance/perf-overview.md): `trtllm-bench throughput` with the PyTorch backend, every request
sent at once, fixed input/output lengths (ISL/OSL), nvidia's ModelOpt fp8 checkpoints, on DGX H100 (80 GB)
and DGX H200 (141 GB); metric "Total Output Throughput (tokens/sec)" of the whole deployment. Cases: Llama 3.1
8B at TP1 on both GPUs; Llama 3.3 70B (the architecture of the catalog's llama-3.1-70b) at TP1 on the H200
and TP2 on the H100. Request counts per ISL/OSL are the page's.

MoE groups (`--moe`): the same page's later edition (docs/source/developer-guide/perf-overview.md, commit
03e27c7d of NVIDIA/TensorRT-LLM): "Output Throughput per GPU" of `trtllm-bench throughput` (PyTorch backend),
fp8 checkpoints, attention data-parallel with expert parallelism over all GPUs ("DEP8": servesim's --tp 1
--dp 8 --ep 8), CUTLASS MoE kernels on Hopper, fp8 KV cache for DeepSeek-R1 (the catalog's deepseek-v3 has its
architecture): DeepSeek-R1-0528 on 8 H200, Qwen3-235B-A22B on 4 H200 and on 8 H100. Per-GPU figures are
multiplied by the GPUs for the deployment's total.

servesim runs the same workloads offline (`--offline`) on its measured profiles with fp8 weights; TensorRT-LLM's
default admission policy, GUARANTEED_NO_EVICT (`--scheduler no_evict`); batch limits large enough that the KV
cache, not a cap, limits concurrency (max_num_seqs 2048, max_num_batched_tokens 8192: trtllm-bench sizes its
own per case and the page does not say to what); and 0.95 of GPU memory (the page's
kv_cache_free_gpu_mem_fraction). It reports its steady-state output throughput (while requests still wait: the
figure a run of thousands of requests gives). Whether the published runs cached KV in fp8 is not stated: the
KV cache is fp8 in the first column, bf16 in the second. No constant is fitted to these numbers: servesim models
vLLM-like kernels, and TensorRT-LLM's are expected to be faster.

    python benchmarks/e2e_published.py [--scale 0.2] [--only llama-3.1-8b] [--case 20000/2000] [--scheduler vllm]
"""

from __future__ import annotations

import argparse
import statistics
import time

from servesim import Scenario, WorkloadConfig, simulate
from servesim.config import EngineConfig, LengthDist

SOURCE = "TensorRT-LLM 1.0 perf-overview, Throughput Measurements (FP8 models)"
# (ISL, OSL): requests in the published runs
REQUESTS = {
    (128, 128): 30000, (128, 2048): 3000, (128, 4096): 1500, (500, 2000): 3000, (1000, 1000): 3000,
    (1000, 2000): 1500, (2048, 128): 3000, (2048, 2048): 1500, (5000, 500): 1500, (20000, 2000): 1000,
}  # fmt: skip
MOE_SOURCE = "TensorRT-LLM perf-overview (developer guide, commit 03e27c7d), FP8 DEP, per GPU x GPUs"
MOE_REQUESTS = {(1000, 1000): 3000, (1024, 1024): 3000, (1024, 8192): 1500, (8192, 1024): 1500,
                (32768, 1024): 1000, (1024, 32768): 1000}  # fmt: skip
# model, gpu, DEP size -> published output tokens/s per GPU per (ISL, OSL)
PUBLISHED_MOE = {
    ("deepseek-v3", "h200", 8): {(1000, 1000): 1627, (1024, 1024): 1620, (1024, 8192): 1218, (1024, 32768): 438},
    ("qwen3-235b-a22b", "h200", 4): {(1000, 1000): 3288, (1024, 1024): 3268, (1024, 8192): 1417, (8192, 1024): 627,
                                     (32768, 1024): 134},
    ("qwen3-235b-a22b", "h100-sxm", 8): {(1000, 1000): 1932, (1024, 1024): 1935, (1024, 8192): 873},
}  # fmt: skip
# model, gpu, tp -> published output tokens/s per (ISL, OSL), in the order of REQUESTS
PUBLISHED = {
    ("llama-3.1-8b", "h200", 1): [27911, 26221, 18027, 20770, 17744, 16828, 3538, 12194, 3902, 1804],
    ("llama-3.1-8b", "h100-sxm", 1): [28312, 22714, 14325, 17660, 15220, 13899, 3450, 9305, 3459, 1351],
    ("llama-3.1-70b", "h200", 1): [3803, 4336, 2872, 3666, 2909, 2994, 442, 2003, 566, 283],
    ("llama-3.1-70b", "h100-sxm", 2): [6378, 6651, 4199, 5222, 4205, 4146, 762, 3082, 898, 437],
}


def simulated(model: str, gpu: str, tp: int, isl: int, osl: int, requests: int, kv: str,
              scheduler: str = "no_evict", dep: int = 1) -> tuple[float, dict]:  # fmt: skip
    """servesim's steady-state output tokens/s of the offline run, and its summary; `dep` > 1: attention data
    parallel over that many GPUs, experts spread over them (TP1 DPn EPn)."""
    fixed = lambda n: LengthDist(dist="fixed", mean=n, max=n)  # noqa: E731
    engine = EngineConfig(tp=tp, dp=dep, ep=dep, dtype="fp8", kv_cache_dtype=kv, scheduler=scheduler,
                          max_num_seqs=2048, max_num_batched_tokens=8192, gpu_memory_utilization=0.95,
                          max_model_len=isl + osl)  # fmt: skip
    wl = WorkloadConfig(num_requests=requests, rate=float("inf"), input=fixed(isl), output=fixed(osl))
    s = simulate(Scenario(model=model, gpu=gpu, engine=engine, workload=wl)).summary()
    return s["steady_state"]["output_throughput"] if "steady_state" in s else s["output_throughput"], s  # whole run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the published request counts to run")
    ap.add_argument("--only", default=None, help="one model")
    ap.add_argument("--case", default=None, help="one ISL/OSL, e.g. 20000/2000")
    ap.add_argument("--scheduler", default="no_evict", help="servesim's admission policy (default: TensorRT-LLM's)")
    ap.add_argument("--moe", action="store_true", help="the MoE groups (attention DP with expert parallelism)")
    args = ap.parse_args()
    source, label = (MOE_SOURCE, "DEP") if args.moe else (SOURCE, "TP")
    print(f"published: {source}; simulated: servesim offline, scheduler {args.scheduler}, steady-state output "
          "tokens/s; batch, steady share and preemptions of the fp8-KV run\n")  # fmt: skip
    print(f"| model | GPU | {label} | ISL/OSL | published | servesim fp8 KV | ratio | servesim bf16 KV | ratio | "
          "batch | steady share | preemptions |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ratios: dict[tuple, list[float]] = {}
    t0 = time.perf_counter()
    for model, gpu, size, isl, osl, count, published in cases(args.moe):
        if (args.only and model != args.only) or (args.case and args.case != f"{isl}/{osl}"):
            continue
        tp, dep = (1, size) if args.moe else (size, 1)
        n = max(50, round(count * args.scale))
        fp8, s = simulated(model, gpu, tp, isl, osl, n, "fp8", args.scheduler, dep)
        bf16, _ = simulated(model, gpu, tp, isl, osl, n, "bf16", args.scheduler, dep)
        ratios.setdefault((model, gpu, size), []).append(fp8 / published)
        share = s["steady_state"]["output_share"] if "steady_state" in s else 0.0
        print(f"| {model} | {gpu} | {size} | {isl}/{osl} | {published:,} | {fp8:,.0f} | {fp8 / published:.2f} | "
              f"{bf16:,.0f} | {bf16 / published:.2f} | {s['batch_size']['mean']:.0f} | {share:.0%} | "
              f"{s['preemptions']} |",
              flush=True)  # fmt: skip
    print()
    every = [r for rs in ratios.values() for r in rs]
    for (model, gpu, size), rs in ratios.items():
        error = statistics.median(abs(r - 1) for r in rs)
        print(f"{model} {gpu} {label}{size}: servesim/published (fp8 KV) median {statistics.median(rs):.2f}, "
              f"range {min(rs):.2f}-{max(rs):.2f}; median error {error:.0%}")  # fmt: skip
    print(f"all {len(every)} cases: median {statistics.median(every):.2f}, range {min(every):.2f}-{max(every):.2f}; "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip


def cases(moe: bool):
    """(model, gpu, TP or DEP size, ISL, OSL, requests, published output tokens/s of the deployment)."""
    if moe:
        for (model, gpu, dep), figures in PUBLISHED_MOE.items():
            for (isl, osl), per_gpu in figures.items():
                yield model, gpu, dep, isl, osl, MOE_REQUESTS[(isl, osl)], per_gpu * dep
        return
    for (model, gpu, tp), figures in PUBLISHED.items():
        for ((isl, osl), count), published in zip(REQUESTS.items(), figures, strict=True):
            yield model, gpu, tp, isl, osl, count, published


if __name__ == "__main__":
    main()
