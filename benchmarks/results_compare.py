"""Do two checkouts simulate the same thing? For refactors that must not change results.

Runs thirteen scenarios (policies, routers, prefix caching, profiled and roofline models,
the Azure and Mooncake traces when the shared folder has them) under each checkout's
`src/`, then compares every summary figure and every numeric per-request column within
a relative tolerance, and prints the scenarios that differ with their first differences.

    git worktree add /tmp/before <commit>
    python benchmarks/results_compare.py /tmp/before . [--tol 1e-9]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TRACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "traces"

CHILD = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1] + "/src")
from servesim import LengthDist, Scenario, WorkloadConfig, simulate
from servesim.config import EngineConfig, PowerConfig
IN = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)
OUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)
T = Path(sys.argv[3])
def wl(rate, n=3000, **kw):
    return WorkloadConfig(num_requests=n, rate=rate, input=IN, output=OUT, seed=1, **kw)
cases = {
    "one replica": Scenario(workload=wl(14.0)),
    "roofline": Scenario(workload=wl(14.0), perf_model="roofline"),
    "h200": Scenario(gpu="h200", workload=wl(18.0)),
    "burst": Scenario(workload=wl(float("inf"), arrival="burst")),
    "4 least_tokens": Scenario(workload=wl(56.0), replicas=4, router="least_tokens"),
    "4 round_robin": Scenario(workload=wl(56.0), replicas=4, router="round_robin"),
    "4 least_requests": Scenario(workload=wl(56.0), replicas=4, router="least_requests"),
    "sarathi": Scenario(workload=wl(14.0), engine=EngineConfig(scheduler="sarathi")),
    "overload": Scenario(workload=wl(30.0)),
    "power cap 450 W": Scenario(workload=wl(14.0), power=PowerConfig(cap_w=450)),
}
azure, mooncake = T / "AzureLLMInferenceTrace_conv.csv", T / "mooncake_conversation_trace.jsonl"
if azure.is_file():
    cases["azure trace"] = Scenario(workload=WorkloadConfig(trace=azure, arrival="trace", num_requests=4000))
if mooncake.is_file():
    mc = WorkloadConfig(trace=mooncake, arrival="trace", num_requests=3000)
    cases["mooncake trace"] = Scenario(workload=mc, engine=EngineConfig(enable_prefix_caching=True))
    cases["mooncake prefix_affinity"] = Scenario(workload=mc, engine=EngineConfig(enable_prefix_caching=True),
                                                 replicas=3, router="prefix_affinity")
out = {}
for name, sc in cases.items():
    r = simulate(sc)
    df = r.requests
    cols = {c: df[c].astype(float).fillna(-1).tolist() for c in df.columns if df[c].dtype.kind in "fiub"}
    out[name] = {"summary": json.loads(json.dumps(r.summary(), default=str)), "requests": cols}
Path(sys.argv[2]).write_text(json.dumps(out))
"""


def differences(a, b, tol: float, path: str = "") -> list[str]:
    """What differs; a figure only the newer checkout has is named, not compared (it is new, not changed)."""
    if isinstance(a, dict) and isinstance(b, dict):
        new = [f"{path}/{k}: new" for k in sorted(set(b) - set(a))]
        return new + [d for k in sorted(set(a)) for d in differences(a[k], b.get(k), tol, f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} entries"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, tol, f"{path}[{i}]")]
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return [] if a == b or abs(a - b) <= tol * max(abs(a), abs(b)) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a} vs {b}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--tol", type=float, default=1e-9, help="relative tolerance")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dumps = []
        for i, tree in enumerate((args.before, args.after)):
            path = Path(tmp) / f"{i}.json"
            subprocess.run([sys.executable, "-c", CHILD, tree, str(path), str(TRACES)], check=True)
            dumps.append(json.loads(path.read_text()))
    for name in dumps[0]:
        diffs = differences(dumps[0][name], dumps[1].get(name), args.tol)
        added = [d.split(":")[0] for d in diffs if d.endswith(": new")]
        changed = [d[:300] for d in diffs if not d.endswith(": new")]
        print(f"{name}: " + ("same" if not changed else f"{len(changed)} differences, e.g. {'; '.join(changed[:3])}")
              + (f" (new: {', '.join(added)})" if added else ""))


if __name__ == "__main__":
    main()
