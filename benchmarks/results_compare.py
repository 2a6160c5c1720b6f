"""Do two checkouts simulate the same thing? For refactors that must not change results.

Runs thirty-odd scenarios (policies, routers, prefix caching, profiled and roofline models,
pipeline parallelism, disaggregation, migration, semi-PD, the CPU swap tier, tenants,
programs, parallel samples, speculative decoding, a power budget, a streamed run, and the
Azure and Mooncake traces when the shared folder has them) under each checkout's
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
from servesim.config import (Duration, EngineConfig, MigrationConfig, PoolConfig, PowerConfig, ProgramConfig,
                             SemiPDConfig, TenantConfig)
IN = LengthDist(dist="lognormal", mean=1155, sigma=0.99, min=2, max=14050)
OUT = LengthDist(dist="lognormal", mean=211, sigma=0.86, min=7, max=1000)
T = Path(sys.argv[3])
def wl(rate, count=3000, **kw):
    return WorkloadConfig(num_requests=count, rate=rate, input=IN, output=OUT, seed=1, **kw)
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
    "power budget": Scenario(workload=wl(40.0), replicas=3, router="least_tokens",
                             power=PowerConfig(budget_w=1900, interval_s=0.5)),
    "pp 2": Scenario(model="llama-3.1-70b", workload=wl(6.0, 1500), engine=EngineConfig(tp=2, pp=2)),
    "disaggregated": Scenario(workload=wl(25.0), prefill=PoolConfig(replicas=3),
                              decode=PoolConfig(gpu="h200", replicas=1)),
    "disaggregated tp2 pp2": Scenario(model="llama-3.1-70b", workload=wl(6.0, 1500),
                                      prefill=PoolConfig(replicas=1, engine=EngineConfig(tp=2, pp=2)),
                                      decode=PoolConfig(replicas=1, engine=EngineConfig(tp=4)), perf_model="roofline"),
    "migration": Scenario(workload=wl(50.0), replicas=4, router="round_robin",
                          migration=MigrationConfig(enabled=True)),
    "migration tp2": Scenario(model="qwen2.5-14b", workload=wl(30.0), replicas=3, router="round_robin",
                              engine=EngineConfig(tp=2, gpu_memory_utilization=0.3),
                              migration=MigrationConfig(enabled=True, threshold=0.05)),
    "semi-pd": Scenario(workload=wl(14.0), semi_pd=SemiPDConfig(enabled=True)),
    "swap priority tenants": Scenario(engine=EngineConfig(scheduler="priority", preemption_mode="swap",
                                                          swap_group_blocks=64), workload=WorkloadConfig(
        num_requests=2000, seed=1, tenants=[
            TenantConfig(name="batch", rate=3.8, priority=1, input=LengthDist(mean=2000, sigma=0.5, max=8000),
                         output=LengthDist(mean=1000, sigma=0.5, max=4000)),
            TenantConfig(name="online", rate=3.0, priority=0, arrival="gamma", burstiness=0.1,
                         input=LengthDist(mean=1000, sigma=0.6, max=8000),
                         output=LengthDist(mean=200, sigma=0.6, max=1000))])),
    "swap qwen3 tp8": Scenario(model="qwen3-30b-a3b", engine=EngineConfig(tp=8, gpu_memory_utilization=0.13,
                               preemption_mode="swap", swap_space=0.05), workload=wl(60.0, 2000)),
    "vtc": Scenario(engine=EngineConfig(scheduler="vtc"), workload=WorkloadConfig(
        num_requests=2000, seed=1, input=IN, output=OUT, tenants=[TenantConfig(name="a", rate=12.0),
                                                                   TenantConfig(name="b", rate=4.0)])),
    "agents continuum offload": Scenario(engine=EngineConfig(scheduler="continuum",
                                                            scheduler_options={"offload": True}),
                                         workload=WorkloadConfig(num_requests=300, rate=1.0, seed=1, programs=
                                             ProgramConfig(calls=LengthDist(dist="fixed", mean=6, max=6),
                                                           gap=Duration(mean_s=2.0)))),
    "agents dag autellix": Scenario(engine=EngineConfig(scheduler="autellix"), workload=WorkloadConfig(
        num_requests=300, rate=1.5, seed=1, programs=ProgramConfig(shape="dag", fanout=3,
                                                                   calls=LengthDist(dist="fixed", mean=3, max=3)))),
    "n samples": Scenario(workload=wl(3.0, 600, n=4)),
    "speculative": Scenario(workload=wl(14.0), engine=EngineConfig(speculative={"method": "eagle"})),
    "sjf": Scenario(workload=wl(16.0), engine=EngineConfig(scheduler="sjf")),
    "no_evict": Scenario(workload=wl(16.0), engine=EngineConfig(scheduler="no_evict")),
    "static": Scenario(workload=wl(10.0), engine=EngineConfig(scheduler="static")),
    "layered_prefill mixtral": Scenario(model="mixtral-8x7b", workload=wl(6.0, 1000),
                                        engine=EngineConfig(tp=2, scheduler="layered_prefill")),
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
streamed = simulate(cases["4 least_tokens"], stream=True)  # a streamed run: its summary from the tally
out["4 least_tokens streamed"] = {"summary": json.loads(json.dumps(streamed.summary(), default=str))}
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
