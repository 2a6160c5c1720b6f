"""How well servesim's offload pipeline predicts the H100 measurements of docs/validation/offload_h100_*.csv.

Two checks per measured shape:
- the composition rule alone, from the measured copy and compute times: a prefetched iteration takes
  max(copy, compute) and a serial one copy + compute (offload/pipeline.py);
- servesim's whole prediction: Llama-3.1-8B on h100-sxm with every decoder layer's weights in host memory
  (`offload stream, resident 0`), or with the KV cache there (`kv host`), priced by the shipped H100 profile,
  against the measured iteration.

    python benchmarks/offload_check.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from servesim.config import Scenario
from servesim.perf.batch import Batch
from servesim.sim.deployment import plan

DATA = Path(__file__).resolve().parents[1] / "docs" / "validation"


def perf(offload: dict):
    sc = Scenario(model="llama-3.1-8b", gpu="h100-sxm", engine={"max_model_len": 8192, "offload": offload})
    return plan(sc).pools[0].perf


def rows(df: pd.DataFrame, prefix: str, model, shape) -> list[dict]:
    out = []
    for mode in ("prefetch", "serial"):
        for _, r in df[df["mode"] == f"{prefix}stream_{mode}"].iterrows():
            batch = shape(r)
            copy, comp = r["copy_seconds_alone"], r["compute_seconds_alone"]
            rule = max(copy, comp) if mode == "prefetch" else copy + comp
            model.prefetch = mode == "prefetch"  # (the one setting the two modes differ in)
            out.append({"mode": mode, "shape": r["label"], "measured_ms": r["seconds"] * 1e3,
                        "rule_err": rule / r["seconds"] - 1, "servesim_ms": sum(model.split(batch)) * 1e3})  # fmt: skip
    for o in out:
        o["servesim_err"] = o["servesim_ms"] / o["measured_ms"] - 1
    return out


def table(title: str, got: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'mode':9} {'shape':26} {'measured ms':>12} {'servesim ms':>12} {'servesim err':>13} {'rule err':>9}")
    for o in got:
        print(f"{o['mode']:9} {o['shape']:26} {o['measured_ms']:12.2f} {o['servesim_ms']:12.2f} "
              f"{o['servesim_err']:+13.1%} {o['rule_err']:+9.1%}")  # fmt: skip
    for key in ("servesim_err", "rule_err"):
        e = np.abs([o[key] for o in got])
        print(f"  |{key}|: median {np.median(e):.1%}, max {e.max():.1%} ({len(e)} shapes)")


def main() -> None:
    w = pd.read_csv(DATA / "offload_h100_weights.csv")
    w["label"] = [f"{p} {int(t)} tok" if p == "prefill" else f"decode {int(b)}x{int(c)}"
                  for p, t, b, c in zip(w["phase"], w["tokens"].fillna(0), w["batch"].fillna(0), w["ctx"].fillna(0),
                                        strict=True)]  # fmt: skip
    weights = perf({"policy": "stream", "resident": 0.0})
    copy = w.loc[w["mode"] == "copy_alone", "seconds"].iloc[0]
    io = weights.place.layer_io_bytes * weights.place.layers
    print(f"weights: servesim streams {io / 1e9:.2f} GB per iteration at {weights.place.weights.read_gbs:g} GB/s = "
          f"{io / weights.place.weights.read_gbs / 1e6:.1f} ms; measured copy of the 13.96 GB alone: {copy * 1e3:.1f} "
          "ms")  # fmt: skip

    def shape_w(r):
        return Batch.prefill(int(r["tokens"])) if r["phase"] == "prefill" else Batch.decode(int(r["batch"]),
                                                                                            int(r["ctx"]))  # fmt: skip

    table("weights streamed from pinned host memory (Llama-3.1-8B, all 32 layers)", rows(w, "", weights, shape_w))
    k = pd.read_csv(DATA / "offload_h100_kv.csv")
    k["label"] = [f"decode {int(b)}x{int(c)}" for b, c in zip(k["batch"], k["ctx"], strict=True)]
    kv = perf({"policy": "stream", "weights": "none", "kv": "host"})
    table("KV cache streamed from pinned host memory, weights on the GPU",
          rows(k, "kv_", kv, lambda r: Batch.decode(int(r["batch"]), int(r["ctx"]))))


if __name__ == "__main__":
    main()
