"""`simulate(scenario) -> Result`: the Python entry point."""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from servesim.config import Scenario
from servesim.errors import ServesimError
from servesim.layout import Layout
from servesim.metrics import (
    ITLs,
    Records,
    StepTotals,
    Tally,
    fold_steps,
    itl_table,
    pool_counts,
    pool_stats,
    request_records,
    summarize,
    token_times,
)
from servesim.metrics.energy import energy_cost_summary, power_series
from servesim.metrics.tenants import tenant_summary
from servesim.perf.profiled import describe
from servesim.sim.deployment import build, plan
from servesim.sim.memory import MemoryPlan
from servesim.sim.power_control import PowerController
from servesim.sim.request import Request
from servesim.sim.semi_pd import SemiPDController
from servesim.stream import Collector, Streamed
from servesim.workload import generate_chunks

if TYPE_CHECKING:
    import pandas as pd


def _memory(m: MemoryPlan) -> dict:
    return {"weights_gib_per_gpu": m.weights_gib, "kv_cache_gib_per_gpu": m.kv_gib, "kv_cache_tokens": m.kv_tokens}


TENANT_NOTE = "streamed: per-tenant metrics and fairness need the requests' records; run without --stream for them"
CHUNK = 8192  # arrivals taken into the simulation at a time (a streamed run collects between chunks)


STREAM_NOTE = ("streamed: requests were summarised as they finished; TTFT, TPOT, E2EL and ITL percentiles come "
               "from 0.1%-wide histogram bins (within 0.05%)")


@dataclass
class Result:
    """What a simulation produced: requests, per-replica step logs and iteration times."""

    scenario: Scenario
    memories: list[MemoryPlan]  # per replica
    raw_requests: list[Request]
    replica_steps: list[dict[str, np.ndarray]]
    iter_ends: list[np.ndarray]
    kv_hit_rate: float | None
    perf_model: str = "roofline"
    pools: dict[str, list[int]] = field(default_factory=dict)  # pool name -> replica indices
    replica_info: list[dict] = field(default_factory=list)  # per replica: gpus, idle_w, usd_per_s, busy_s
    host_w: float = 0.0  # constant power of the deployment's hosts
    power_control: dict | None = None  # what the cluster power controller did
    notes: list[str] = field(default_factory=list)  # what was accepted but assumed (see sim/deployment.py)
    # a streamed run (`stream.py`) keeps no requests, steps or iteration ends, only these
    streamed: Streamed | None = None
    _summary: dict | None = field(default=None, repr=False)

    def title(self) -> str:
        """One line naming the deployment: model, GPUs, layout, scheduler, performance model."""
        sc = self.scenario

        def shape(gpu: str, e, count: int) -> str:
            return f"{count} x " * (count > 1) + f"{gpu} {Layout.of(e).label()}, scheduler {e.scheduler}"

        if sc.disaggregated:
            pools = (("prefill", sc.prefill), ("decode", sc.decode))
            where = "; ".join(f"{n}: {shape(p.gpu or sc.gpu, p.engine, p.replicas)}" for n, p in pools)
        else:
            where = shape(sc.gpu, sc.engine, sc.replicas)
        return f"{sc.model} on {where} ({self.perf_model})"

    def power_series(self, bin_s: float = 1.0) -> pd.DataFrame:
        """Mean power per replica and for the cluster (with hosts) in each `bin_s` window."""
        import pandas as pd

        return pd.DataFrame(power_series(self._step_totals(bin_s), self.host_w, self.summary()["duration_s"]))

    def _step_totals(self, bin_s: float = 1.0) -> list[StepTotals]:
        """Each replica's step log folded with `bin_s` power windows (a streamed run has them at its own)."""
        if self.streamed:
            kept = self.streamed.steps[0].bin_s
            if bin_s != kept:
                raise ServesimError(f"a streamed run keeps power in {kept} s windows only")
            return self.streamed.steps
        return [fold_steps(s, r["idle_w"] * r["gpus"], bin_s) for s, r in zip(self.replica_steps, self.replica_info,
                                                                             strict=True)]  # fmt: skip

    @cached_property
    def tally(self) -> Tally:
        """What the summary needs of the requests' records."""
        if self.streamed:
            return self.streamed.tally
        tally = Tally(self.scenario.slo, len(self.replica_info))
        tally.add(self.records, self._itls.gaps)
        tally.add_programs(self.raw_requests)
        tally.add_pools(pool_counts(self.raw_requests, self.pools))
        return tally

    @property
    def memory(self) -> MemoryPlan:
        """The first replica's memory plan."""
        return self.memories[0]

    @property
    def steps(self) -> dict[str, np.ndarray]:
        """The first replica's step log."""
        return self.replica_steps[0]

    @cached_property
    def _itls(self) -> ITLs:
        return itl_table(self.raw_requests, self.iter_ends)

    @cached_property
    def records(self) -> Records:
        """One entry per request in each column (numpy arrays): what `requests` holds."""
        if self.streamed:
            return Records({k: v.to_numpy() for k, v in self.requests.items()})
        return request_records(self.raw_requests, self._itls)

    @cached_property
    def requests(self) -> pd.DataFrame:
        """One row per request: times in seconds, lengths, preemptions, cached tokens, replica."""
        import pandas as pd

        if self.streamed:  # read back from where the run wrote them
            return self.streamed.read_records()
        return pd.DataFrame(self.records)

    def token_times(self, request_id: int) -> np.ndarray:
        return token_times(self.raw_requests[request_id], self.iter_ends)

    def summary(self) -> dict:
        if self._summary is None:
            blocks = [m.num_blocks for m in self.memories]
            tally, totals = self.tally, self._step_totals()
            s = summarize(tally, totals, blocks, self.kv_hit_rate, self.scenario.workload.all_at_once)
            s["perf_model"] = self.perf_model
            if self.notes:
                s["notes"] = self.notes
            if self.power_control:
                s["power_control"] = self.power_control
            s.update(energy_cost_summary(tally, totals, self.replica_info, s["duration_s"], self.host_w))
            if self.scenario.workload.n > 1 and "programs" in s:  # a prompt's samples are kept as one program
                s["prompts"] = s.pop("programs")
            s["memory"] = _memory(self.memory)
            swap = [r.get("swap_s", 0.0) for r in self.replica_info]
            if any(swap):
                s["kv_cache"]["swap_s"] = sum(swap)  # copy time to and from the CPU tier
            tenants = self.scenario.workload.tenants
            if tenants and not self.streamed:
                s.update(tenant_summary(self.records, [t.name for t in tenants], [t.weight for t in tenants],
                                        s["duration_s"]))  # fmt: skip
            if self.pools:
                s["memory"] = {name: _memory(self.memories[ids[0]]) for name, ids in self.pools.items()}
                s["pools"] = pool_stats(s["replicas"], self.pools, tally.pool_served)
                for name, ids in self.pools.items():
                    s["pools"][name]["avg_power_w"] = sum(s["energy"]["replica_avg_power_w"][i] for i in ids)
                s["kv_transfer_ms"] = tally.kv_transfer.stats()  # (NaN where none)
            self._summary = s
        return self._summary

    def save(self, out_dir: str | Path, fmt: str = "parquet") -> list[Path]:
        """Write summary.json, requests.parquet|csv, scenario.json and power.csv into out_dir (a streamed
        run wrote its records as it went: they are listed, not written again)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "summary.json", out / "scenario.json", out / "power.csv"]
        paths[0].write_text(json.dumps(self.summary(), indent=2) + "\n")
        paths[1].write_text(self.scenario.model_dump_json(indent=2) + "\n")
        self.power_series().to_csv(paths[2], index=False, float_format="%.6g")
        if self.streamed:
            return paths + self.streamed.paths
        records = out / f"requests.{fmt}"
        if fmt == "csv":
            self.requests.to_csv(records, index=False)
        else:
            self.requests.to_parquet(records, index=False)
        return paths + [records]


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


def simulate(scenario: Scenario | None = None, workers: int | None = None, ray_address: str | None = None,
             stream: bool = False, records_dir: str | Path | None = None) -> Result:  # fmt: skip
    """Simulate the scenario's deployment (co-located or disaggregated) serving its workload to completion.

    A fleet in `partitions` groups runs its groups on `workers` local processes (default: one per
    core) or on the Ray cluster at `ray_address` (see `partition.py`). A `stream`ed run keeps no
    requests in memory (`stream.py`): its summary is gathered as it goes, its per-request records
    are written to Parquet in `records_dir` if given."""
    sc = scenario or Scenario()
    if workers is not None and workers < 1:
        raise ServesimError(f"workers must be at least 1, not {workers}")
    if records_dir is not None and not stream:
        raise ServesimError("records_dir is where a streamed run writes its records; pass stream=True too")
    out = Path(records_dir) if records_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if sc.partitions > 1:
        from servesim.partition import default_workers, simulate_partitioned

        return simulate_partitioned(sc, workers or default_workers(sc), ray_address, stream, out)
    return run_share(sc, stream=stream, records=out / "requests.parquet" if out else None)[0]


def run_share(sc: Scenario, share: tuple[int, int] = (0, 1), stream: bool = False,
              records: Path | None = None) -> tuple[Result, int, int]:  # fmt: skip
    """The result of serving a share of the workload (`generate`'s share), with the prefix-cache blocks
    hit and looked up; streamed, writing the records to the Parquet file `records` if given."""
    with no_cycle_collection():
        return _simulate(sc, share, stream, records)


def _controller_notes(cluster) -> list[str]:
    """What run-time controllers with nothing else to report did (semi-PD's SM split)."""
    out = []
    for c in cluster.controllers:
        if isinstance(c, SemiPDController) and c.shares:
            mean = sum(s for _, s in c.shares) / len(c.shares)
            out.append(f"semi-PD: the prefill worker's SM share moved {c.moves} times (mean {mean:.2f}, last "
                       f"{c.shares[-1][1]:.2f})")  # fmt: skip
    return out


def _simulate(sc: Scenario, share: tuple[int, int], stream: bool, records: Path | None) -> tuple[Result, int, int]:
    pl = plan(sc)
    cluster = build(pl)
    split = sc.disaggregated or sc.semi_pd.enabled
    pools = {pool.name: [r.rid for r in pool.replicas] for pool in cluster.pools} if split else {}
    collector = Collector(cluster, sc.slo, pools, records) if stream else None
    requests = []  # every request, kept unless streamed

    def accepted(chunk: list[Request]) -> list[Request]:
        """The requests that arrive on their own (a program's later calls are released as it runs)."""
        ok = []
        for r in chunk:
            if r.prompt_len + r.output_len > pl.max_len:
                r.rejected = True  # vLLM refuses requests longer than max_model_len
                if collector:
                    collector.rejected.append(r)
            elif not r.pending:
                ok.append(r)
        if programs:  # a program with a refused call is refused whole
            for prog in {r.program for r in chunk if r.rejected}:
                for r in prog.calls:
                    if not r.rejected and collector:
                        collector.rejected.append(r)
                    r.rejected = True
            ok = [r for r in ok if not r.rejected]
        if not collector:
            requests.extend(chunk)
        return ok

    programs = sc.workload.grouped  # requests in groups, refused whole
    unit = sc.workload.unit_tokens(pl.pools[0].engine.block_size)
    chunks = generate_chunks(sc.workload, share, CHUNK, unit)
    cluster.serve((accepted(c) for c in chunks), collector.collect if collector else None)
    replicas = cluster.replicas
    memories = [p.memory for p in pl.pools for _ in range(p.replicas * p.layout.streams)]
    hits = sum(r.state.kv.hit_blocks for r in replicas)
    queries = sum(r.state.kv.query_blocks for r in replicas)
    power = next((c for c in cluster.controllers if isinstance(c, PowerController)), None)
    result = Result(
        sc,
        memories,
        requests,
        [] if stream else [r.meter.log.arrays() for r in replicas],
        [] if stream else [r.meter.iter_end[: r.it] for r in replicas],
        hits / queries if queries else None,
        " / ".join(sorted({describe(r.perf) for r in replicas})),
        pools,
        [dict(gpus=r.gpus, idle_w=r.power.idle_w, usd_per_s=r.usd_per_s, busy_s=r.meter.busy_s,
              swap_s=r.state.swap_total_s) for r in replicas],  # fmt: skip
        pl.host_w,
        power.summary(max((r.now for r in replicas), default=0.0)) if power else None,
        notes=pl.notes + [STREAM_NOTE] * stream + [TENANT_NOTE] * (stream and bool(sc.workload.tenants))
        + _controller_notes(cluster),
        streamed=collector.close() if collector else None,
    )
    return result, hits, queries
