"""Simulation speed of two checkouts, measured interleaved on the same machine (for refactors).

Runs the same scenarios under each checkout's `src/` in alternating subprocesses and
prints each one's best wall time and the ratio, so machine noise hits both alike: two
synthetic streams, and bench_sim.py's replays of the Azure and Mooncake traces when the
shared folder has them.

    git worktree add /tmp/before <commit>
    python benchmarks/bench_compare.py /tmp/before . [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1] + "/src")
from pathlib import Path
from servesim import EngineConfig, LengthDist, Scenario, WorkloadConfig, simulate
IN = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)
OUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)
def wl(rate):
    return WorkloadConfig(num_requests=10000, rate=rate, input=IN, output=OUT, seed=1)
cases = {"1 replica, 14 req/s": Scenario(workload=wl(14.0)),
         "4 replicas least_tokens, 56 req/s": Scenario(workload=wl(56.0), replicas=4, router="least_tokens")}
T = Path(sys.argv[2])
azure, mooncake = T / "AzureLLMInferenceTrace_conv.csv", T / "mooncake_conversation_trace.jsonl"
if azure.is_file():  # bench_sim.py's replays: the trace's own timestamps, every row
    cases["Azure conversation trace"] = Scenario(workload=WorkloadConfig(trace=azure, arrival="trace",
                                                                         num_requests=None))  # fmt: skip
if mooncake.is_file():
    cases["Mooncake trace, prefix caching"] = Scenario(
        workload=WorkloadConfig(trace=mooncake, arrival="trace", num_requests=None),
        engine=EngineConfig(enable_prefix_caching=True))  # fmt: skip
out = {}
for name, sc in cases.items():
    simulate(sc)  # (a trace is read once per process, as bench_sim.py's later runs find it)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        simulate(sc)
        best = min(best, time.perf_counter() - t0)
    out[name] = best
print(json.dumps(out))
"""

TRACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "traces"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--traces", type=Path, default=TRACES, help="folder of the Azure and Mooncake traces (if present)")
    args = ap.parse_args()
    best: dict[str, dict[str, float]] = {args.before: {}, args.after: {}}
    for _ in range(args.rounds):
        for tree in (args.before, args.after):
            res = subprocess.run([sys.executable, "-c", CHILD, tree, str(args.traces)], capture_output=True, text=True,
                                 check=True)  # fmt: skip
            for name, secs in json.loads(res.stdout.splitlines()[-1]).items():
                best[tree][name] = min(best[tree].get(name, secs), secs)
    for name in best[args.before]:
        b, a = best[args.before][name], best[args.after][name]
        print(f"{name}: before {b:.3f} s, after {a:.3f} s, after/before {a / b:.3f} (best of {3 * args.rounds})")


if __name__ == "__main__":
    main()
