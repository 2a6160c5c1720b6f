"""`simulate(scenario) -> Result`: the Python entry point."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from servesim.config import Scenario
from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.metrics import itl_table, request_records, summarize, token_times
from servesim.models import get_model
from servesim.perf import PerfModel
from servesim.perf.profiled import describe, make_perf_model
from servesim.sim.cluster import Cluster
from servesim.sim.memory import MemoryPlan, kv_dtype, plan_memory
from servesim.sim.replica import Replica
from servesim.sim.request import Request
from servesim.sim.router import make_router
from servesim.workload import generate


def build_perf_model(scenario: Scenario) -> PerfModel:
    """The scenario's performance model: the GPU's measured profile when it has one (auto)."""
    e = scenario.engine
    model, gpu = get_model(scenario.model), get_gpu(scenario.gpu, scenario.gpu_file)
    return make_perf_model(model, gpu, e.tp, e.dtype, kv_dtype(e), scenario.perf_model)


@dataclass
class Result:
    """What a simulation produced: requests, per-replica step logs and iteration times."""

    scenario: Scenario
    memory: MemoryPlan
    raw_requests: list[Request]
    replica_steps: list[dict[str, np.ndarray]]
    iter_ends: list[np.ndarray]
    kv_hit_rate: float | None
    perf_model: str = "roofline"
    _summary: dict | None = field(default=None, repr=False)

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
            blocks = [self.memory.num_blocks] * len(self.replica_steps)
            self._summary = summarize(
                self.requests, self._itls[1], self.replica_steps, self.scenario.slo, blocks, self.kv_hit_rate
            )
            self._summary["perf_model"] = self.perf_model
            self._summary["memory"] = {
                "weights_gib_per_gpu": self.memory.weights_gib,
                "kv_cache_gib_per_gpu": self.memory.kv_gib,
                "kv_cache_tokens": self.memory.kv_tokens,
            }
        return self._summary

    def save(self, out_dir: str | Path, fmt: str = "parquet") -> list[Path]:
        """Write summary.json, requests.parquet|csv and scenario.json into out_dir."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "summary.json", out / f"requests.{fmt}", out / "scenario.json"]
        paths[0].write_text(json.dumps(self.summary(), indent=2) + "\n")
        if fmt == "csv":
            self.requests.to_csv(paths[1], index=False)
        else:
            self.requests.to_parquet(paths[1], index=False)
        paths[2].write_text(self.scenario.model_dump_json(indent=2) + "\n")
        return paths


def simulate(scenario: Scenario | None = None) -> Result:
    """Simulate the scenario's replicas serving its workload to completion."""
    sc = scenario or Scenario()
    e = sc.engine
    model, gpu = get_model(sc.model), get_gpu(sc.gpu, sc.gpu_file)
    perf = build_perf_model(sc)
    memory = plan_memory(model, gpu, e)
    max_len = e.max_model_len or model.max_position
    if memory.kv_tokens < max_len:
        raise ServesimError(
            f"the KV cache holds {memory.kv_tokens} tokens, fewer than max_model_len {max_len}; "
            "lower --max-model-len, raise --gpu-memory-utilization or --tp, or use a larger GPU"
        )
    if e.enable_prefix_caching and sc.workload.hash_block_tokens % e.block_size:
        raise ServesimError(
            f"hash_block_tokens ({sc.workload.hash_block_tokens}) must be a multiple of block_size ({e.block_size})"
        )
    requests = generate(sc.workload)
    accepted = []
    for r in requests:
        if r.prompt_len + r.output_len > max_len:
            r.rejected = True  # vLLM refuses requests longer than max_model_len
        else:
            accepted.append(r)
    unit = sc.workload.hash_block_tokens
    replicas = [Replica(e, perf, memory.num_blocks, unit, rid=i) for i in range(sc.replicas)]
    Cluster(replicas, make_router(sc.router, sc.workload.seed)).run(accepted)
    hits = sum(r.kv.hit_blocks for r in replicas)
    queries = sum(r.kv.query_blocks for r in replicas)
    return Result(
        sc,
        memory,
        requests,
        [r.log.arrays() for r in replicas],
        [r.iter_end[: r.it] for r in replicas],
        hits / queries if queries else None,
        describe(perf),
    )
