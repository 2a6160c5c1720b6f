"""Diagnose a validation forward pass on the GPU: kernel times by category vs. graph replay.

    python benchmarks/gpu_forward_breakdown.py --model llama-3.1-8b

For a few batches: the CUDA-graph replay time (as `servesim validate` measures it), the sum
of kernel durations from torch.profiler (eager), the number of kernels, and times grouped by
kernel family; then a long prefill timed cold and after seconds of continuous load.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from servesim.models import get_model
from servesim.profiler import kernels
from servesim.profiler.decoder import Decoder
from servesim.profiler.timing import capture, replay_seconds

FAMILIES = [("gemm", ("gemm", "nvjet", "cutlass", "xmma", "sm90")), ("attention", ("flash", "fmha", "attention")),
            ("norm", ("norm",)), ("copy/cat", ("copy", "cat", "concat")), ("index", ("index", "gather")),
            ("elementwise", ("elementwise", "vectorized", "unrolled", "reduce"))]  # fmt: skip


def family(name: str) -> str:
    low = name.lower()
    for fam, keys in FAMILIES:
        if any(k in low for k in keys):
            return fam
    return "other"


def graph_time(dec, inp, reps=10):
    for _ in range(2):
        dec.forward(inp)
    g = capture(lambda: dec.forward(inp))
    return g, replay_seconds(g, reps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="llama-3.1-8b")
    args = ap.parse_args()
    kernels.probe("cuda")
    dec = Decoder(get_model(args.model))
    for shape in ((0, 0, 8, 512), (0, 0, 64, 2048), (512, 0, 0, 0), (256, 0, 16, 2048), (8192, 0, 0, 0)):
        inp = dec.inputs(*shape)
        g, t_graph = graph_time(dec, inp)
        del g
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            dec.forward(inp)
            torch.cuda.synchronize()
        fam, count, total = defaultdict(float), 0, 0.0
        for ev in prof.events():
            if ev.device_type.name == "CUDA" and ev.device_time > 0:
                fam[family(ev.name)] += ev.device_time / 1e6
                count += 1
                total += ev.device_time / 1e6
        gap_us = (t_graph - total) / max(count, 1) * 1e6
        print(f"batch {shape}: graph {t_graph * 1e3:.3f} ms, kernels {total * 1e3:.3f} ms in {count} kernels "
              f"-> {gap_us:.2f} us per kernel outside kernels")  # fmt: skip
        print("   " + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in sorted(fam.items(), key=lambda x: -x[1])))
        names = defaultdict(lambda: [0, 0.0])
        for ev in prof.events():
            if ev.device_type.name == "CUDA" and ev.device_time > 0:
                names[ev.name[:90]][0] += 1
                names[ev.name[:90]][1] += ev.device_time / 1e3
        for n, (c, ms) in sorted(names.items(), key=lambda x: -x[1][1])[:12]:
            print(f"      {ms:8.3f} ms {c:5d}x {n}")
        torch.cuda.empty_cache()
    inp = dec.inputs(8192, 0, 0, 0)
    g, cold = graph_time(dec, inp, reps=3)
    end = time.time() + 5
    while time.time() < end:
        g.replay()
        torch.cuda.synchronize()
    _, hot = graph_time(dec, inp, reps=5)
    print(f"prefill 8192: cold {cold * 1e3:.1f} ms, after 5 s of load {hot * 1e3:.1f} ms ({hot / cold:.3f}x)")


if __name__ == "__main__":
    main()
