"""How a run's cost grows with its size: wall time and peak memory from 10^4 requests up to a fleet-day.

The default is the fleet-day of issue 13: 256 llama-3.1-70b replicas (TP4 on H100-SXM,
profiled model) behind the power_of_two router, serving 10^7 requests a day on average
(115.7 per second) with the Azure conversation trace's lengths (sampled at random) and
a daily shape of the rate (`DAY`, assumed: the 2023 trace covers one hour). A run of N
requests covers the first N / 10^7 of that day. Runs are streamed (`--stream`: records
not kept, summaries gathered as the run goes) over `--partitions` groups on as many
local processes. Each size runs in a fresh process; the script prints wall time, peak
memory (the parent's plus each worker's peak: a bound on what was resident at once) and
the log-log slope between sizes (1 = linear), and writes the plot.

    python benchmarks/bench_scale.py [--sizes 1e4,1e5,1e6,1e7] [--replicas 256] [--partitions 2] [--router R]
        [--in-memory] [--synthetic --replicas 64 --rate 128 --partitions 1]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"
# relative request rate per hour of the day, midnight first: an assumed diurnal shape (trough at night
# ~0.3x the mean, flat peak ~1.45x through the working day), not a measured one
DAY = [0.45, 0.35, 0.3, 0.28, 0.3, 0.4, 0.6, 0.85, 1.1, 1.3, 1.4, 1.45, 1.45, 1.45, 1.45, 1.4, 1.35, 1.3, 1.2,
       1.1, 1.0, 0.9, 0.75, 0.6]  # fmt: skip

CHILD = r"""
import json, resource, sys, time
from servesim import EngineConfig, LengthDist, Scenario, WorkloadConfig, simulate
cfg = json.loads(sys.argv[1])
if cfg["synthetic"]:  # Azure-conversation-like lognormal lengths
    lengths = dict(input=LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050),
                   output=LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000))
else:
    lengths = dict(trace=cfg["trace"], trace_sample="random")
wl = WorkloadConfig(num_requests=cfg["n"], rate=cfg["rate"], rate_shape=cfg["shape"], seed=1, **lengths)
sc = Scenario(model="llama-3.1-70b", gpu="h100-sxm", engine=EngineConfig(tp=4), replicas=cfg["replicas"],
              router=cfg["router"], partitions=cfg["partitions"], workload=wl)
t0 = time.perf_counter()
result = simulate(sc, stream=cfg["stream"])
t1 = time.perf_counter()
s = result.summary()
t2 = time.perf_counter()
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6 if cfg["partitions"] > 1 else 0.0
print(json.dumps({"n": cfg["n"], "sim_s": t1 - t0, "summary_s": t2 - t1, "rss_gb": own + cfg["partitions"] * worker,
                  "served_s": s["duration_s"], "completed": s["completed"], "ttft_p99_ms": s["ttft_ms"]["p99"],
                  "itl_p99_ms": s["itl_ms"]["p99"], "iterations": s["iterations"]}))
"""


def svg_plot(rows: list[dict], path: Path) -> None:
    """A log-log plot of wall time and peak RSS against requests, as a small self-contained SVG."""
    w, h, pad = 560, 360, 60
    xs = [math.log10(r["n"]) for r in rows]
    series = [("wall time (s)", [r["sim_s"] + r["summary_s"] for r in rows], "#1f77b4"),
              ("peak RSS (GB)", [r["rss_gb"] for r in rows], "#d62728")]  # fmt: skip
    ys = [math.log10(v) for _, vals, _ in series for v in vals]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    px = lambda x: pad + (x - x0) / (x1 - x0) * (w - 2 * pad)  # noqa: E731
    py = lambda y: h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="12"><rect width="{w}" height="{h}" fill="white"/>']  # fmt: skip
    for d in range(x0, x1 + 1):
        out.append(f'<line x1="{px(d)}" y1="{pad}" x2="{px(d)}" y2="{h - pad}" stroke="#ddd"/>'
                   f'<text x="{px(d)}" y="{h - pad + 16}" text-anchor="middle">1e{d}</text>')  # fmt: skip
    for d in range(y0, y1 + 1):
        out.append(f'<line x1="{pad}" y1="{py(d)}" x2="{w - pad}" y2="{py(d)}" stroke="#ddd"/>'
                   f'<text x="{pad - 6}" y="{py(d) + 4}" text-anchor="end">1e{d}</text>')  # fmt: skip
    for i, (name, vals, color) in enumerate(series):
        pts = " ".join(f"{px(x):.1f},{py(math.log10(v)):.1f}" for x, v in zip(xs, vals, strict=True))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{color}"/>' for p in pts.split()]
        out.append(f'<text x="{pad + 10}" y="{pad - 20 + 14 * i}" fill="{color}">{name}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">requests simulated</text></svg>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1e4,1e5,1e6,1e7")
    ap.add_argument("--replicas", type=int, default=256)
    ap.add_argument("--rate", type=float, default=1e7 / 86400, help="mean requests per second, whole fleet")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--router", default="power_of_two")
    ap.add_argument("--in-memory", action="store_true", help="keep every request (not streamed)")
    ap.add_argument("--synthetic", action="store_true", help="lognormal lengths and a steady rate instead")
    ap.add_argument("--svg", type=Path, default=ROOT / "docs" / "img" / "scale.svg")
    args = ap.parse_args()
    if not args.synthetic and not TRACE.is_file():
        sys.exit(f"{TRACE} not found: pass --synthetic")
    rows = []
    for n in (int(float(x)) for x in args.sizes.split(",")):
        cfg = dict(n=n, replicas=args.replicas, rate=args.rate, partitions=args.partitions, router=args.router,
                   stream=not args.in_memory,
                   synthetic=args.synthetic, trace=str(TRACE), shape=None if args.synthetic else DAY)  # fmt: skip
        res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True)
        if res.returncode:
            why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
            print(f"{n:>10,} requests: failed ({why})")
            break
        r = json.loads(res.stdout.splitlines()[-1])
        rows.append(r)
        slope = ""
        if len(rows) > 1:
            a, b = rows[-2], rows[-1]
            dn = math.log(b["n"] / a["n"])
            wall = (b["sim_s"] + b["summary_s"]) / (a["sim_s"] + a["summary_s"])
            slope = f"  slope: time {math.log(wall) / dn:.2f}, memory {math.log(b['rss_gb'] / a['rss_gb']) / dn:.2f}"
        print(f"{n:>10,} requests ({r['served_s']:,.0f} s served, {r['iterations']:,} iterations): simulate "
              f"{r['sim_s']:.1f} s ({n / r['sim_s']:,.0f}/s), summary {r['summary_s']:.2f} s, peak RSS "
              f"{r['rss_gb']:.2f} GB, P99 TTFT {r['ttft_p99_ms']:.0f} ms, P99 ITL {r['itl_p99_ms']:.1f} ms{slope}",
              flush=True)  # fmt: skip
    if len(rows) > 1:
        svg_plot(rows, args.svg)
        print(f"wrote {args.svg}")


if __name__ == "__main__":
    main()
