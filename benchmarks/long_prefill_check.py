"""Long prompts: prefill attention past the profile's main grid, extrapolated, against its measurement.

The main attention grid stops at 16k-token chunks; `servesim profile --sections long_prefill` measures causal
prefill of 32k-128k tokens (and 32k after 32k, 16k after 64k cached) for every head layout of the catalog. This
loads the GPU's shipped profile without that table, prices each measured long chunk as the profiled model would
(`perf.profiled.prefill_attention`: scaled from the longest measured chunk by its FLOPs, quadratic in the chunk and
linear in the context), and also the way servesim priced chunks past the grid before issue 26 (linear in the
chunk), and prints predicted / measured per chunk shape over the head layouts.

    python benchmarks/long_prefill_check.py [--gpu h100-sxm]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from servesim.perf.profile_data import find_profile, load_profile
from servesim.perf.profiled import prefill_attention


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", default="h100-sxm")
    gpu = ap.parse_args().gpu
    src = find_profile(gpu)
    long_csv = src / "attention_prefill_long.csv" if src else None
    if long_csv is None or not long_csv.is_file():
        raise SystemExit(f"the shipped {gpu} profile has no attention_prefill_long.csv; measure it with "
                         f"servesim profile --gpu {gpu} --sections long_prefill")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp) / gpu
        shutil.copytree(src, short, ignore=shutil.ignore_patterns("attention_prefill_long.csv"))
        prof = load_profile(short)
    rows = [line.split(",") for line in long_csv.read_text().splitlines()[1:]]
    by_shape: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for hq, hkv, d, n, c, sec in rows:
        grid = prof.prefill.get((int(hq), int(hkv), int(d)))
        if grid is None:
            continue
        n, c, top = int(n), int(c), int(grid.keys[-1])
        flops = prefill_attention(grid, n, c)
        linear = float(grid(top, min(c, grid.rows[top].xs[-1]))) * n / top if n > top else flops
        by_shape.setdefault((n, c), []).append((flops / float(sec), linear / float(sec)))
    layouts = sum(len(r) for r in by_shape.values())
    print(f"{gpu}: prefill attention past the main grid, predicted / measured over {layouts} chunks of the head "
          f"layouts the main grid has ({len(rows)} measured)")
    print("chunk | cached before | layouts | by FLOPs: median (range) | linear (before): median (range)")
    every = []
    for (n, c), ratios in sorted(by_shape.items()):
        f, lin = [r[0] for r in ratios], [r[1] for r in ratios]
        every += f
        print(f"{n:,} | {c:,} | {len(ratios)} | {statistics.median(f):.2f} ({min(f):.2f}-{max(f):.2f}) | "
              f"{statistics.median(lin):.2f} ({min(lin):.2f}-{max(lin):.2f})")
    errors = sorted(abs(r - 1) for r in every)
    print(f"by FLOPs, all chunks: median error {statistics.median(errors):.1%}, worst {errors[-1]:.1%}")


if __name__ == "__main__":
    main()
