"""One simulation: a scenario planned, its deployment built, its workload served chunk by chunk, and what it
produced gathered into a `Result` (`run_share`). A fleet split into partitions runs a share of the workload
per group (`partition.py`); `api.simulate` chooses."""

from __future__ import annotations

import gc
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from servesim.config import Scenario
from servesim.result import Result
from servesim.sim.deployment import build, plan
from servesim.stream import Collector
from servesim.workload import generate_chunks

TENANT_NOTE = "streamed: per-tenant metrics and fairness need the requests' records; run without --stream for them"
CHUNK = 8192  # arrivals taken into the simulation at a time (a streamed run collects between chunks)
STREAM_NOTE = ("streamed: requests were summarised as they finished; TTFT, TPOT, E2EL and ITL percentiles come "
               "from 0.1%-wide histogram bins (within 0.05%)")


BYTES_PER_REQUEST = 3 * 1024  # an in-memory run's peak per request (measured: docs/benchmarks.md, "Memory")


def available_bytes() -> float:
    """Memory the machine has free now (Linux/POSIX; inf where it cannot tell)."""
    import os

    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return float("inf")


def memory_warning(sc: Scenario, stream: bool) -> str | None:
    """One line when an in-memory run would need more than 80% of the free memory, suggesting --stream."""
    wl = sc.workload
    if stream or wl.num_requests is None:
        return None
    need = BYTES_PER_REQUEST * wl.num_requests * wl.n
    free = available_bytes()
    if need <= 0.8 * free:
        return None
    return (f"an in-memory run of {wl.num_requests * wl.n:,} requests needs about {need / 2**30:.1f} GiB "
            f"({BYTES_PER_REQUEST // 1024} KiB each), and {free / 2**30:.1f} GiB is free: pass --stream (with -o DIR "
            "to keep the records) to summarise as the run goes in bounded memory")  # fmt: skip


@contextmanager
def no_cycle_collection():
    """Pause Python's cyclic garbage collector: a run builds many long-lived objects and no cycles worth
    collecting, and the collector's repeated scans of them cost about a third of the run's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # everything the run allocated sits in the youngest generation; moved to the oldest unscanned
            # (freeze then unfreeze), the first collection after re-enabling does not walk it all
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def run_share(sc: Scenario, share: tuple[int, int] = (0, 1), stream: bool = False, records: Path | None = None,
              progress: Callable[[int], None] | None = None) -> Result:  # fmt: skip
    """The result of serving a share of the workload (`generate`'s share); streamed, writing the records to
    the Parquet file `records` if given. `progress` is told how many more requests the run has taken in."""
    with no_cycle_collection():
        return _simulate(sc, share, stream, records, progress)


def _simulate(sc: Scenario, share: tuple[int, int], stream: bool, records: Path | None,
              progress: Callable[[int], None] | None) -> Result:  # fmt: skip
    pl = plan(sc)
    done: list | None = [] if stream else None  # a streamed run's finished and refused requests, collected as it goes
    cluster = build(pl, done)
    collector = Collector(cluster, done, sc.slo, cluster.pool_members, records) if stream else None
    requests = []  # every request, kept unless streamed

    def chunks():
        for chunk in generate_chunks(sc.workload, share, CHUNK, cluster.specs[0].unit_tokens):
            if not stream:
                requests.extend(chunk)
            yield chunk
            if progress is not None:  # (the chunk has been served up to the next one's first arrival)
                progress(len(chunk))

    cluster.serve(chunks(), collector.collect if collector else None)
    report = cluster.report()
    logs = [] if stream else [rep.log() for rep in cluster.replicas]
    return Result(
        sc,
        report,
        requests,
        [steps for steps, _ in logs],
        [ends for _, ends in logs],
        pl.host_w,
        notes=pl.notes + [STREAM_NOTE] * stream + [TENANT_NOTE] * (stream and bool(sc.workload.tenants))
        + report.notes,
        streamed=collector.close() if collector else None,
    )
