"""Pipeline-parallel training schedules compared on one realistic case, and the textbook identities.

(1) Llama-3.1-70B on 32 H100-SXM (PP8 x TP4), 32 micro-batches of one 4096-token sequence:
every schedule's step time, throughput, MFU, bubble and peak memory, and the gain over 1F1B.
(2) Equal F, B and W and free sends: the simulated bubble next to the textbook formula.

    python experiments/pipeline_schedules.py [--micro-batches 32]
"""

from __future__ import annotations

import argparse
import sys
import time

from servesim.pipeline import PipelineConfig, StageCosts, simulate_pipeline

CHECK = ["--micro-batches", "16"]  # the small run CI checks (experiments/record.py)

SCHEDULES = ["gpipe", "1f1b", "interleaved", "bfpp", "zb-h1", "zb-h2", "zb-v"]


def realistic(m: int) -> None:
    base = PipelineConfig(model="llama-3.1-70b", gpu="h100-sxm", pp=8, tp=4, micro_batches=m, seq_len=4096)
    rows = {s: simulate_pipeline(base.model_copy(update={"schedule": s})).summary() for s in SCHEDULES}
    ref = rows["1f1b"]["tokens_per_s"]
    print(f"(1) {base.model} on 32x {base.gpu} (PP8 TP4), {m} micro-batches x 1 x 4096 tokens, "
          f"{rows['1f1b']['perf_model']}")  # fmt: skip
    print("schedule | chunks | step s | flush step s | tokens/s | vs 1F1B | MFU | bubble | peak act GiB | peak GiB")
    for s, r in rows.items():
        print(f"{s} | {r['chunks']} | {r['step_s']:.3f} | {r['flush_step_s']:.3f} | {r['tokens_per_s']:,.0f} | "
              f"{r['tokens_per_s'] / ref - 1:+.1%} | {r['mfu']:.1%} | {r['bubble_fraction']:.1%} | "
              f"{max(r['peak_activation_gib']):.1f} | {max(r['peak_memory_gib']):.1f}")  # fmt: skip
    r = rows["1f1b"]
    print(f"per virtual stage (10 layers): F {r['pass_ms']['F']:.1f} ms, B {r['pass_ms']['B']:.1f} ms, "
          f"W {r['pass_ms']['W']:.1f} ms")  # fmt: skip


def textbook(p: int = 8, m: int = 32, v: int = 2) -> None:
    print(f"\n(2) equal F = B = W, free sends, p = {p}, m = {m}: bubble (idle over the ideal m(F+B+W))")
    print("schedule | simulated | textbook")
    formulas = {"gpipe": (p - 1) / m, "1f1b": (p - 1) / m, "interleaved": (p - 1) / (v * m),
                "zb-h1": (p - 1) / (3 * m), "zb-h2": 0.0, "zb-v": 0.0}  # fmt: skip
    for s, want in formulas.items():
        chunks = v if s in ("interleaved", "zb-v") else 1
        c = StageCosts.uniform(p * chunks, 1 / chunks, 1 / chunks, 1 / chunks, act=1 / chunks)
        tl = simulate_pipeline(PipelineConfig(pp=p, micro_batches=m, schedule=s, chunks=None), c).timeline
        print(f"{s} | {(tl.period - 3 * m) / (3 * m):.4f} | {want:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--micro-batches", type=int, default=32)
    args = ap.parse_args()
    t0 = time.perf_counter()
    realistic(args.micro_batches)
    textbook()
    print(f"all studies: {time.perf_counter() - t0:.1f} s wall", file=sys.stderr)


if __name__ == "__main__":
    main()
