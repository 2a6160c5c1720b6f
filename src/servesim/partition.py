"""A fleet split into independent groups of replicas, simulated in parallel: local processes or Ray workers.

Arrivals are dealt to the `partitions` groups in turn (request k to group k mod G) and
each group routes among its own replicas with the scenario's router, so groups never
exchange state: each is an ordinary simulation of its share of the stream, run wherever
there is a core, and the results are joined (replica numbers offset group by group).

What is approximated at the boundary: the deal is blind to load, so a group that falls
behind is not relieved by the others, as a router over the whole fleet would relieve it;
within a group everything is as in one simulation. With one replica per group and round
robin the split is exact (the same requests meet the same replicas).
"""

from __future__ import annotations

import gc
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from servesim.api import Result, no_cycle_collection, run_share
from servesim.config import Scenario
from servesim.sim.deployment import plan


def simulate_partitioned(sc: Scenario, workers: int | None = None, ray_address: str | None = None,
                         stream: bool = False, records_dir: Path | None = None) -> Result:  # fmt: skip
    """Simulate the scenario's `partitions` groups apart (on `workers` local processes or a Ray cluster);
    streamed, each group writes its records to its own file in `records_dir` if given."""
    plan(sc)  # every rule, once, before any worker starts
    groups = sc.partitions
    part = sc.model_copy(update={"replicas": sc.replicas // groups, "partitions": 1})
    files = [records_dir / f"requests-{g}.parquet" if records_dir else None for g in range(groups)]
    jobs = [(part, (g, groups), stream, files[g]) for g in range(groups)]
    if ray_address:
        from servesim.ray_util import connect

        ray = connect(ray_address)
        remote = ray.remote(run_share)
        shares = ray.get([remote.remote(*job) for job in jobs])
    elif (workers or 1) > 1:
        # no collector passes while results are pickled and unpickled: many objects, no cycles
        with ProcessPoolExecutor(min(workers, groups), initializer=gc.disable) as pool, no_cycle_collection():
            shares = list(pool.map(run_share, *zip(*jobs, strict=True)))
    else:
        shares = [run_share(*job) for job in jobs]
    with no_cycle_collection():
        return join(sc, shares)


def join(sc: Scenario, shares: list[tuple[Result, int, int]]) -> Result:
    """One result from the groups' results, in group order (replica numbers offset accordingly)."""
    first, reps = shares[0][0], len(shares[0][0].replica_info)
    streamed = first.streamed
    if streamed:
        for res, _, _ in shares[1:]:
            streamed.merge(res.streamed)
    requests = []
    for g, (res, _, _) in enumerate(shares):
        for r in res.raw_requests:
            r.segments = [(rid + g * reps, a, b) for rid, a, b in r.segments]
            requests.append(r)
    requests.sort(key=lambda r: r.id)
    hits, queries = sum(s[1] for s in shares), sum(s[2] for s in shares)
    note = f"{sc.partitions} partitions of {sc.replicas // sc.partitions} replicas, arrivals dealt in turn"
    return Result(
        sc,
        [m for res, _, _ in shares for m in res.memories],
        requests,
        [st for res, _, _ in shares for st in res.replica_steps],
        [e for res, _, _ in shares for e in res.iter_ends],
        hits / queries if queries else None,
        first.perf_model,
        {},
        [info for res, _, _ in shares for info in res.replica_info],
        sum(res.host_w for res, _, _ in shares),
        None,
        notes=[*first.notes, note],
        streamed=streamed,
    )


def default_workers(sc: Scenario) -> int:
    return min(sc.partitions, os.cpu_count() or 1)
