"""Run a search: evaluate candidates in parallel (local processes or Ray), store each result as it lands.

Candidates that differ only in their replica count form a group. Its smallest member is
searched first, and its capacity, scaled by the replica ratio, seeds the bracket of the
others (reusing work). Results depend only on that, never on completion order, so local
and Ray runs agree. Finished evaluations are read back from the store, never recomputed.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict

from servesim.config import Scenario
from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.models import get_model
from servesim.search.capacity import SLOTarget, find_capacity
from servesim.search.space import Candidate, SearchSpace, expand, infeasible
from servesim.search.store import ResultStore

MIN_ARRIVAL_S = 20.0  # seconds of arrivals each capacity run spans at least (up to 4x num_requests)
OBJECTIVES = {
    "goodput_per_dollar": "requests served within the SLOs per dollar",
    "goodput_per_gpu": "requests per second within the SLOs per GPU",
    "goodput_per_watt": "requests per second within the SLOs per kW",
    "tokens_per_joule": "tokens (input and output) per joule at the SLO capacity, GPUs and hosts",
}


def evaluate(
    cand: dict, base_json: str, targets: list[tuple], num_requests: int, rel_tol: float, hint: float | None
) -> dict:
    """Find one candidate's capacity and its figures of merit there (runs in a worker)."""
    started = time.perf_counter()
    c = Candidate(**cand)
    base = Scenario.model_validate_json(base_json)
    slo = [SLOTarget(*t) for t in targets]
    out = {"candidate": cand, "label": c.label(), "gpus": c.gpus}
    reason = infeasible(c, base)
    if reason:
        return out | {"feasible": False, "reason": reason, "capacity": 0.0, "sims": 0, "seconds": 0.0}
    scenario = c.scenario(base)

    def at(rate: float) -> Scenario:
        """The candidate at `rate`: at least MIN_ARRIVAL_S of arrivals, so queues can build if they will."""
        burst = math.isinf(rate)
        n = num_requests if burst else min(4 * num_requests, max(num_requests, math.ceil(rate * MIN_ARRIVAL_S)))
        arrival = "burst" if burst else scenario.workload.arrival
        wl = scenario.workload.model_copy(
            update={"num_requests": n, "rate": 1.0 if burst else rate, "arrival": arrival}
        )
        return scenario.model_copy(update={"workload": wl})

    try:
        cap = find_capacity(at, slo, rel_tol, hint)
    except ServesimError as e:  # a setting the checks above could not foresee: the candidate cannot run
        return out | {"feasible": False, "reason": str(e), "capacity": 0.0, "sims": 0, "seconds": 0.0}
    s = cap["summary"]
    out |= {
        "feasible": True,
        "capacity": cap["capacity"],
        "sims": len(cap["runs"]),
        "runs": cap["runs"],
        "seconds": time.perf_counter() - started,
    }
    if s is None or cap["capacity"] <= 0:
        return out | {"reason": "no rate meets the SLOs"}
    usd_h = s["cost"]["total_usd"] / s["duration_s"] * 3600
    watts = s["energy"]["avg_power_w"]
    return out | {
        "perf_model": s["perf_model"].split(" (")[0],
        "usd_per_hour": usd_h,
        "avg_power_w": watts,
        "ttft_p90_ms": s["ttft_ms"]["p90"],
        "tpot_p90_ms": s["tpot_ms"]["p90"],
        "e2el_p90_ms": s["e2el_ms"]["p90"],
        "output_tok_s": s["output_throughput"],
        "goodput_per_dollar": cap["capacity"] * 3600 / usd_h if usd_h else 0.0,
        "goodput_per_gpu": cap["capacity"] / c.gpus,
        "goodput_per_watt": cap["capacity"] / watts * 1000 if watts else 0.0,
        "tokens_per_joule": s["energy"]["tokens_per_j"] or 0.0,
        "usd_per_m_requests": usd_h / (cap["capacity"] * 3600) * 1e6,
    }


class _Local:
    def __init__(self, workers: int):
        self.pool = ProcessPoolExecutor(workers) if workers > 1 else None
        self.pending: dict[Future, tuple] = {}  # one worker: candidates run one at a time, when waited for

    def submit(self, *args) -> Future:
        if self.pool:
            return self.pool.submit(evaluate, *args)
        f: Future = Future()
        self.pending[f] = args
        return f

    def wait_one(self, running: dict) -> list:
        if not self.pool:  # run the oldest queued candidate now, so each result is stored before the next starts
            f = next(f for f in running if f in self.pending)
            f.set_result(evaluate(*self.pending.pop(f)))
            return [(f, f.result())]
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        return [(f, f.result()) for f in done]

    def close(self):
        if self.pool:
            self.pool.shutdown(cancel_futures=True)


class _Ray:
    def __init__(self, address: str):
        from servesim.ray_util import connect

        self.ray = connect(address)
        self.remote = self.ray.remote(evaluate)

    def submit(self, *args):
        return self.remote.remote(*args)

    def wait_one(self, running: dict) -> list:
        done, _ = self.ray.wait(list(running), num_returns=1)
        return [(ref, self.ray.get(ref)) for ref in done]

    def close(self):
        pass


def context(base: Scenario, targets: list[SLOTarget], num_requests: int, rel_tol: float) -> dict:
    """Everything besides the candidate that shapes an evaluation: part of every store key."""
    varied = {"tp", "pp", "scheduler", "max_num_seqs", "max_num_batched_tokens"}
    scenario = base.model_dump(mode="json", exclude={"engine": varied, "gpu": True, "replicas": True})
    return {
        "scenario": scenario,
        "slo": [str(t) for t in targets],
        "num_requests": num_requests,
        "rel_tol": rel_tol,
        "version": 4,
    }


def objective_check(objective: str, num_requests: int, rate_tol: float, workers: int | None) -> None:
    """Refuse search settings that cannot work, in one line each."""
    if objective not in OBJECTIVES:
        raise ServesimError(f"--objective must be one of {', '.join(OBJECTIVES)}, not '{objective}'")
    if num_requests < 1:
        raise ServesimError(f"--num-requests must be at least 1, not {num_requests}")
    if not 1e-4 <= rate_tol < 1:
        raise ServesimError(f"--rate-tol must be from 0.0001 to below 1 (a relative precision), not {rate_tol}")
    if workers is not None and workers < 1:
        raise ServesimError(f"--workers must be at least 1, not {workers}")


def check_search(base: Scenario, space: SearchSpace, store_path: str) -> None:
    """What makes the whole search impossible fails here, before any candidate runs."""
    from servesim.sim.scheduler import SCHEDULERS

    get_model(base.model)  # unknown names are one clear error, not a search where nothing fits
    for gpu in space.gpus:
        get_gpu(gpu, base.gpu_file)
    for name in space.schedulers:
        SCHEDULERS.get(name)
    expand(space)  # malformed xPyD layouts
    ResultStore(store_path).close()


def run_search(
    base: Scenario,
    space: SearchSpace,
    targets: list[SLOTarget],
    store_path: str,
    num_requests: int = 400,
    rel_tol: float = 0.05,
    workers: int | None = None,
    ray_address: str | None = None,
    progress=None,
) -> dict:
    """Evaluate every candidate of `space` (resuming from the store); returns results and how many were new."""
    check_search(base, space, store_path)
    cands = expand(space)
    ctx = context(base, targets, num_requests, rel_tol)
    store = ResultStore(store_path)
    results: dict[str, dict] = {}
    keys = {c: c.key(ctx) for c in cands}
    groups: dict[Candidate, list[Candidate]] = {}
    for c in cands:
        groups.setdefault(c.base if not c.disaggregated else c, []).append(c)
    for members in groups.values():
        members.sort(key=lambda c: c.replicas)
    base_json = base.model_dump_json()
    tgt = [(t.metric, t.stat, t.ms) for t in targets]
    executor = _Ray(ray_address) if ray_address else _Local(workers or os.cpu_count() or 1)
    running: dict = {}
    evaluated = 0

    def submit(c: Candidate, hint: float | None):
        running[executor.submit(asdict(c), base_json, tgt, num_requests, rel_tol, hint)] = c

    def follow(leader: Candidate, result: dict):
        """Queue the rest of the leader's group, seeded by its capacity."""
        for c in groups.get(leader.base if not leader.disaggregated else leader, [])[1:]:
            if keys[c] in results:
                continue
            cap = result.get("capacity") or 0.0
            hint = cap * c.replicas / leader.replicas if result.get("feasible") and cap > 0 else None
            stored = store.get(keys[c])
            if stored is not None:
                results[keys[c]] = stored
                continue
            submit(c, hint)

    try:
        leaders = [m[0] for m in groups.values()]
        for leader in leaders:
            stored = store.get(keys[leader])
            if stored is not None:
                results[keys[leader]] = stored
                follow(leader, stored)
            else:
                submit(leader, None)
        if progress:
            progress(len(results), len(running), len(cands), results)
        while running:
            for handle, result in executor.wait_one(running):
                c = running.pop(handle)
                store.put(keys[c], result)
                results[keys[c]] = result
                evaluated += 1
                if c is groups.get(c.base if not c.disaggregated else c, [c])[0]:
                    follow(c, result)
                if progress:
                    progress(len(results), len(running), len(cands), results)
    finally:
        executor.close()
        store.close()
    ordered = [results[keys[c]] for c in cands]
    return {"results": ordered, "evaluated": evaluated, "reused": len(cands) - evaluated, "candidates": len(cands)}
