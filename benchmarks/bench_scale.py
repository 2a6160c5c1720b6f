"""How a run's cost grows with its size: wall time and peak memory from 10^4 requests up.

A fleet of `--replicas` llama-3.1-70b replicas (TP4 on H100-SXM, profiled model) behind
the power_of_two router serves Poisson traffic with Azure-conversation-like lengths at a
fixed rate per replica, so a run of N requests covers N / rate seconds of serving. Each
size runs in a fresh process (`simulate()` then `summary()`); the script prints wall
time, peak RSS and the log-log slope between sizes (1 = linear), and writes the plot.

    python benchmarks/bench_scale.py [--sizes 1e4,3e4,1e5,3e5,1e6] [--replicas 64] [--svg docs/img/scale.svg]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from servesim import EngineConfig, LengthDist, Scenario, WorkloadConfig, simulate
n, replicas, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
IN = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)
OUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)
sc = Scenario(model="llama-3.1-70b", gpu="h100-sxm", engine=EngineConfig(tp=4), replicas=replicas,
              router="power_of_two", workload=WorkloadConfig(num_requests=n, rate=rate * replicas, input=IN,
              output=OUT, seed=1))
t0 = time.perf_counter()
result = simulate(sc)
t1 = time.perf_counter()
s = result.summary()
t2 = time.perf_counter()
print(json.dumps({"n": n, "sim_s": t1 - t0, "summary_s": t2 - t1, "rss_gb": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1e6, "served_s": s["duration_s"], "completed": s["completed"]}))
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
    ap.add_argument("--sizes", default="1e4,3e4,1e5,3e5,1e6")
    ap.add_argument("--replicas", type=int, default=64)
    ap.add_argument("--rate", type=float, default=2.0, help="requests per second per replica")
    ap.add_argument("--svg", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img" / "scale.svg")
    args = ap.parse_args()
    rows = []
    for n in (int(float(x)) for x in args.sizes.split(",")):
        res = subprocess.run([sys.executable, "-c", CHILD, str(n), str(args.replicas), str(args.rate)],
                             capture_output=True, text=True)  # fmt: skip
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
        print(f"{n:>10,} requests ({r['served_s']:,.0f} s served): simulate {r['sim_s']:.1f} s "
              f"({n / r['sim_s']:,.0f}/s), summary {r['summary_s']:.1f} s, peak RSS {r['rss_gb']:.2f} GB{slope}",
              flush=True)  # fmt: skip
    if len(rows) > 1:
        svg_plot(rows, args.svg)
        print(f"wrote {args.svg}")


if __name__ == "__main__":
    main()
