"""From a scenario to the replicas, pools and controllers that serve it, and every rule on the way.

`plan(scenario)` checks everything that can be checked without simulating, once, and
says in one line what is wrong: unknown model, GPU, scheduler or router, a policy's
options, a layout the model cannot take, a model that does not fit, a KV cache smaller
than `max_model_len`, prefix-cache units that are not whole blocks, power limits no GPU
can keep, settings that do not apply to the deployment's shape. `simulate` builds what
it plans; the search prunes candidates with the same `plan`. What was accepted but
assumed is returned as notes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from servesim.config import EngineConfig, Scenario
from servesim.errors import ServesimError
from servesim.hardware import GPUSpec, get_gpu
from servesim.layout import Layout
from servesim.metrics.energy import host_power
from servesim.models import ModelSpec, get_model
from servesim.perf.energy import PowerModel
from servesim.perf.profiled import load_profile_for
from servesim.sim.cluster import Cluster
from servesim.sim.kv_transfer import HandOff
from servesim.sim.memory import plan_memory
from servesim.sim.migration import Migrator
from servesim.sim.pool import PoolSpec
from servesim.sim.power_control import PowerController
from servesim.sim.router import ROUTERS
from servesim.sim.scheduler import SCHEDULERS
from servesim.sim.semi_pd import SemiPDController, split_blocks
from servesim.sim.thermal import ThermalController


@dataclass
class DeploymentPlan:
    """A scenario checked: its pools, each described whole (`PoolSpec`), and what was assumed."""

    scenario: Scenario
    model: ModelSpec
    pools: list[PoolSpec]
    max_len: int  # longest request (prompt + output) every pool accepts
    notes: list[str] = field(default_factory=list)

    @property
    def gpus(self) -> int:
        return sum(p.gpus for p in self.pools)

    @property
    def host_w(self) -> float:
        sc = self.scenario
        # (an SoC is the whole device, its tdp_w the package's: no server host draws beside it)
        gpus = sum(p.gpus for p in self.pools if p.gpu.kind != "soc")
        return host_power(gpus, sc.node.gpus_per_node, sc.power.host_w_per_node)


def _pool(sc: Scenario, model: ModelSpec, name: str, gpu_name: str, engine: EngineConfig, replicas: int,
          router: str, notes: list[str], cap_w: float | None = None, price: float | None = None,
          priority: int = 0, budget_w: float | None = None) -> PoolSpec:  # fmt: skip
    gpu = get_gpu(gpu_name, sc.gpu_file)
    where = (f"pool {name}" + (f" ({gpu.name})" if name != gpu.name else "") + ": ") if sc.pools else ""
    try:
        spec = _checked_pool(sc, model, name, gpu, engine, replicas, router, notes, cap_w, price)
    except ServesimError as e:
        raise ServesimError(where + str(e)) from None
    return dataclasses.replace(spec, power_priority=priority, power_budget_w=budget_w)


def _checked_pool(sc: Scenario, model: ModelSpec, name: str, gpu: GPUSpec, engine: EngineConfig, replicas: int,
                  router: str, notes: list[str], cap_w: float | None, price: float | None) -> PoolSpec:  # fmt: skip
    layout = Layout.of(engine, sc.node.gpus_per_node)
    if gpu.kind != "gpu" and layout.gpus > 1:  # (one CPU socket or SoC is one device; no link joins two)
        raise ServesimError(f"{gpu.name} is a {gpu.kind.upper()}, one device: {layout.label()} would split a "
                            "replica over several; use --tp 1 (and no --pp, --dp), and --replicas for more devices")
    notes += [n for n in layout.check(model) if n not in notes]
    policy_cls = SCHEDULERS.get(engine.scheduler)
    policy_cls.check_workload(policy_cls.configure(engine), sc.workload)
    policy = ROUTERS.get(router)
    router = policy.name  # known, and spelled as registered
    if policy.needs_ttft_slo and sc.slo.ttft_ms is None:
        raise ServesimError(f"router {router} keeps each request's predicted TTFT under the SLO; give one "
                            "(--goodput ttft:MS, [slo] ttft_ms)")  # fmt: skip
    if engine.max_model_len and engine.max_model_len > model.max_position:
        raise ServesimError(
            f"max_model_len {engine.max_model_len} is longer than {model.name}'s context of {model.max_position} "
            "tokens; lower --max-model-len"
        )
    memory = plan_memory(model, gpu, engine, layout)
    max_len = engine.max_model_len or model.max_position
    if memory.kv_tokens < max_len:
        per = f" per pipeline stream ({layout.streams} streams)" if layout.streams > 1 else ""
        raise ServesimError(
            f"the KV cache of {gpu.name} at {layout.label()} holds {memory.kv_tokens} tokens{per}, fewer than "
            f"max_model_len {max_len}; lower --max-model-len, raise --gpu-memory-utilization or --tp, or use a "
            "larger GPU"
        )
    if sc.workload.strategy is not None:
        from servesim.tts.strategies import check_fits

        check_fits(sc.workload, memory.kv_tokens)
    unit = sc.workload.unit_tokens(engine.block_size)
    if engine.enable_prefix_caching and unit % engine.block_size:
        raise ServesimError(f"hash_block_tokens ({unit}) must be a multiple of block_size ({engine.block_size})")
    engine = engine.model_copy(update={"max_model_len": max_len})
    price = gpu_price(sc, gpu, price)
    spec = PoolSpec(name, model, gpu, engine, layout, replicas, router, memory, sc.perf_model, sc.node.network_gbs,
                    price, cap_w if cap_w is not None else sc.power.cap_w, unit,
                    ttft_slo_s=sc.slo.ttft_ms / 1e3 if sc.slo.ttft_ms else None)  # fmt: skip
    if memory.placement is not None:
        from servesim.offload.pipeline import io_note

        notes.append(io_note(spec))
    return spec


def gpu_price(sc: Scenario, gpu: GPUSpec, own: float | None = None) -> float:
    """USD per GPU-hour: a pool's own price, else the scenario's, else the GPU catalog's."""
    return next(p for p in (own, sc.power.price_per_gpu_hour, gpu.price_per_hour) if p is not None)


def _power_model(sc: Scenario, gpu: GPUSpec) -> PowerModel:
    """The power model the simulation will use: measured levels where the GPU's profile is used."""
    return PowerModel.for_gpu(gpu, None if sc.perf_model == "roofline" else load_profile_for(gpu.name))


def _check_power(sc: Scenario, plan: DeploymentPlan) -> None:
    """Every cap a pool's GPUs must keep, and every budget (the cluster's, a pool's own), must be keepable."""
    budget = sc.power.budget_w
    idle = plan.host_w
    for p in plan.pools:
        power = _power_model(sc, p.gpu)
        idle += power.idle_w * p.gpus
        if (budget is not None or p.power_budget_w is not None) and p.gpu.throttles:
            raise ServesimError(f"{p.gpu.name} throttles itself to its sustained {p.gpu.sustained_w:g} W once hot "
                                "(sim/thermal.py), and a power budget's controller would set the same caps; drop "
                                "the power budget, or use --power-cap for a static cap")  # fmt: skip
        limits = [("power cap", p.cap_w, "--power-cap" if p.cap_w == sc.power.cap_w else f"pool {p.name}'s "
                   "power_cap_w")]  # fmt: skip
        if budget is not None or p.power_budget_w is not None:
            limits.append(("the power controller's cap", sc.power.throttle_cap_w, "power.throttle_cap_w"))
        for label, watts, where in limits:
            if watts is not None and watts < power.min_cap_w:
                raise ServesimError(
                    f"{label} of {watts:g} W is below the {power.min_cap_w:.0f} W that {p.gpu.name} draws at its "
                    f"lowest clock, so it could not be kept; raise {where}"
                )
        floor = p.gpus * power.idle_w + host_power(p.gpus, sc.node.gpus_per_node, sc.power.host_w_per_node)
        if p.power_budget_w is not None and p.power_budget_w <= floor:
            raise ServesimError(f"pool {p.name}'s power budget {p.power_budget_w:g} W is not above its idle draw "
                                f"of {floor:.0f} W ({p.gpus} GPUs and their hosts' share); raise its "
                                "power_budget_w")  # fmt: skip
    if budget is not None and budget <= idle:
        raise ServesimError(
            f"power budget {budget:g} W is not above the deployment's idle draw of {idle:.0f} W ({plan.gpus} GPUs "
            "and their hosts' share); raise --power-budget or use fewer GPUs"
        )


def plan(sc: Scenario) -> DeploymentPlan:
    """Check the scenario against every rule; one clear line for the first it breaks."""
    model = get_model(sc.model)
    notes: list[str] = []
    if sc.semi_pd.enabled:
        pools = _semi_pd_pools(sc, _pool(sc, model, "", sc.gpu, sc.engine, sc.replicas, sc.router or "round_robin",
                                         notes))  # fmt: skip
    elif sc.disaggregated:
        if sc.workload.programs is not None or sc.workload.sessions:
            raise ServesimError("programs keep their calls on one replica, which disaggregated pools cannot; "
                                "run them co-located (drop [prefill]/[decode])")  # fmt: skip
        if sc.replicas != 1 or sc.router is not None:
            raise ServesimError(
                "replicas and router set the co-located deployment; with disaggregated pools set each pool's "
                "(--prefill-replicas/--decode-replicas, [prefill]/[decode] replicas and router)"
            )
        p, d = sc.prefill, sc.decode
        pools = [_pool(sc, model, "prefill", p.gpu or sc.gpu, p.engine, p.replicas, p.router, notes,
                       priority=p.power_priority),
                 _pool(sc, model, "decode", d.gpu or sc.gpu, d.engine, d.replicas, d.router, notes,
                       priority=d.power_priority)]  # fmt: skip
        pools = _handing_on(sc, model, pools[:1], pools[1:])
    elif sc.pools:
        pools = _service_pools(sc, model, notes)
    else:
        scale = sc.autoscale
        count = sc.replicas if scale.policy is None else scale.max_replicas  # every replica it may start, built
        pools = [_pool(sc, model, "", sc.gpu, sc.engine, count, sc.router or "round_robin", notes)]
    wl = sc.workload
    if wl.n > 1 and (wl.programs is not None or wl.sessions):
        raise ServesimError(f"n = {wl.n} samples apply to single requests; programs and sessions replay their own "
                            "calls: drop --n or the programs")  # fmt: skip
    _check_autoscale(sc, pools[0])
    _check_partitions(sc)
    out = DeploymentPlan(sc, model, pools, min(p.engine.max_model_len for p in pools), notes)
    _check_power(sc, out)
    return out


SERVICE_ROUTER = "capacity_weighted"  # pools of different GPUs: least load for the replica's speed


def _handing_on(sc: Scenario, model: ModelSpec, prefill: list[PoolSpec], decode: list[PoolSpec]) -> list[PoolSpec]:
    """Prefill pools that hand each request on to the decode pools (stage 1), its KV cache over the network: each
    GPU of the (first) decode pool takes what it will hold over its own link."""
    kv = decode[0].memory.kv
    prefill = [dataclasses.replace(p, hand_off=HandOff(sc.kv_transfer, p.memory.kv.link_bytes_per_token(kv),
                                                       model.layers)) for p in prefill]  # fmt: skip
    return prefill + [dataclasses.replace(d, stage=1) for d in decode]


def _service_pools(sc: Scenario, model: ModelSpec, notes: list[str]) -> list[PoolSpec]:
    """The pools of a co-located service (a heterogeneous fleet), every replica behind the scenario's router."""
    if sc.migration.enabled:
        raise ServesimError("live migration moves requests within one pool of identical replicas; drop --migration "
                            "or serve from one pool")  # fmt: skip
    router = sc.router or SERVICE_ROUTER
    pools = [_pool(sc, model, name, p.gpu, p.engine or sc.engine, p.replicas, router, notes, cap_w=p.power_cap_w,
                   price=p.price_per_gpu_hour, priority=p.power_priority, budget_w=p.power_budget_w)
             for name, p in zip(sc.pool_names(), sc.pools, strict=True)]  # fmt: skip
    roles = [p.role for p in sc.pools]
    if any(roles):  # disaggregated: the prefill pools, then the decode pools, each group behind one router
        if sc.workload.programs is not None or sc.workload.sessions:
            raise ServesimError("programs keep their calls on one replica, which pools with prefill and decode roles "
                                "cannot; drop the roles")  # fmt: skip
        prefill = [p for p, r in zip(pools, roles, strict=True) if r == "prefill"]
        decode = [p for p, r in zip(pools, roles, strict=True) if r == "decode"]
        pools = _handing_on(sc, model, prefill, decode)
        if len({d.memory.kv.link_bytes_per_token(d.memory.kv) for d in decode}) > 1:
            notes.append("KV transfers are priced to the first decode pool's layout (the decode pools' layouts "
                         "differ)")  # fmt: skip
    shapes = {(p.gpu.name, p.layout, p.engine.dtype, p.engine.quantization) for p in pools}
    if len(shapes) > 1 and not getattr(ROUTERS.get(router), "weighs_speed", False):
        notes.append(f"router {router} treats the pools' replicas as equals though their speeds differ; "
                     f"{SERVICE_ROUTER} weighs each by its speed")  # fmt: skip
    return pools


def _semi_pd_pools(sc: Scenario, base: PoolSpec) -> list[PoolSpec]:
    """The prefill and decode workers of semi-PD, each replica's pair on the same GPUs (sim/semi_pd.py)."""
    why = None
    if sc.disaggregated:
        why = "it is an alternative to disaggregated pools; drop [prefill]/[decode]"
    elif sc.pools:
        why = "it splits the replicas of one pool; drop [[pools]] or --semi-pd"
    elif sc.workload.programs is not None or sc.workload.sessions:
        why = "programs keep their calls on one engine, and semi-PD splits each replica in two"
    elif sc.migration.enabled:
        why = "live migration between semi-PD workers is not modelled; drop --migration"
    if why:
        raise ServesimError(f"semi-PD cannot run here: {why}")
    e = base.engine
    need = -(-e.max_model_len // e.block_size)
    pre, dec = split_blocks(base.memory.num_blocks, sc.semi_pd, need)
    if dec < need:
        raise ServesimError(f"semi-PD leaves the decode worker {dec * e.block_size} tokens of KV cache, fewer than "
                            f"max_model_len {e.max_model_len}; lower --max-model-len")  # fmt: skip
    m = base.memory

    def part(blocks: int):
        return dataclasses.replace(m, num_blocks=blocks, kv_gib=m.kv_gib * blocks / m.num_blocks)

    x = sc.semi_pd.prefill_sm
    prefill = dataclasses.replace(base, name="prefill", role="prefill", memory=part(pre), sm_share=x,
                                  hand_off=HandOff(paired=True))  # fmt: skip
    return [prefill, dataclasses.replace(base, name="decode", router="round_robin", role="decode", memory=part(dec),
                                         sm_share=1 - x, stage=1)]  # fmt: skip


def _check_autoscale(sc: Scenario, pool: PoolSpec) -> None:
    """Autoscaling starts and stops the replicas of one co-located pool, and a start must finish within the run."""
    a = sc.autoscale
    if a.policy is None:
        return
    from servesim.sim.autoscale import POLICIES

    policy = POLICIES.get(a.policy)  # known
    cold, wl = cold_start(sc, pool), sc.workload
    span = (wl.num_requests or 0) / wl.rate if wl.rate and wl.arrival != "trace" and not wl.rate_shape else None
    why = None
    if sc.disaggregated or sc.pools or sc.semi_pd.enabled:
        why = "it starts and stops the replicas of one co-located pool; drop [prefill]/[decode], [[pools]] or semi-PD"
    elif sc.migration.enabled:
        why = "live migration would move requests onto stopped replicas; drop --migration"
    elif not a.min_replicas <= sc.replicas <= a.max_replicas:
        why = (f"the starting replicas ({sc.replicas}) must lie within min_replicas {a.min_replicas} and "
               f"max_replicas {a.max_replicas}")  # fmt: skip
    if why:
        raise ServesimError(f"autoscaling cannot run here: {why}")
    if span is not None and cold >= span > 0:
        raise ServesimError(f"a cold start of {cold:.0f} s is longer than the run's {span:.0f} s of arrivals, so no "
                            "started replica would serve; send more requests or shorten the cold start "
                            "(autoscale.load_gbs, warmup_s)")  # fmt: skip
    policy(a, sc, cold)  # its options checked


def cold_start(sc: Scenario, pool: PoolSpec) -> float:
    """Seconds from starting a replica of `pool` to its serving: its weights per GPU loaded, then warm-up."""
    return pool.memory.weights_gib * 2**30 / (sc.autoscale.load_gbs * 1e9) + sc.autoscale.warmup_s


def autoscaler(pl: DeploymentPlan):
    """The scenario's autoscaler over its plan's pool (None without a policy), its policy's options checked."""
    from servesim.sim.autoscale import POLICIES, Autoscaler

    sc, a = pl.scenario, pl.scenario.autoscale
    if a.policy is None:
        return None
    cold = cold_start(sc, pl.pools[0])
    return Autoscaler(a, POLICIES.get(a.policy)(a, sc, cold), cold)


def _check_partitions(sc: Scenario) -> None:
    """Groups simulated apart must not need each other: same size, no cluster-wide controller or hand-off."""
    if sc.partitions == 1:
        return
    why = None
    if sc.disaggregated:
        why = "disaggregated pools hand requests to each other"
    elif sc.pools:
        why = "the service's pools share one router"
    elif sc.replicas % sc.partitions:
        why = f"{sc.replicas} replicas do not split into {sc.partitions} equal groups"
    elif sc.migration.enabled:
        why = "live migration moves requests between any two replicas"
    elif sc.power.budget_w is not None:
        why = "a cluster power budget is shared by every replica"
    elif sc.semi_pd.enabled:
        why = "semi-PD's controller sees every replica"
    elif sc.autoscale.policy is not None and any(
            n % sc.partitions for n in (sc.autoscale.min_replicas, sc.autoscale.max_replicas)):  # fmt: skip
        why = "each partition autoscales its share of the fleet, and min_replicas and max_replicas must split evenly"
    if why:
        raise ServesimError(f"cannot split the fleet into {sc.partitions} partitions: {why}; use --partitions 1")


def infeasible(sc: Scenario) -> str | None:
    """Why the scenario cannot run at all, or None."""
    try:
        plan(sc)
    except ServesimError as e:
        return str(e)
    return None


def build(pl: DeploymentPlan, done: list | None = None) -> Cluster:
    """The running deployment of a checked plan: its pools of replicas (`Cluster` builds them with the factory)
    and its controllers; a streamed run passes the list its finished requests go to."""
    sc = pl.scenario
    controllers: list = []
    if sc.semi_pd.enabled:  # (it prices the workers' contention, moves the split if adaptive, and says which)
        ttft, tpot = sc.slo.ttft_ms, sc.slo.tpot_ms
        controllers.append(SemiPDController(sc.semi_pd, ttft and ttft / 1e3, tpot and tpot / 1e3))
    if sc.migration.enabled:
        kv = pl.pools[-1].memory.kv  # (the pool that decodes: its replicas trade requests)
        controllers.append(Migrator(sc.migration, sc.kv_transfer, kv.link_bytes_per_token(kv)))
    if sc.power.budget_w is not None:
        controllers.append(PowerController(sc.power, pl.host_w))
    scaler = autoscaler(pl)
    if scaler is not None:
        controllers.append(scaler)
    first = 0
    for spec in pl.pools:  # a pool with its own budget: its own controller over its replicas and hosts
        if spec.power_budget_w is not None:
            host_w = host_power(spec.gpus, sc.node.gpus_per_node, sc.power.host_w_per_node)
            members = set(range(first, first + spec.replicas))
            controllers.append(PowerController(sc.power, host_w, spec.power_budget_w, members,
                                               f"power_control_{spec.name}"))  # fmt: skip
        if spec.gpu.throttles:
            controllers.append(ThermalController(spec.gpu, set(range(first, first + spec.replicas)),
                                                 "thermal" if len(pl.pools) == 1 else f"thermal_{spec.name}"))
        first += spec.replicas
    return Cluster(pl.pools, controllers, max_len=pl.max_len, grouped=sc.workload.grouped, seed=sc.workload.seed,
                   done=done, serving=sc.replicas if scaler is not None else None)  # fmt: skip
