"""Time and peak memory of an in-memory run (docs/benchmarks.md, "Memory and time of an in-memory run").

Runs `servesim run --replicas 16 --router least_tokens --rate 140 --num-requests N --json` in a fresh
process per size (so each peak is its own) and prints wall time, CPU time and peak resident memory; with
`--per-request`, also what Python allocated per request (tracemalloc: kept after the run, at its peak,
and the summary's extra), in a second process. `--src` runs another checkout (`git worktree add`).

    python benchmarks/bench_memory.py [--sizes 100000,1000000] [--per-request] [--src /tmp/before/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import json, resource, sys, time
from servesim.cli import main
sys.argv = ["servesim", "run", "--replicas", "16", "--router", "least_tokens", "--rate", "140",
            "--num-requests", sys.argv[1], "--json"]  # (stderr is no terminal: no progress bar)
t0, c0 = time.perf_counter(), time.process_time()
try:
    main()
except SystemExit:
    pass
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "peak_gb": u.ru_maxrss * 1024 / 1e9}), file=sys.stderr)
"""

PER_REQUEST = r"""
import json, sys, tracemalloc
from servesim import Scenario, simulate
n = int(sys.argv[1])
sc = Scenario.model_validate({"workload": {"num_requests": n, "rate": 140}, "replicas": 16, "router": "least_tokens"})
tracemalloc.start()
r = simulate(sc)
kept, peak = tracemalloc.get_traced_memory()
tracemalloc.reset_peak()
r.summary()
_, summary_peak = tracemalloc.get_traced_memory()
print(json.dumps({"kept_b": kept / n, "run_peak_b": peak / n, "summary_extra_b": (summary_peak - kept) / n}))
"""


def child(code: str, n: int, src: Path, out: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    res = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, env=env, check=True)
    return json.loads((res.stderr if out == "stderr" else res.stdout).strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--per-request", action="store_true", help="also tracemalloc's bytes per request")
    ap.add_argument("--src", type=Path, default=SRC, help="the src/ folder of the checkout to measure")
    args = ap.parse_args()
    print("requests | wall s | CPU s | peak resident GB" + (" | kept B/req | run peak B/req | summary +B/req"
                                                             if args.per_request else ""))  # fmt: skip
    for n in (int(float(x)) for x in args.sizes.split(",")):
        m = child(CHILD, n, args.src, "stderr")
        row = f"{n:,} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {m['peak_gb']:.2f}"
        if args.per_request:
            p = child(PER_REQUEST, n, args.src, "stdout")
            row += f" | {p['kept_b']:.0f} | {p['run_peak_b']:.0f} | {p['summary_extra_b']:.0f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
