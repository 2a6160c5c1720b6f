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

from servesim.config import Scenario
from servesim.result import Result
from servesim.run import no_cycle_collection, run_share
from servesim.sim.cluster import ClusterReport
from servesim.sim.deployment import plan


def simulate_partitioned(sc: Scenario, workers: int | None = None, ray_address: str | None = None,
                         stream: bool = False, records_dir: Path | None = None) -> Result:  # fmt: skip
    """Simulate the scenario's `partitions` groups apart (on `workers` local processes or a Ray cluster);
    streamed, each group writes its records to its own file in `records_dir` if given."""
    plan(sc)  # every rule, once, before any worker starts
    groups = sc.partitions
    scale = sc.autoscale
    if scale.policy is not None:  # each group autoscales its share of the fleet
        scale = scale.model_copy(update={"min_replicas": scale.min_replicas // groups,
                                         "max_replicas": scale.max_replicas // groups})  # fmt: skip
    part = sc.model_copy(update={"replicas": sc.replicas // groups, "partitions": 1, "autoscale": scale})
    files = [records_dir / f"requests-{g}.parquet" if records_dir else None for g in range(groups)]
    jobs = [(part, (g, groups), stream, files[g]) for g in range(groups)]
    if ray_address:
        from servesim.ray_util import connect

        ray = connect(ray_address)
        remote = ray.remote(run_share)
        results = ray.get([remote.remote(*job) for job in jobs])
    elif (workers or 1) > 1:
        # no collector passes while results are pickled and unpickled: many objects, no cycles
        with ProcessPoolExecutor(min(workers, groups), initializer=gc.disable) as pool, no_cycle_collection():
            results = list(pool.map(run_share, *zip(*jobs, strict=True)))
    else:
        results = [run_share(*job) for job in jobs]
    with no_cycle_collection():
        return join(sc, results)


def join(sc: Scenario, results: list[Result]) -> Result:
    """One result from the groups' results, in group order (replica numbers offset accordingly)."""
    first, reps = results[0], len(results[0].deployment.replicas)
    streamed = first.streamed
    if streamed:
        for res in results[1:]:
            streamed.merge(res.streamed)
    requests = []
    for g, res in enumerate(results):
        for r in res.raw_requests:
            rec = r.record
            rec.segments = [(i + g * reps, a, b) for i, a, b in rec.segments]
            requests.append(r)
    requests.sort(key=lambda r: r.id)
    note = f"{sc.partitions} partitions of {sc.replicas // sc.partitions} replicas, arrivals dealt in turn"
    return Result(
        sc,
        ClusterReport.join([res.deployment for res in results]),
        requests,
        [st for res in results for st in res.replica_steps],
        [e for res in results for e in res.iter_ends],
        sum(res.host_w for res in results),
        notes=[*first.notes, note],
        streamed=streamed,
    )


def default_workers(sc: Scenario) -> int:
    return min(sc.partitions, os.cpu_count() or 1)
