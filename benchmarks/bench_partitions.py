"""A fleet split into partitions (partition.py): wall time on one process, on local processes, on Ray.

100,000 requests (Azure-conversation-like lengths, Poisson at 8.75 req/s per replica) over
16 llama-3.1-8b replicas on H100 behind `power_of_two`: unsplit on one process, then as
`--partitions` groups on as many local processes, both kept in memory and streamed (each
group sends back its tally, not its requests), then (with `--ray-address`) on Ray. Also
prints what sending one group's result back costs (pickling its requests).

    python benchmarks/bench_partitions.py [--requests 100000] [--partitions 2] [--ray-address auto]
"""

from __future__ import annotations

import argparse
import pickle
import time

from servesim import LengthDist, Scenario, WorkloadConfig, simulate
from servesim.run import run_share

IN = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)
OUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--ray-address")
    args = ap.parse_args()
    wl = WorkloadConfig(num_requests=args.requests, rate=8.75 * args.replicas, input=IN, output=OUT, seed=1)
    sc = Scenario(replicas=args.replicas, router="power_of_two", workload=wl)
    split = sc.model_copy(update={"partitions": args.partitions})
    runs = [("one process", sc, {}), (f"{args.partitions} partitions, local processes", split,
             {"workers": args.partitions}), ("one process, streamed", sc, {"stream": True}),
            (f"{args.partitions} partitions, local processes, streamed", split,
             {"workers": args.partitions, "stream": True})]  # fmt: skip
    if args.ray_address:
        runs.append((f"{args.partitions} partitions on Ray ({args.ray_address})", split,
                     {"ray_address": args.ray_address}))  # fmt: skip
    for name, scenario, how in runs:
        t0 = time.perf_counter()
        result = simulate(scenario, **how)
        t1 = time.perf_counter()
        s = result.summary()
        print(f"{name}: simulate {t1 - t0:.1f} s, summary {time.perf_counter() - t1:.1f} s; "
              f"{s['completed']} completed, P99 TTFT {s['ttft_ms']['p99']:.0f} ms")  # fmt: skip
    part = sc.model_copy(update={"replicas": args.replicas // args.partitions})
    t0 = time.perf_counter()
    share = run_share(part, (0, args.partitions))
    t1 = time.perf_counter()
    blob = pickle.dumps(share)
    t2 = time.perf_counter()
    pickle.loads(blob)
    t3 = time.perf_counter()
    print(f"one group alone: {t1 - t0:.1f} s; its result pickles in {t2 - t1:.2f} s ({len(blob) / 1e6:.0f} MB), "
          f"unpickles in {t3 - t2:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
