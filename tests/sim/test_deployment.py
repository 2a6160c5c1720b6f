"""The deployment's rules, checked once (sim/deployment.py, layout.py), and the shapes they let compose."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servesim import EngineConfig, Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import LengthDist, MigrationConfig, PoolConfig, PowerConfig
from servesim.layout import Layout
from servesim.models import get_model
from servesim.search.space import Candidate, infeasible
from servesim.sim.deployment import plan

LONG = WorkloadConfig(num_requests=12, rate=4, seed=1, input=LengthDist(dist="lognormal", mean=6000, sigma=1.5,
                      max=60000), output=LengthDist(dist="lognormal", mean=100, max=600))  # fmt: skip


def test_expert_parallelism_lives_inside_the_tp_group():
    # one GPU cannot hold Mixtral's experts "spread over 8 GPUs": refused, not simulated on one GPU
    with pytest.raises(ServesimError, match=r"expert parallel size 8 must divide the GPUs an MoE layer spans \(TP 1 ="):
        simulate(Scenario(model="mixtral-8x7b", gpu="h200", engine=EngineConfig(tp=1, ep=8)))
    assert "must divide the GPUs an MoE layer spans" in infeasible(Candidate("h200", 1, 1, 1, "vllm", 256, 8192, ep=8),
                                                            Scenario(model="mixtral-8x7b"))  # fmt: skip
    result = simulate(Scenario(model="mixtral-8x7b", gpu="h200", engine=EngineConfig(tp=8, ep=8),
                               workload=WorkloadConfig(num_requests=50)))  # fmt: skip
    s = result.summary()
    assert s["completed"] == 50
    assert sum(r.gpus for r in result.deployment.replicas) == 8  # billed for the eight GPUs it runs on
    assert s["memory"]["weights_gib_per_gpu"] == pytest.approx(get_model("mixtral-8x7b").weight_bytes("bf16") / 8
                                                               / 2**30)  # fmt: skip
    assert Candidate("h200", 8, 1, 1, "vllm", 256, 8192, ep=8).gpus == 8


def test_expert_groups_split_each_expert_over_the_rest_of_tp():
    from servesim.hardware import get_gpu
    from servesim.perf import Batch, RooflineModel

    m, g = get_model("mixtral-8x7b"), get_gpu("h100")
    b = Batch.decode(64, 1000)
    ep2 = {o.name: o for o in RooflineModel(m, g, layout=Layout(tp=2, ep=2)).breakdown(b)}["moe"]
    tp4_ep2 = {o.name: o for o in RooflineModel(m, g, layout=Layout(tp=4, ep=2)).breakdown(b)}["moe"]
    assert tp4_ep2.bytes < 0.6 * ep2.bytes  # each GPU holds half of each of its experts


def test_pipeline_kv_check_is_per_stream_and_matches_search():
    engine = EngineConfig(tp=2, pp=2, gpu_memory_utilization=0.57)
    sc = Scenario(model="llama-3.1-70b", gpu="h100-sxm", engine=engine, workload=LONG)
    with pytest.raises(ServesimError, match="per pipeline stream .* fewer than max_model_len 131072"):
        simulate(sc)
    reason = infeasible(Candidate("h100-sxm", 2, 2, 1, "vllm", 256, 8192), sc)
    assert "per pipeline stream" in reason
    # with a shorter max_model_len the same layout runs every request to completion
    ok = sc.model_copy(update={"engine": engine.model_copy(update={"max_model_len": 32768})})
    s = simulate(ok).summary()
    assert s["completed"] + s["failed"] == 12 and s["completed"] > 0


def test_migration_balances_the_decode_pool_of_a_disaggregated_deployment():
    tight = EngineConfig(gpu_memory_utilization=0.27, max_model_len=20000)
    wl = WorkloadConfig(num_requests=500, rate=12, arrival="gamma", burstiness=0.2, seed=3,
                        input=LengthDist(dist="lognormal", mean=1500, sigma=1.2, max=16000),
                        output=LengthDist(dist="lognormal", mean=400, sigma=1.2, max=4000))  # fmt: skip
    sc = Scenario(workload=wl, prefill=PoolConfig(replicas=2, engine=tight), migration=MigrationConfig(enabled=True),
                  decode=PoolConfig(replicas=3, router="round_robin", engine=tight))  # fmt: skip
    s = simulate(sc).summary()
    assert s["completed"] == 500
    assert s["migrations"] > 0


def test_power_budget_with_disaggregation():
    wl = WorkloadConfig(num_requests=1500, rate=50, seed=2)
    pools = dict(prefill=PoolConfig(replicas=2), decode=PoolConfig(replicas=2))
    free = simulate(Scenario(workload=wl, **pools)).summary()
    peak = free["energy"]["avg_power_w"]
    capped = simulate(Scenario(workload=wl, power=PowerConfig(budget_w=0.9 * peak), **pools)).summary()
    assert capped["completed"] == 1500
    assert capped["power_control"]["cap_actions"] > 0


def test_colocated_settings_are_refused_with_pools():
    pools = dict(prefill=PoolConfig(), decode=PoolConfig())
    for extra in ({"replicas": 3}, {"router": "least_tokens"}):
        with pytest.raises(ServesimError, match="with disaggregated pools set each pool's"):
            plan(Scenario(**pools, **extra))


def test_layout_notes_and_refusals():
    m = get_model("llama-3.1-8b")
    assert Layout(tp=1, pp=3).check(m) == [
        "PP 3 does not divide llama-3.1-8b's 32 layers: stages hold 10 or 11; the largest sets the KV cache size"
    ]
    assert "spans 2 nodes" in Layout(tp=16).check(get_model("llama-3.1-405b"))[0]
    with pytest.raises(ServesimError, match="must divide llama-3.1-8b's 32 attention heads"):
        Layout(tp=3).check(m)
    s = simulate(Scenario(engine=EngineConfig(pp=3), workload=WorkloadConfig(num_requests=20))).summary()
    assert s["completed"] == 20 and "PP 3 does not divide" in s["notes"][0]


def test_power_limits_no_gpu_can_keep_are_refused():
    with pytest.raises(ServesimError, match="power cap of 1 W is below"):
        plan(Scenario(power=PowerConfig(cap_w=1)))
    with pytest.raises(ServesimError, match="power budget 500 W is not above the deployment's idle draw"):
        plan(Scenario(replicas=8, power=PowerConfig(budget_w=500)))


# ----- every layout simulate accepts runs to the end; search agrees with simulate -----
layouts = st.fixed_dictionaries({
    "model": st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen2.5-14b"]),
    "gpu": st.sampled_from(["h100-sxm", "a100-80gb-sxm", "l40s"]),
    "tp": st.sampled_from([1, 2, 2, 3, 4, 8]),
    "pp": st.sampled_from([1, 2, 3, 4]),
    "ep": st.sampled_from([1, 1, 1, 2, 8]),
    "util": st.sampled_from([0.3, 0.57, 0.9]),
    "max_len": st.sampled_from([None, 8192, 65536]),
    "pd": st.booleans(),
})  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lay=layouts)
def test_accepted_layouts_complete_and_search_agrees(lay):
    engine = EngineConfig(tp=lay["tp"], pp=lay["pp"], ep=lay["ep"], gpu_memory_utilization=lay["util"],
                          max_model_len=lay["max_len"])  # fmt: skip
    base = Scenario(model=lay["model"], gpu=lay["gpu"], engine=engine, workload=LONG)
    cand = Candidate(lay["gpu"], lay["tp"], lay["pp"], 1, "vllm", 256, 8192, ep=lay["ep"],
                     prefill=int(lay["pd"]), decode=int(lay["pd"]))  # fmt: skip
    sc = cand.scenario(base)
    reason = infeasible(cand, base)
    try:
        result = simulate(sc)
    except ServesimError as e:
        assert reason == str(e)  # refused before simulating, for the reason the search gives
        assert "\n" not in str(e)
        return
    assert reason is None
    s = result.summary()
    assert s["completed"] + s["failed"] == 12
    rejected = result.requests.input_len + result.requests.output_len > (lay["max_len"] or 10**9)
    assert s["failed"] == int(rejected.sum())  # only requests longer than max_model_len fail


def test_what_is_priced_past_the_measurements_is_said_in_the_runs_notes():
    wl = WorkloadConfig(num_requests=20, rate=5.0)
    tp2 = simulate(Scenario(model="llama-3.1-70b", gpu="h100", engine=EngineConfig(tp=2, max_model_len=8192),
                            workload=wl)).summary()  # fmt: skip
    assert any("TP2 all-reduces priced by the link model" in n for n in tp2["notes"])  # the H100 has no table
    long = simulate(Scenario(gpu="h200", engine=EngineConfig(max_num_batched_tokens=40000, max_model_len=60000),
                             workload=WorkloadConfig(num_requests=2, rate=1.0, input=LengthDist(
                                 dist="fixed", mean=40000, max=40000)))).summary()  # fmt: skip
    assert any("prefill attention of chunks longer than" in n for n in long["notes"])
    plain = simulate(Scenario(gpu="h200", workload=wl)).summary()
    assert not any("priced by" in n or "extrapolated" in n for n in plain.get("notes", []))


def test_moe_runs_say_how_routing_is_priced():
    wl = WorkloadConfig(num_requests=10, rate=5.0)

    def notes(**engine):
        sc = Scenario(model="qwen3-30b-a3b", gpu="h100", engine=EngineConfig(max_model_len=8192, **engine),
                      workload=wl)  # fmt: skip
        return [n for n in simulate(sc).summary()["notes"] if n.startswith("MoE routing")]

    assert notes() == ["MoE routing: tokens spread uniformly over the experts, every GPU holding a slice of each"]
    assert "--expert-skew 1.3 acts only under EP" in notes(expert_skew=1.3)[0]
    assert "busiest of the EP2 groups taking 1.3x the mean load" in notes(tp=2, ep=2, expert_skew=1.3)[0]
    assert not any(n.startswith("MoE routing") for n in simulate(Scenario(gpu="h100", workload=wl)).notes)


@pytest.mark.parametrize("gpu", ["snapdragon-8-gen3", "epyc-9654"])
def test_tensor_parallelism_over_one_soc_or_cpu_is_refused(gpu):
    with pytest.raises(ServesimError, match=f"^{gpu} is a (SOC|CPU), one device: TP2 .*use --tp 1"):
        plan(Scenario(model="llama-3.2-1b", gpu=gpu, engine=EngineConfig(tp=2)))
