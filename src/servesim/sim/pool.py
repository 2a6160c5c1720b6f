"""A pool of identical replicas as planned (`PoolSpec`), and the one factory that builds its replicas.

`deployment.plan` checks a scenario and describes each of its pools: the GPU, the layout,
the engine settings and policy, the memory plan and KV geometry, the performance model's
kind, power cap and price, and how the pool hands requests on. `make_replica` builds a
replica from that description and nothing else, so a deployment of pools of different
GPUs is a loop over it (`Cluster`). A `PoolSpec` is what `plan` checked: a copy with another
GPU or layout must be planned again (its memory plan and KV geometry follow from them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from servesim.config import EngineConfig
from servesim.hardware import GPUSpec
from servesim.kv_geometry import kv_dtype
from servesim.layout import Layout
from servesim.models import ModelSpec
from servesim.offload.pipeline import offloaded
from servesim.perf.energy import PowerModel
from servesim.perf.nanoflow import NanoFlowModel
from servesim.perf.profiled import make_perf_model
from servesim.perf.quant import weight_quant
from servesim.perf.sm_share import SMShare, SMSharedModel
from servesim.perf.speculative import SpeculativeModel, draft_spec
from servesim.sim.hooks import NO_HOOKS, ReplicaHooks
from servesim.sim.kv_swap import SwapCost
from servesim.sim.kv_transfer import HandOff
from servesim.sim.memory import MemoryPlan
from servesim.sim.replica import Replica


@dataclass(frozen=True)
class PoolSpec:
    """One pool, checked: `replicas` identical engines of `layout` on `gpu`, and all a replica is built from."""

    name: str
    model: ModelSpec
    gpu: GPUSpec
    engine: EngineConfig  # its max_model_len resolved
    layout: Layout
    replicas: int
    router: str
    memory: MemoryPlan  # per micro-batch stream
    perf_kind: str = "auto"  # the scenario's perf_model
    network_gbs: float = 50.0  # between nodes, per GPU
    price_per_gpu_hour: float = 0.0
    cap_w: float | None = None  # per-GPU power cap
    unit_tokens: int = 512  # tokens per prefix-cache entry
    hand_off: HandOff | None = None  # how its requests go on to the next pool (it prefills only)
    role: str | None = None  # semi-PD: "prefill" or "decode" worker, the two sharing each replica's GPUs
    sm_share: float | None = None  # semi-PD: the worker's starting share of the SMs
    power_priority: int = 0  # under a power budget, lower priorities are capped first
    power_budget_w: float | None = None  # the pool's own budget (its own controller)
    ttft_slo_s: float | None = None  # the scenario's TTFT target, for routers that keep to it
    stage: int = 0  # pools of one stage share a router: arrivals go to stage 0, a hand-off to the next stage

    @property
    def gpus(self) -> int:
        """GPUs it is billed for (a semi-PD decode worker shares its prefill worker's)."""
        return 0 if self.role == "decode" else self.replicas * self.layout.gpus

    @property
    def engines(self) -> int:
        """Replica objects it runs: one per micro-batch stream of each data-parallel rank of each replica."""
        return self.replicas * self.layout.engines

    @cached_property
    def perf(self):
        """The pool's iteration pricing, its in-iteration mechanisms included (shared by its replicas)."""
        e = self.engine
        perf = make_perf_model(self.model, self.gpu, self.layout, e.dtype, self.memory.kv.dtype, self.perf_kind,
                               expert_skew=e.expert_skew, network_gbs=self.network_gbs,
                               quant=weight_quant(e.quantization, e.quantization_bits))  # fmt: skip
        if self.memory.placement is not None and not self.memory.placement.idle:
            perf = offloaded(perf, self.model, self.memory.placement)
        return with_mechanisms(perf, self.model, self.gpu, self.perf_kind, e, self.layout)

    @cached_property
    def power(self) -> PowerModel:
        """Each GPU's power: measured levels where the pool prices with the GPU's profile."""
        return PowerModel.for_gpu(self.gpu, getattr(self.perf, "profile", None))

    @cached_property
    def swap(self) -> SwapCost:
        """The CPU KV tier of one replica: swapped requests, offloaded contexts."""
        e = self.engine
        return SwapCost.of(self.memory.kv, e.block_size, self.gpu.host_gbs, e.swap_group_blocks, e.swap_space)

    @cached_property
    def sm(self) -> SMShare:
        """How operators slow down on a share of the SMs (semi-PD workers): measured where profiled."""
        return SMShare.for_profile(getattr(self.perf, "profile", None))


def with_mechanisms(perf, model: ModelSpec, gpu: GPUSpec, kind: str, e: EngineConfig, lay: Layout):
    """The engine's iteration pricing with its in-iteration mechanisms: speculative decoding and NanoFlow's
    overlap wrap the plain model (each off unless asked)."""
    spec = e.speculative
    if spec is not None:
        draft = draft_spec(model, spec)
        drafter = None if draft is None else make_perf_model(
            draft, gpu, Layout(lay.tp, gpus_per_node=lay.gpus_per_node), "bf16", kv_dtype(e.dtype, e.kv_cache_dtype),
            kind)  # fmt: skip
        perf = SpeculativeModel(perf, drafter, spec)
    if e.nano_batches > 1:
        perf = NanoFlowModel(perf, e.nano_batches)
    return perf


def make_replica(pool: PoolSpec, index: int, hooks: ReplicaHooks = NO_HOOKS) -> Replica:
    """The one factory: replica `index` of the deployment (with PP, one micro-batch stream of a replica, on
    tp GPUs at a time), built from its pool's description, with what the deployment attaches to it."""
    perf, gpus = pool.perf, pool.layout.tp
    if pool.sm_share is not None:  # a semi-PD worker: its share of the SMs (its blocks are planned), power and cost
        perf = SMSharedModel(perf, pool.sm_share, pool.sm, f"semi-PD {pool.role} worker")
        gpus = pool.layout.tp * pool.sm_share
    return Replica(pool.engine, perf, pool.memory.num_blocks, unit_tokens=pool.unit_tokens, index=index,
                   power=pool.power, gpus=gpus, price_per_hour=pool.price_per_gpu_hour, cap_w=pool.cap_w,
                   swap=pool.swap, hooks=hooks, power_priority=pool.power_priority)  # fmt: skip
