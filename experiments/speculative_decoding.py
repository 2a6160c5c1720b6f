"""Speculative decoding helps at small batch and hurts at large batch.

Claim: drafting k tokens and verifying them in one target pass cuts per-token latency 2-3x
when decoding is memory-bound (EAGLE, Li et al. ICML 2024: 2.7-3.5x at batch 1), and the
gain shrinks and turns into a loss as the batch grows and the verify pass's (k+1)x tokens
make it compute-bound (MagicDec, Chen et al. 2024; TurboSpec / "Optimizing speculative
decoding for serving", Liu et al. 2024).

Here: Llama-3.1-8B on one H100 (profiled), B requests of 512 prompt and 256 output tokens
sent at once, for B from 1 to 256; plain decoding against an EAGLE head and a Llama-3.2-1B
draft model, k=3, acceptance 0.7 (2.53 tokens per step). Headline: TPOT and its speedup.

    python experiments/speculative_decoding.py [--batches 1,8,32,128,256]
"""

from __future__ import annotations

import argparse

from servesim.api import simulate
from servesim.config import EngineConfig, LengthDist, Scenario, SpeculativeConfig, WorkloadConfig
from servesim.perf.speculative import expected_tokens

CHECK = ["--batches", "1,256"]  # the small run CI checks (experiments/record.py)

METHODS = {"plain": None, "eagle": SpeculativeConfig(method="eagle"),
           "draft llama-3.2-1b": SpeculativeConfig(method="draft_model", draft_model="llama-3.2-1b")}  # fmt: skip


def tpot_ms(batch: int, spec) -> float:
    wl = WorkloadConfig(num_requests=batch, rate=float("inf"), input=LengthDist(dist="fixed", mean=512),
                        output=LengthDist(dist="fixed", mean=256, max=256))  # fmt: skip
    sc = Scenario(model="llama-3.1-8b", gpu="h100-sxm", engine=EngineConfig(speculative=spec), workload=wl)
    return simulate(sc).summary()["tpot_ms"]["mean"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,32,128,256")
    batches = [int(b) for b in ap.parse_args().batches.split(",")]
    spec = METHODS["eagle"]
    print(f"llama-3.1-8b on h100-sxm, B requests of 512 prompt / 256 output tokens sent at once; k="
          f"{spec.num_speculative_tokens}, acceptance {spec.acceptance_rate:g} ({expected_tokens(spec):.2f} tokens "
          "per step), for the eagle head and the llama-3.2-1b draft alike")
    print("batch | plain TPOT ms | eagle TPOT ms | eagle speedup | draft TPOT ms | draft speedup")
    for b in batches:
        t = {name: tpot_ms(b, spec) for name, spec in METHODS.items()}
        base = t["plain"]
        print(f"{b} | {base:.2f} | {t['eagle']:.2f} | {base / t['eagle']:.2f} | {t['draft llama-3.2-1b']:.2f} | "
              f"{base / t['draft llama-3.2-1b']:.2f}")


if __name__ == "__main__":
    main()
