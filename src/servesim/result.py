"""What a simulation produced (`Result`): its requests, every replica's step log and iteration times, and
the summary built from them, as `vllm bench serve` defines the metrics."""

from __future__ import annotations

import json
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
from servesim.metrics.tally import billed_seconds
from servesim.metrics.tenants import tenant_summary
from servesim.sim.cluster import ClusterReport
from servesim.sim.memory import MemoryPlan
from servesim.sim.request import Request
from servesim.stream import Streamed

if TYPE_CHECKING:
    import pandas as pd


def _memory(m: MemoryPlan) -> dict:
    return {"weights_gib_per_gpu": m.weights_gib, "kv_cache_gib_per_gpu": m.kv_gib, "kv_cache_tokens": m.kv_tokens}


@dataclass
class Result:
    """What a simulation produced: requests, per-replica step logs and iteration times, and what the deployment
    reported of its run (`deployment`: each replica's GPUs, power, cost and busy time, memory plans, pools,
    pricing, controllers' figures)."""

    scenario: Scenario
    deployment: ClusterReport
    raw_requests: list[Request]
    replica_steps: list[dict[str, np.ndarray]]  # per engine: a replica, or with PP each of its streams
    iter_ends: list[np.ndarray]
    host_w: float = 0.0  # constant power of the deployment's hosts
    notes: list[str] = field(default_factory=list)  # what was accepted but assumed (see sim/deployment.py)
    # a streamed run (`stream.py`) keeps no requests, steps or iteration ends, only these
    streamed: Streamed | None = None
    _summary: dict | None = field(default=None, repr=False)

    @property
    def memories(self) -> list[MemoryPlan]:
        """Per engine (a replica, or each of its pipeline streams)."""
        return self.deployment.memories

    @property
    def pools(self) -> dict[str, list[int]]:
        """Pool name -> its replicas' indices (a deployment of one pool: empty)."""
        return self.deployment.pools

    @property
    def perf_model(self) -> str:
        return self.deployment.perf_model

    def title(self) -> str:
        """One line naming the deployment: model, GPUs, layout, scheduler, performance model."""
        sc = self.scenario

        def shape(gpu: str, e, count: int) -> str:
            return f"{count} x " * (count > 1) + f"{gpu} {Layout.of(e).label()}, scheduler {e.scheduler}"

        if sc.disaggregated:
            pools = (("prefill", sc.prefill), ("decode", sc.decode))
            where = "; ".join(f"{n}: {shape(p.gpu or sc.gpu, p.engine, p.replicas)}" for n, p in pools)
        elif sc.pools:
            where = " + ".join(shape(p.gpu, p.engine or sc.engine, p.replicas) for p in sc.pools)
        else:
            where = shape(sc.gpu, sc.engine, sc.replicas)
        return f"{sc.model} on {where} ({self.perf_model})"

    def power_series(self, bin_s: float = 1.0) -> pd.DataFrame:
        """Mean power per replica and for the cluster (with hosts) in each `bin_s` window."""
        import pandas as pd

        return pd.DataFrame(power_series(self._step_totals(bin_s), self.host_w, self.summary()["duration_s"],
                                         self.deployment.replica_of, self.deployment.replicas))  # fmt: skip

    def _step_totals(self, bin_s: float = 1.0) -> list[StepTotals]:
        """Each replica's step log folded with `bin_s` power windows (a streamed run has them at its own)."""
        if self.streamed:
            kept = self.streamed.steps[0].bin_s
            if bin_s != kept:
                raise ServesimError(f"a streamed run keeps power in {kept} s windows only")
            return self.streamed.steps
        return [fold_steps(s, r.idle_w * r.gpus, bin_s) for s, r in zip(self.replica_steps, self.deployment.replicas,
                                                                       strict=True)]  # fmt: skip

    @cached_property
    def tally(self) -> Tally:
        """What the summary needs of the requests' records."""
        if self.streamed:
            return self.streamed.tally
        d = self.deployment
        tally = Tally(self.scenario.slo, d.replica_count)
        tally.add(self.records, self._itls.gaps, self._itls.counts)
        tally.add_programs(self.raw_requests)
        tally.add_pools(pool_counts(self.raw_requests, self.pools, d.replica_of))
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
        return request_records(self.raw_requests, self._itls, self.deployment.replica_of)

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
            d = self.deployment
            reps = d.replicas
            s = summarize(tally, totals, blocks, d.prefix_hit_rate, self.scenario.workload.all_at_once, d.replica_of,
                          d.engine_ids)  # fmt: skip
            s["perf_model"] = self.perf_model
            if self.notes:
                s["notes"] = self.notes
            s.update(self.deployment.controllers)
            if "autoscale" in s:
                self._autoscale_figures(s)
            s.update(energy_cost_summary(tally, totals, reps, s["duration_s"], self.host_w, d.replica_of))
            if not self.pools and not self.scenario.disaggregated:  # (one pool: every replica one such device)
                from servesim.edge.battery import battery_summary
                from servesim.hardware import get_gpu

                battery = battery_summary(get_gpu(self.scenario.gpu, self.scenario.gpu_file), s["energy"],
                                          d.replica_count, s["completed"], s["total_output_tokens"], s["duration_s"])
                if battery is not None:
                    s["battery"] = battery
            if self.scenario.workload.n > 1 and "programs" in s:  # a prompt's samples are kept as one program
                s["prompts"] = s.pop("programs")
            s["memory"] = _memory(self.memory)
            swap = [r.swap_s for r in reps]
            if any(swap):
                s["kv_cache"]["swap_s"] = sum(swap)  # copy time to and from the CPU tier
            tenants = self.scenario.workload.tenants
            if tenants and not self.streamed:
                s.update(tenant_summary(self.records, [t.name for t in tenants], [t.weight for t in tenants],
                                        s["duration_s"]))  # fmt: skip
            if self.pools:
                first = {name: d.engines_of(ids[0])[0] for name, ids in self.pools.items()}
                s["memory"] = {name: _memory(self.memories[i]) for name, i in first.items()}
                s["pools"] = pool_stats(s["replicas"], self.pools, tally.pool_served)
                for name, ids in self.pools.items():
                    engines = [e for i in ids for e in d.engines_of(i)]
                    watts = s["energy"]["replica_avg_power_w"]
                    usd = sum(reps[e].usd_per_s * billed_seconds(s["duration_s"], reps[e].provisioned) for e in engines)
                    s["pools"][name].update(d.pool_info.get(name, {}), gpus=sum(reps[e].gpus for e in engines),
                                            cost_usd=usd, avg_power_w=sum(watts[i] for i in ids))  # fmt: skip
                s["kv_transfer_ms"] = tally.kv_transfer.stats()  # (NaN where none)
            self._summary = s
        return self._summary

    def _autoscale_figures(self, s: dict) -> None:
        """The cold starts' share of all time to first token, and the SLO attainment of the requests that arrived
        while a replica was starting (None for a streamed run that kept no records, or without an SLO)."""
        a = s["autoscale"] = dict(s["autoscale"])  # (the deployment's report stays as the run left it)
        ttft_s = (s["ttft_ms"]["mean"] or 0.0) / 1e3 * s["completed"]
        a["held_share_of_ttft"] = a["held_s_total"] / ttft_s if ttft_s else 0.0
        ramps = np.array(a.pop("ramps"), dtype=float).reshape(-1, 2)
        a["ramp_s"] = float(np.sum(ramps[:, 1] - ramps[:, 0])) if len(ramps) else 0.0
        a["slo_attainment_in_ramps"] = a["ramp_requests"] = None
        slo = self.scenario.slo
        if (slo.ttft_ms is None and slo.tpot_ms is None) or (self.streamed and not self.streamed.paths):
            return
        from servesim.metrics.tally import good_mask
        from servesim.records import Records

        df = self.requests
        t = df.arrival_s.to_numpy()
        inside = np.zeros(len(t), dtype=bool)
        for start, ready in ramps:
            inside |= (t >= start) & (t < ready)
        a["ramp_requests"] = int(inside.sum())
        if inside.any():
            good = good_mask(Records({c: df[c].to_numpy() for c in df.columns}), slo)
            a["slo_attainment_in_ramps"] = float(good[inside].mean())

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
            paths += self.streamed.paths
        else:
            records = out / f"requests.{fmt}"
            if fmt == "csv":
                self.requests.to_csv(records, index=False)
            else:
                self.requests.to_parquet(records, index=False)
            paths.append(records)
        manifest = out / "manifest.json"  # what this run wrote, so nothing else in the folder passes for it
        manifest.write_text(json.dumps({"files": [p.name for p in paths]}, indent=2) + "\n")
        return paths + [manifest]
