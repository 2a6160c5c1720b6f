"""MoE-Lens: an analytic bound on (MoE) serving throughput against what real forward passes achieve.

Claim (Yu et al., arXiv 2504.09345): a model of memory capacity, bandwidth and compute
predicts the throughput a well-built MoE serving system achieves within 94% (their engine
reaches 94% of the model's bound on average).

Here (bound.py, `servesim bound`): for each deployment, the batch B the KV cache holds at
the workload's mean lengths and the bound on output tokens/s at datasheet peaks
(`hardware`). The bound's one-line model of an engine with full batches and no scheduling
loss,

    seconds per request = O x t_decode(B, P + O/2) / B + t_prefill(P),

is then priced three ways: at datasheet peaks (the bound), with forward passes measured on
an H100 (`measured`: the validation decoder's times in docs/validation/, none of
servesim's performance model in it), and with servesim's profiled model (`predicted`).
Prompts are prefilled in full batches of max_num_batched_tokens (8,192), so t_prefill(P) is
P/8192 of a measured (or priced) 8,192-token prefill.
`simulated` is servesim's offline throughput (all requests at once). measured / hardware
is MoE-Lens's claim checked on real kernels; predicted / measured checks servesim's prices
of the same formula; simulated / measured adds scheduling.

Measured decode times are interpolated linearly in context at the nearest measured batches
(the validation grid's batches 1-256; past its longest context at a batch, extended by the
per-token slope of the next smaller batch: attention reads the cache linearly).

    python experiments/moe_lens.py [--requests 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from servesim.bound import bound_report
from servesim.config import LengthDist, Scenario, WorkloadConfig
from servesim.sim.deployment import plan

CHECK = ["--requests", "400"]  # the small run CI checks (experiments/record.py)

MODELS = ["qwen3-30b-a3b", "deepseek-v2-lite", "llama-3.1-8b"]
GPU, PROMPT, OUTPUT = "h100-sxm", 1024, 256
VALIDATION = Path(__file__).resolve().parent.parent / "docs" / "validation"
# forward passes of the validation decoder measured on the H100 (docs/validation.md)
MEASURED = {m: VALIDATION / f"measured_h100-sxm_{m}.csv" for m in MODELS}


def _decode_at(rows: pd.DataFrame, batch: int, ctx: float) -> float:
    """Measured seconds of one decode step of `batch` sequences at context `ctx` (see the module docstring)."""

    def at(b: int) -> float:
        r = rows[rows.decodes == b].sort_values("decode_ctx")
        if ctx <= r.decode_ctx.max():
            return float(np.interp(ctx, r.decode_ctx, r.measured_s))
        smaller = rows[(rows.decodes < b) & (rows.decode_ctx > r.decode_ctx.max())].decodes.max()
        s = rows[rows.decodes == smaller].sort_values("decode_ctx").tail(2)
        per_token = np.diff(s.measured_s).item() / np.diff(s.decode_ctx).item() / smaller
        return float(r.measured_s.iloc[-1] + per_token * b * (ctx - r.decode_ctx.iloc[-1]))

    batches = sorted(rows.decodes.unique())
    lo = max(b for b in batches if b <= batch)
    hi = min((b for b in batches if b >= batch), default=lo)
    return at(lo) if lo == hi else float(np.interp(batch, [lo, hi], [at(lo), at(hi)]))


def measured_tokens_s(model: str, batch: int, chunk: int) -> float | None:
    """The one-line model priced with forward passes measured on the H100 (None where none are recorded)."""
    path = MEASURED.get(model)
    if path is None or not path.is_file():
        return None
    df = pd.read_csv(path)
    decode = _decode_at(df[df.kind == "decode"], batch, PROMPT + OUTPUT / 2)
    size = max(chunk, PROMPT)
    prefill = df[(df.kind == "prefill") & (df.chunk == size) & (df.chunk_ctx == 0)].measured_s.item() * PROMPT / size
    return OUTPUT / (OUTPUT * decode / batch + prefill)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    n = ap.parse_args().requests
    print(f"one {GPU}, {PROMPT}/{OUTPUT}-token requests; output tokens/s")
    print("model | batch | hardware bound | measured | predicted | simulated | measured / hardware | "
          "predicted / measured | simulated / measured | hardware / measured")
    for model in MODELS:
        wl = WorkloadConfig(num_requests=n, input=LengthDist(dist="fixed", mean=PROMPT),
                            output=LengthDist(dist="fixed", mean=OUTPUT, max=OUTPUT))  # fmt: skip
        sc = Scenario(model=model, gpu=GPU, workload=wl)
        d = bound_report(sc)
        batch, hw, sim = d["batch"], d["hardware_output_tokens_s"], d["simulated_output_tokens_s"]
        chunk = plan(sc).pools[0].engine.max_num_batched_tokens
        meas, pred = measured_tokens_s(model, batch, chunk), d["predicted_output_tokens_s"]
        if meas is None:
            print(f"{model} | {batch} | {hw:.0f} | no measurement recorded | {pred:.0f} | {sim:.0f} | | | |")
            continue
        print(f"{model} | {batch} | {hw:.0f} | {meas:.0f} | {pred:.0f} | {sim:.0f} | {meas / hw:.1%} | "
              f"{pred / meas:.1%} | {sim / meas:.1%} | {hw / meas:.2f}x")


if __name__ == "__main__":
    main()
