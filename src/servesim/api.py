"""`simulate(scenario) -> Result`: the Python entry point."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from servesim.config import Scenario
from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.metrics import itl_table, pool_stats, request_records, summarize, summary_stats, token_times
from servesim.metrics.energy import energy_cost_summary, host_power, power_series
from servesim.models import get_model
from servesim.perf.energy import PowerModel
from servesim.perf.profiled import describe, make_perf_model
from servesim.sim.cluster import Cluster
from servesim.sim.disaggregation import DisaggregatedCluster
from servesim.sim.kv_transfer import kv_transfer_seconds
from servesim.sim.memory import MemoryPlan, kv_dtype, plan_memory
from servesim.sim.migration import Migrator
from servesim.sim.power_control import PowerController
from servesim.sim.replica import Replica
from servesim.sim.request import Request
from servesim.sim.router import make_router
from servesim.workload import generate


def _memory(m: MemoryPlan) -> dict:
    return {"weights_gib_per_gpu": m.weights_gib, "kv_cache_gib_per_gpu": m.kv_gib, "kv_cache_tokens": m.kv_tokens}


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
    _summary: dict | None = field(default=None, repr=False)

    def power_series(self, bin_s: float = 1.0) -> pd.DataFrame:
        """Mean power per replica and for the cluster (with hosts) in each `bin_s` window."""
        idle = [r["idle_w"] * r["gpus"] for r in self.replica_info]
        return power_series(self.replica_steps, idle, self.host_w, self.summary()["duration_s"], bin_s)

    @property
    def memory(self) -> MemoryPlan:
        """The first replica's memory plan."""
        return self.memories[0]

    @property
    def steps(self) -> dict[str, np.ndarray]:
        """The first replica's step log."""
        return self.replica_steps[0]

    @cached_property
    def _itls(self) -> tuple[np.ndarray, np.ndarray]:
        return itl_table(self.raw_requests, self.iter_ends)

    @cached_property
    def requests(self) -> pd.DataFrame:
        """One row per request: times in seconds, lengths, preemptions, cached tokens, replica."""
        return request_records(self.raw_requests, self._itls)

    def token_times(self, request_id: int) -> np.ndarray:
        return token_times(self.raw_requests[request_id], self.iter_ends)

    def summary(self) -> dict:
        if self._summary is None:
            blocks = [m.num_blocks for m in self.memories]
            s = summarize(self.requests, self._itls[1], self.replica_steps, self.scenario.slo, blocks, self.kv_hit_rate)
            s["perf_model"] = self.perf_model
            if self.power_control:
                s["power_control"] = self.power_control
            s.update(energy_cost_summary(self.requests, self.replica_steps, self.replica_info, s["duration_s"],
                                         self.host_w))  # fmt: skip
            s["memory"] = _memory(self.memory)
            if self.pools:
                s["memory"] = {name: _memory(self.memories[ids[0]]) for name, ids in self.pools.items()}
                served = {
                    name: sum(1 for r in self.raw_requests if any(seg[0] in ids for seg in r.segments))
                    for name, ids in self.pools.items()
                }
                s["pools"] = pool_stats(s["replicas"], self.pools, served)
                for name, ids in self.pools.items():
                    s["pools"][name]["avg_power_w"] = sum(s["energy"]["replica_avg_power_w"][i] for i in ids)
                s["kv_transfer_ms"] = summary_stats(self.requests.kv_transfer_s.dropna())
            self._summary = s
        return self._summary

    def save(self, out_dir: str | Path, fmt: str = "parquet") -> list[Path]:
        """Write summary.json, requests.parquet|csv and scenario.json into out_dir."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "summary.json", out / f"requests.{fmt}", out / "scenario.json", out / "power.csv"]
        paths[0].write_text(json.dumps(self.summary(), indent=2) + "\n")
        if fmt == "csv":
            self.requests.to_csv(paths[1], index=False)
        else:
            self.requests.to_parquet(paths[1], index=False)
        paths[2].write_text(self.scenario.model_dump_json(indent=2) + "\n")
        self.power_series().to_csv(paths[3], index=False, float_format="%.6g")
        return paths


def _pool(sc: Scenario, gpu_name: str, engine, count: int, first_rid: int) -> tuple[list[Replica], MemoryPlan]:
    """`count` identical replicas of the scenario's model on `gpu_name` with `engine` settings."""
    model, gpu = get_model(sc.model), get_gpu(gpu_name, sc.gpu_file)
    perf = make_perf_model(model, gpu, engine.tp, engine.dtype, kv_dtype(engine), sc.perf_model, pp=engine.pp,
                           ep=engine.ep, expert_skew=engine.expert_skew, gpus_per_node=sc.node.gpus_per_node,
                           network_gbs=sc.node.network_gbs)  # fmt: skip
    memory = plan_memory(model, gpu, engine)
    max_len = engine.max_model_len or model.max_position
    if memory.kv_tokens < max_len:
        raise ServesimError(
            f"the KV cache of {gpu.name} x{engine.tp} holds {memory.kv_tokens} tokens, fewer than max_model_len "
            f"{max_len}; lower --max-model-len, raise --gpu-memory-utilization or --tp, or use a larger GPU"
        )
    if engine.enable_prefix_caching and sc.workload.hash_block_tokens % engine.block_size:
        raise ServesimError(
            f"hash_block_tokens ({sc.workload.hash_block_tokens}) must be a multiple of block_size "
            f"({engine.block_size})"
        )
    unit = sc.workload.hash_block_tokens
    power = PowerModel.for_gpu(gpu, getattr(perf, "profile", None))
    price = sc.power.price_per_gpu_hour if sc.power.price_per_gpu_hour is not None else gpu.price_per_hour
    if engine.pp > 1:
        # pipeline parallelism runs pp micro-batch streams (virtual engines), each with its share of the
        # KV cache and the whole pipeline's latency per iteration; fewer busy streams than stages is the bubble
        memory = dataclasses.replace(memory, num_blocks=memory.num_blocks // engine.pp)
        count *= engine.pp
    # each replica (each pipeline stage stream with pp > 1) runs on tp GPUs at a time
    replicas = [Replica(engine, perf, memory.num_blocks, unit, first_rid + i, power, engine.tp, price)
                for i in range(count)]  # fmt: skip
    for rep in replicas:
        rep.cap_w = sc.power.cap_w
    return replicas, memory


def simulate(scenario: Scenario | None = None) -> Result:
    """Simulate the scenario's replicas (co-located or disaggregated) serving its workload to completion."""
    sc = scenario or Scenario()
    model = get_model(sc.model)
    if sc.disaggregated:
        p, d = sc.prefill, sc.decode
        prefill, p_mem = _pool(sc, p.gpu or sc.gpu, p.engine, p.replicas, 0)
        decode, d_mem = _pool(sc, d.gpu or sc.gpu, d.engine, d.replicas, p.replicas)
        replicas, pools = prefill + decode, {"prefill": prefill, "decode": decode}
        memories = [p_mem] * len(prefill) + [d_mem] * len(decode)
        engines = [p.engine, d.engine]
    else:
        replicas, memory = _pool(sc, sc.gpu, sc.engine, sc.replicas, 0)
        memories, pools, engines = [memory] * len(replicas), {}, [sc.engine]
    max_len = min(e.max_model_len or model.max_position for e in engines)
    requests = generate(sc.workload)
    accepted = []
    for r in requests:
        if r.prompt_len + r.output_len > max_len:
            r.rejected = True  # vLLM refuses requests longer than max_model_len
        else:
            accepted.append(r)
    controller = None
    if sc.disaggregated:
        if sc.power.budget_w is not None:
            raise ServesimError("a cluster power budget (power.budget_w) is supported for co-located replicas only")
        kv_bytes = model.kv_bytes_per_token(kv_dtype(sc.decode.engine))
        links = min(sc.prefill.engine.tp, sc.decode.engine.tp)

        def transfer(req: Request, last_s: float) -> float:
            return kv_transfer_seconds(req.prompt_len, model, kv_bytes, sc.kv_transfer, links, last_s)

        seed = sc.workload.seed
        DisaggregatedCluster(prefill, decode, make_router(sc.prefill.router, seed), make_router(sc.decode.router, seed),
                             transfer).run(accepted)  # fmt: skip
    else:
        migrator = None
        if sc.migration.enabled:
            migrator = Migrator(sc.migration, sc.kv_transfer, model.kv_bytes_per_token(kv_dtype(sc.engine)))
        if sc.power.budget_w is not None:
            host = host_power(sum(r.gpus for r in replicas), sc.node.gpus_per_node, sc.power.host_w_per_node)
            controller = PowerController(sc.power, host, sc.power.cap_w)
        Cluster(replicas, make_router(sc.router, sc.workload.seed), migrator, controller).run(accepted)
    hits = sum(r.kv.hit_blocks for r in replicas)
    queries = sum(r.kv.query_blocks for r in replicas)
    return Result(
        sc,
        memories,
        requests,
        [r.log.arrays() for r in replicas],
        [r.iter_end[: r.it] for r in replicas],
        hits / queries if queries else None,
        " / ".join(sorted({describe(r.perf) for r in replicas})),
        {name: [r.rid for r in reps] for name, reps in pools.items()},
        [dict(gpus=r.gpus, idle_w=r.power.idle_w, usd_per_s=r.usd_per_s, busy_s=r.busy_s) for r in replicas],
        host_power(sum(r.gpus for r in replicas), sc.node.gpus_per_node, sc.power.host_w_per_node),
        controller.summary(max((r.now for r in replicas), default=0.0)) if controller else None,
    )
