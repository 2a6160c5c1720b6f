"""Streamed runs: a fleet-day of traffic in memory that does not grow with the number of requests.

The workload is taken a chunk of arrivals at a time (`generate_chunks`). Each time the
simulation reaches the next chunk, the `Collector` takes the requests that finished,
turns them into records (written to Parquet if asked, then dropped), adds them to a
`Tally` (counts and sums exact; TTFT, TPOT, E2EL and ITL as bounded-error histograms,
`metrics/sketch.py`), folds every replica's new steps into its `StepTotals`, and lets
each replica forget the iteration end times no request still in the system can need
(`Meter.trim`). What stays is the arrays of arrival times and lengths (16 bytes a
request) and what is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from servesim.metrics import StepTotals, Tally, itl_table, pool_counts, request_records

if TYPE_CHECKING:
    import pandas as pd

    from servesim.sim.cluster import Cluster
    from servesim.sim.request import Request


@dataclass
class Streamed:
    """What a streamed run kept: the tally of its requests, its replicas' step totals, its records' files."""

    tally: Tally
    steps: list[StepTotals]
    paths: list[Path] = field(default_factory=list)

    def read_records(self) -> pd.DataFrame:
        import pandas as pd

        from servesim.errors import ServesimError

        if not self.paths:
            raise ServesimError("a streamed run keeps no per-request records in memory; give it a directory to "
                                "write them to (--output / records_dir)")  # fmt: skip
        return pd.concat([pd.read_parquet(p) for p in self.paths], ignore_index=True)

    def merge(self, other: Streamed) -> None:
        """Add another group's run, whose replicas are numbered after these."""
        self.tally.merge(other.tally)
        self.steps += other.steps
        self.paths += other.paths


class Collector:
    """Takes finished requests and steps off a cluster's replicas as the run goes: `done` is the list the
    cluster was built to put finished and refused requests in (`deployment.build(plan, done)`)."""

    def __init__(self, cluster: Cluster, done: list[Request], slo, pools: dict[str, list[int]],
                 path: Path | None = None):  # fmt: skip
        self.cluster, self.done, self.pools = cluster, done, pools
        reps = cluster.replicas
        assert [rep.index for rep in reps] == list(range(len(reps)))  # records name replicas by index
        steps = [StepTotals(rep.power.idle_w * rep.gpus) for rep in reps]
        self.replica_of = cluster.replica_of
        self.out = Streamed(Tally(slo, self.replica_of[-1] + 1, exact=False), steps, [path] if path else [])
        self._writer = None

    def collect(self) -> None:
        """Tally and write what finished since the last call; forget what nothing needs any more."""
        reps = self.cluster.replicas
        batch = sorted(self.done, key=lambda r: r.id)
        self.done.clear()
        meters = [rep.meter for rep in reps]
        itls = itl_table(batch, [m.iter_end for m in meters], bases=[m.base for m in meters])
        records = request_records(batch, itls, self.replica_of)
        self.out.tally.add(records, itls.gaps, itls.counts)
        self.out.tally.add_programs(batch)
        if self.pools:
            self.out.tally.add_pools(pool_counts(batch, self.pools, self.replica_of))
        self._write(records)
        for rep, totals in zip(reps, self.out.steps, strict=True):
            totals.add(rep.meter.log.take())
        for rep, keep in zip(reps, self._needed(), strict=True):
            rep.meter.trim(keep, rep.it)

    def _needed(self) -> list[int]:
        """Per replica, the first iteration whose end time a request still in the system may need (for its ITLs)."""
        reps = self.cluster.replicas
        first = [rep.it for rep in reps]
        live = list(self.cluster.in_flight())
        for rep in reps:
            s = rep.state
            for seq in s.running.values():
                if seq.decoding:
                    first[rep.index] = min(first[rep.index], seq.seg_start)
            live += s.running.values()
            live += s.waiting
            live += s.incoming
        for seq in live:
            for i, a, _ in seq.rec.segments:
                if a < first[i]:
                    first[i] = a
        return first

    def _write(self, records) -> None:
        if not self.out.paths or not records.rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(dict(records))
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.out.paths[0], table.schema)
        self._writer.write_table(table)

    def close(self) -> Streamed:
        self.collect()
        if self._writer is not None:
            self._writer.close()
        elif self.out.paths:  # nothing finished: an empty file with the columns
            import pandas as pd

            pd.DataFrame(dict(request_records([], itl_table([], [])))).to_parquet(self.out.paths[0], index=False)
        return self.out
