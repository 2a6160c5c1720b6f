"""FlexGen (Sheng et al., "FlexGen: High-Throughput Generative Inference of Large Language Models with a Single
GPU", ICML 2023, arXiv 2303.06865; figures from the authors' repository, docs/edge_sources.md A).

Claim: a model larger than the GPU runs at far higher throughput when each layer's weights, loaded from host
memory (or disk), serve a large block of requests: with the KV cache and attention on the CPU, FlexGen's
effective batch grows to 144-512 where DeepSpeed ZeRO-Inference and HF Accelerate stay at 1-16. On one T4
(16 GB, 208 GB DRAM), prompt 512 and 32 generated tokens (README / batch_size_table.md, primary): OPT-30B
7.32 tok/s (bs 144) against DeepSpeed 0.60 (bs 4) and Accelerate 0.62 (bs 8), about 12x; OPT-175B 0.69
(bs 256) against 0.01, about 69x. The README also says FlexGen "can be significantly slower than the case when
you have enough powerful GPUs to hold the whole model, especially for small-batch cases".

Here: Llama-3.1-70B in bf16 (131 GiB) on ONE H100 (80 GB), its host tier the GPU's share of a DGX H100's 2 TB
(238 GiB, read over PCIe at the measured 55 GB/s; CPU attention at near_gbs 46 GB/s), FlexGen's workload
(prompt 512, 32 generated tokens, every request at once, two blocks of requests per run) and its metric:
generated tokens over the whole run (prefill and decode). Block size = max_num_seqs.
- flexgen: `[engine.offload] policy = "flexgen"`, weights in host memory (as little as fits on the GPU: the
  default placement), KV cache in host memory with attention next to it on the CPU, micro-batches of
  gpu_batch (default 64) sharing each layer's load (offload/policies/flexgen.py).
- stream (HF Accelerate / DeepSpeed ZeRO-Inference with prefetch): each layer read whole from host memory,
  the KV cache on the GPU, so a block of B requests needs B x 544 tokens of KV there; the experiment keeps as
  much of the weights resident as leaves that room (`resident`), "-" where even none resident leaves too little.
- Llama-3.1-70B without offloading at TP2, TP4 and TP8 on H100s, the same workload and block sizes.
Cost: USD per million generated tokens = catalog price (per GPU-hour) x GPUs x run time / generated tokens
(every GPU-second charged to the generated tokens, as FlexGen's throughput metric counts them). Host memory is
not priced apart: it is the GPU's share of the server the GPU-hour price rents.

    python experiments/flexgen_offload.py [--blocks 1,8,32,64,128,256,512,1024] [--gpu-batch 64] [--tp 2,4,8]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, Scenario, WorkloadConfig
from servesim.hardware import get_gpu
from servesim.models import get_model
from servesim.sim.memory import plan_memory

CHECK = ["--blocks", "1,64,512", "--tp", "2,4"]  # the small run CI checks (experiments/record.py)

MODEL, GPU = "llama-3.1-70b", "h100-sxm"
PROMPT, GEN = 512, 32  # FlexGen's headline workload
MAX_LEN = PROMPT + GEN
BLOCKS_PER_RUN = 2
# FlexGen's own figures (README / benchmark/batch_size_table.md, T4, prompt 512, gen 32): tok/s (effective batch)
PAPER = {"OPT-30B": (7.32, 144, 0.60, 4, 0.62, 8), "OPT-175B": (0.69, 256, 0.01, 1, 0.01, 2)}


def engine(block: int, tp: int = 1, offload: dict | None = None) -> EngineConfig:
    return EngineConfig(tp=tp, max_num_seqs=block, max_model_len=MAX_LEN, offload=offload)


def run(block: int, tp: int = 1, offload: dict | None = None) -> dict:
    fixed = lambda n: LengthDist(dist="fixed", mean=n)  # noqa: E731
    wl = WorkloadConfig(num_requests=BLOCKS_PER_RUN * block, rate=float("inf"), seed=1, input=fixed(PROMPT),
                        output=fixed(GEN))  # fmt: skip
    s = simulate(Scenario(model=MODEL, gpu=GPU, engine=engine(block, tp, offload), workload=wl)).summary()
    s["usd_per_m"] = s["cost"]["total_usd"] / s["total_output_tokens"] * 1e6
    return s


def stream_resident(block: int) -> float | None:
    """The largest resident share of each layer that leaves a stream placement room for `block` requests' KV
    cache on the GPU (None: not even with every layer streamed)."""
    model, gpu = get_model(MODEL), get_gpu(GPU)
    plan = plan_memory(model, gpu, engine(block, offload={"policy": "stream", "resident": 0.0}))
    p = plan.placement
    bs = plan.block_size
    need = block * math.ceil(MAX_LEN / bs) * bs * plan.kv.bytes_per_token
    spare = plan.kv_gib * 2**30 - need  # the KV room with nothing resident, less what the block needs
    if spare < 0:
        return None
    return min(1.0, math.floor(spare / (p.offloadable_bytes * (p.layers - 2)) * 1000) / 1000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", default="1,8,32,64,128,256,512,1024", help="block sizes (max_num_seqs), comma list")
    ap.add_argument("--gpu-batch", type=int, default=64, help="flexgen: requests per micro-batch")
    ap.add_argument("--tp", default="2,4,8", help="tensor-parallel sizes of the no-offload baselines")
    a = ap.parse_args()
    t0 = time.perf_counter()
    blocks = [int(x) for x in a.blocks.split(",")]
    tps = [int(x) for x in a.tp.split(",")]
    price = get_gpu(GPU).price_per_hour
    print(f"{MODEL} bf16, prompt {PROMPT}, {GEN} generated tokens, {BLOCKS_PER_RUN} blocks of requests at once; "
          f"throughput = generated tokens / run time; $ at {price:.2f} per {GPU} GPU-hour")  # fmt: skip
    print(f"flexgen: 1 x {GPU}, weights partly and KV cache in host memory, attention on the CPU, gpu_batch "
          f"{a.gpu_batch}; stream: 1 x {GPU}, layers read whole from host memory, KV cache on the GPU")  # fmt: skip
    head = " | ".join(f"TP{t} tok/s | TP{t} $/M" for t in tps)
    print(f"block | flexgen tok/s | flexgen $/M | flexgen mean batch | flexgen GiB offloaded | stream resident | "
          f"stream tok/s | stream $/M | {head}")  # fmt: skip
    fg, st, base = {}, {}, {t: {} for t in tps}
    for b in blocks:
        fg[b] = run(b, offload={"policy": "flexgen", "kv": "host", "attention": "near",
                                "gpu_batch": min(b, a.gpu_batch)})  # fmt: skip
        r = stream_resident(b)
        if r is not None:
            st[b] = run(b, offload={"policy": "stream", "resident": r})
            st[b]["resident"] = r
        for t in tps:
            base[t][b] = run(b, tp=t)
        off = get_model(MODEL).weight_bytes("bf16") / 2**30 - fg[b]["memory"]["weights_gib_per_gpu"]
        scol = (f"{st[b]['resident']:.1%} | {st[b]['output_throughput']:.2f} | {st[b]['usd_per_m']:.2f}"
                if b in st else "- | - | -")  # fmt: skip
        cols = " | ".join(f"{base[t][b]['output_throughput']:.1f} | {base[t][b]['usd_per_m']:.2f}" for t in tps)
        print(f"{b} | {fg[b]['output_throughput']:.2f} | {fg[b]['usd_per_m']:.2f} | {fg[b]['batch_size']['mean']:.0f} "
              f"| {off:.1f} | {scol} | {cols}")  # fmt: skip

    best = lambda runs: max(runs, key=lambda b: runs[b]["output_throughput"])  # noqa: E731
    bf = best(fg)
    line = (f"flexgen peaks at block {bf}: {fg[bf]['output_throughput']:.2f} tok/s "
            f"({fg[bf]['output_throughput'] / fg[blocks[0]]['output_throughput']:.0f}x its block-{blocks[0]} "
            f"{fg[blocks[0]]['output_throughput']:.2f})")  # fmt: skip
    if st:
        bs = best(st)
        full = f" (its KV cache does not fit the GPU beyond block {max(st)})" if len(st) < len(fg) else ""
        line += (f"; stream peaks at block {bs}: {st[bs]['output_throughput']:.2f} tok/s{full}; flexgen / stream at "
                 "their best: "
                 f"{fg[bf]['output_throughput'] / st[bs]['output_throughput']:.2f}x")  # fmt: skip
        small = min(st, key=lambda b: abs(b - 8))  # HF Accelerate's OPT-30B batch in FlexGen's table
        line += (f"; flexgen's best / stream at block {small}: "
                 f"{fg[bf]['output_throughput'] / st[small]['output_throughput']:.1f}x")  # fmt: skip
    print(line)
    for name, (f, fb, ds, db, acc, ab) in PAPER.items():
        print(f"FlexGen paper (T4), {name}: {f} tok/s at bs {fb} vs DeepSpeed {ds} (bs {db}) = {f / ds:.1f}x, "
              f"vs Accelerate {acc} (bs {ab}) = {f / acc:.1f}x")  # fmt: skip
    for t in tps:
        cheap = [b for b in blocks if fg[b]["usd_per_m"] < base[t][b]["usd_per_m"]]
        tb = min(base[t], key=lambda b: base[t][b]["usd_per_m"])
        low = base[t][tb]["usd_per_m"]
        beat = [b for b in blocks if fg[b]["usd_per_m"] < low]
        same = f"from block {cheap[0]}" if cheap else "at no block"
        if cheap and cheap != blocks[blocks.index(cheap[0]) :]:
            same = f"at blocks {','.join(map(str, cheap))}"
        over = (f"below TP{t}'s cheapest (${low:.2f} per M, block {tb}) from block {beat[0]} "
                f"(${fg[beat[0]]['usd_per_m']:.2f})" if beat else
                f"never below TP{t}'s cheapest (${low:.2f} per M, block {tb}; flexgen's best "
                f"${min(x['usd_per_m'] for x in fg.values()):.2f})")  # fmt: skip
        print(f"cost: flexgen on 1 {GPU} vs TP{t} without offloading: cheaper at the same block {same}; {over}")
    print(f"wall {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
