"""A co-located service of several pools (a heterogeneous fleet) behind one router."""

import pytest

from servesim import Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import MigrationConfig, PowerConfig, SemiPDConfig, ServicePool, load_scenario, with_pools
from servesim.sim.deployment import plan

WL = WorkloadConfig(num_requests=400, rate=24.0, seed=1)


def test_a_mixed_fleet_reports_each_pool_and_they_add_up():
    pools = [ServicePool(gpu="h100-sxm"), ServicePool(gpu="a100", replicas=2, engine={"tp": 2}),
             ServicePool(gpu="l40s", replicas=2, price_per_gpu_hour=0.5)]  # fmt: skip
    sc = Scenario(workload=WL, pools=pools)
    s = simulate(sc).summary()
    pools = s["pools"]
    assert list(pools) == ["h100-sxm", "a100", "l40s"]
    assert [p["replicas"] for p in pools.values()] == [[0], [1, 2], [3, 4]]
    assert [(p["gpu"], p["layout"], p["gpus"]) for p in pools.values()] == [
        ("h100-sxm", "TP1", 1), ("a100-80gb-sxm", "TP2", 4), ("l40s", "TP1", 2)]  # fmt: skip
    assert sum(p["requests"] for p in pools.values()) == s["completed"] == WL.num_requests
    assert sum(p["gpus"] for p in pools.values()) == s["cost"]["gpus"] == 7
    assert sum(p["cost_usd"] for p in pools.values()) == pytest.approx(s["cost"]["total_usd"])
    assert pools["l40s"]["cost_usd"] == pytest.approx(2 * 0.5 * s["duration_s"] / 3600)  # the pool's own price


def test_capacity_weighted_routing_gives_the_fast_replica_more_work():
    """An H200 and an L40S behind one router: weighing by speed sends the H200 most requests and beats splitting
    them evenly, which leaves the L40S the bottleneck."""
    pools = [ServicePool(gpu="h200"), ServicePool(gpu="l40s")]
    wl = WL.model_copy(update={"rate": 12.0})
    weighted = simulate(Scenario(workload=wl, pools=pools)).summary()
    even = simulate(Scenario(workload=wl, pools=pools, router="round_robin")).summary()
    fast, slow = weighted["pools"]["h200"]["requests"], weighted["pools"]["l40s"]["requests"]
    assert fast > 2 * slow
    assert abs(even["pools"]["h200"]["requests"] - even["pools"]["l40s"]["requests"]) <= 1
    assert weighted["e2el_ms"]["mean"] < 0.7 * even["e2el_ms"]["mean"]
    assert any("round_robin treats the pools' replicas as equals" in n for n in plan(
        Scenario(workload=wl, pools=pools, router="round_robin")).notes)  # fmt: skip


def test_pools_from_toml(tmp_path):
    f = tmp_path / "fleet.toml"
    f.write_text('model = "llama-3.1-8b"\n[[pools]]\ngpu = "h100-sxm"\nreplicas = 2\n'
                 '[[pools]]\nname = "old"\ngpu = "a100"\nengine = { tp = 2 }\npower_cap_w = 300\n')  # fmt: skip
    pl = plan(load_scenario(f))
    assert [(p.name, p.gpu.name, p.replicas, p.layout.tp, p.cap_w) for p in pl.pools] == [
        ("h100-sxm", "h100-sxm", 2, 1, None), ("old", "a100-80gb-sxm", 1, 2, 300)]  # fmt: skip
    f.write_text('gpu = "h200"\n[[pools]]\ngpu = "h100-sxm"\n')
    with pytest.raises(ServesimError, match="each pool names its gpu"):
        load_scenario(f)


@pytest.mark.parametrize("scenario, message", [
    (dict(model="llama-3.1-70b", pools=[ServicePool(gpu="l40s")]), "pool l40s: llama-3.1-70b does not fit"),
    (dict(pools=[ServicePool(gpu="h100")], replicas=2), "each pool sets its replicas"),
    (dict(pools=[]), "pools is empty"),
    (dict(pools=[ServicePool(gpu="h100", name="a"), ServicePool(gpu="a100", name="a")]), "pool names must differ"),
    (dict(pools=[ServicePool(gpu="h100")], partitions=2), "share one router"),
    (dict(pools=[ServicePool(gpu="h100")], migration=MigrationConfig(enabled=True)), "drop --migration"),
    (dict(pools=[ServicePool(gpu="h100")], semi_pd=SemiPDConfig(enabled=True)), "semi-PD cannot run here"),
    (dict(pools=[ServicePool(gpu="h100")], prefill={}, decode={}), "use one of the two"),
])  # fmt: skip
def test_bad_fleets_are_refused_in_one_line(scenario, message):
    with pytest.raises((ServesimError, ValueError), match=message):
        plan(Scenario(**scenario))


def test_pool_flag():
    """--pool GPU:REPLICAS[:tpN]: each pool takes the run's engine settings, its own TP where given."""
    base = Scenario(engine={"max_num_seqs": 64, "tp": 1})
    sc = with_pools(base, ["h100-sxm:2", "a100:3:tp2"])
    assert [(p.gpu, p.replicas) for p in sc.pools] == [("h100-sxm", 2), ("a100", 3)]
    assert sc.pools[0].engine is None and (sc.pools[1].engine.tp, sc.pools[1].engine.max_num_seqs) == (2, 64)
    for bad in ("a100", "a100:0", "a100:2:pp2", "a100:x", ":2", "a100:1:tp0"):
        with pytest.raises(ServesimError, match="GPU:REPLICAS"):
            with_pools(base, [bad])


def test_the_report_and_trace_name_each_replica_by_its_pool(tmp_path):
    import json

    from servesim.report.html import run_report
    from servesim.report.trace import chrome_trace

    pools = [ServicePool(gpu="h100-sxm"), ServicePool(gpu="a100", name="old", replicas=2)]
    res = simulate(Scenario(workload=WL.model_copy(update={"num_requests": 60}), pools=pools))
    tracks = [e["args"]["name"] for e in json.loads(chrome_trace(res, tmp_path / "t.json").read_text())["traceEvents"]
              if e["ph"] == "M"]  # fmt: skip
    assert tracks == ["h100-sxm replica 0", "old replica 1", "old replica 2"]
    page = run_report(res, tmp_path / "r.html").read_text()
    assert "<h2>Pools</h2>" in page and "2 x a100-80gb-sxm TP1" in page
    assert "h100-sxm TP1, scheduler vllm + 2 x a100 TP1" in page  # the run's title names each pool


def test_size_aware_routing_prefers_the_cheapest_replica_that_keeps_up():
    """Each request goes where its size costs least, until that replica's queue holds a second of its work."""
    light = WL.model_copy(update={"num_requests": 40, "rate": 0.5})
    for l40s_price, cheap in ((0.1, "l40s"), (30.0, "h100-sxm")):
        pools = [ServicePool(gpu="h100-sxm"), ServicePool(gpu="l40s", price_per_gpu_hour=l40s_price)]
        s = simulate(Scenario(workload=light, pools=pools, router="size_aware")).summary()
        assert s["pools"][cheap]["requests"] == 40  # at a trickle the cheaper one takes everything
    heavy = WL.model_copy(update={"num_requests": 300, "rate": 40.0})
    s = simulate(Scenario(workload=heavy, pools=pools, router="size_aware")).summary()
    assert 0 < s["pools"]["l40s"]["requests"] < s["pools"]["h100-sxm"]["requests"]  # spills once the H100 backs up


def test_the_power_controller_caps_the_lowest_priority_pool_first():
    wl = WorkloadConfig(num_requests=1500, rate=60.0, seed=1)
    power = PowerConfig(budget_w=2500, throttle_cap_w=350)
    watts = {}
    for first in ("interactive", "batch"):
        pools = [ServicePool(gpu="h100-sxm", replicas=2, name=n, power_priority=int(n != first))
                 for n in ("interactive", "batch")]  # fmt: skip
        s = simulate(Scenario(workload=wl, pools=pools, power=power)).summary()
        assert s["power_control"]["cap_actions"] >= 1
        watts[first] = {n: p["avg_power_w"] for n, p in s["pools"].items()}
    assert watts["interactive"]["interactive"] < watts["interactive"]["batch"]
    assert watts["batch"]["batch"] < watts["batch"]["interactive"]


def test_a_pool_keeps_its_own_power_budget():
    wl = WorkloadConfig(num_requests=1500, rate=60.0, seed=1)
    pools = [ServicePool(gpu="h100-sxm", replicas=2, name="a", power_budget_w=1000),
             ServicePool(gpu="h100-sxm", replicas=2, name="b")]  # fmt: skip
    s = simulate(Scenario(workload=wl, pools=pools)).summary()
    assert "power_control" not in s and s["power_control_a"]["budget_w"] == 1000
    assert s["power_control_a"]["cap_actions"] >= 1 and s["pools"]["a"]["avg_power_w"] < s["pools"]["b"]["avg_power_w"]
    with pytest.raises(ServesimError, match="pool a's power budget 500 W is not above its idle draw"):
        plan(Scenario(pools=[ServicePool(gpu="h100-sxm", replicas=2, name="a", power_budget_w=500)]))


def test_slo_aware_routing_keeps_ttft_and_prefers_cheap_work():
    from servesim.config import SLO, LengthDist

    wl = WorkloadConfig(num_requests=400, rate=14.0, input=LengthDist(mean=1200, max=8000),
                        output=LengthDist(mean=150, max=1000), seed=3)  # fmt: skip
    pools = [ServicePool(gpu="h100-sxm"), ServicePool(gpu="l40s", replicas=3)]
    res = simulate(Scenario(workload=wl, slo=SLO(ttft_ms=500), pools=pools, router="slo_aware"))
    s = res.summary()
    assert (res.requests.ttft_s <= 0.5).mean() >= 0.99
    assert s["pools"]["l40s"]["requests"] > 0.9 * wl.num_requests  # cheaper per token, and fast enough to prefill
    with pytest.raises(ServesimError, match="router slo_aware keeps each request's predicted TTFT under the SLO"):
        plan(Scenario(pools=pools, router="slo_aware"))


def test_pools_with_roles_are_a_disaggregated_fleet():
    """Prefill pools of one GPU type hand requests to decode pools of others: the two-stage case of pools."""
    pools = [ServicePool(gpu="h100-sxm", name="pre", role="prefill"),
             ServicePool(gpu="h200", name="dec", role="decode"),
             ServicePool(gpu="a100", name="old", role="decode", replicas=2)]  # fmt: skip
    res = simulate(Scenario(workload=WL.model_copy(update={"num_requests": 200}), pools=pools))
    s = res.summary()
    assert s["completed"] == 200 and s["pools"]["pre"]["requests"] == 200
    assert s["pools"]["dec"]["requests"] + s["pools"]["old"]["requests"] == 200  # every request decoded once
    assert s["kv_transfer_ms"]["mean"] > 0
    assert (res.requests.kv_transfer_s > 0).all()  # each one crossed from the prefill pool
    with pytest.raises(ValueError, match="every pool is a prefill or a decode pool"):
        Scenario(pools=[ServicePool(gpu="h100-sxm", role="prefill"), ServicePool(gpu="a100")])


def test_a_pool_cap_below_the_gpus_lowest_clock_is_refused():
    with pytest.raises(ServesimError, match="raise pool old's power_cap_w"):
        plan(Scenario(pools=[ServicePool(gpu="h100-sxm"), ServicePool(gpu="a100", name="old", power_cap_w=50)]))
