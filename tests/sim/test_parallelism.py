import numpy as np
import pytest

from servesim import EngineConfig, Scenario, ServesimError, WorkloadConfig, simulate
from servesim.config import LengthDist
from servesim.hardware import get_gpu
from servesim.layout import Layout
from servesim.models import get_model
from servesim.perf import Batch, RooflineModel
from servesim.sim.memory import plan_memory

FIXED = dict(input=LengthDist(dist="fixed", mean=1000), output=LengthDist(dist="fixed", mean=200))


def pipeline_utilisation(result) -> float:
    """Busy time of all virtual engines over (stages x duration): 1 means no bubble."""
    s = result.summary()
    return sum(r["busy_fraction"] for r in s["replicas"]) / len(s["replicas"])


def test_pipeline_bubble_shrinks_with_more_micro_batches():
    engine = EngineConfig(tp=2, pp=4)
    lone = simulate(Scenario(model="llama-3.1-70b", engine=engine,
                             workload=WorkloadConfig(num_requests=40, rate=0.2, **FIXED)))  # fmt: skip
    busy = simulate(Scenario(model="llama-3.1-70b", engine=engine, router="least_tokens",
                             workload=WorkloadConfig(num_requests=400, rate=float("inf"), **FIXED)))  # fmt: skip
    assert len(lone.replica_steps) == 4  # four micro-batch streams
    assert pipeline_utilisation(lone) < 0.3  # one request at a time: three stages idle
    assert pipeline_utilisation(busy) > 0.9
    # a lone request's iteration pays every stage and the sends between them
    flat = RooflineModel(get_model("llama-3.1-70b"), get_gpu("h100"), layout=Layout(tp=2))
    piped = RooflineModel(get_model("llama-3.1-70b"), get_gpu("h100"), layout=Layout(tp=2, pp=4))
    b = Batch.decode(8, 1000)
    sends = {o.name: o for o in piped.breakdown(b)}["pp_comm"]
    assert piped.iteration_time(b) == pytest.approx(flat.iteration_time(b) + sends.seconds)
    assert sends.bytes == 3 * 8 * 8192 * 2 / 2  # three boundaries, hidden state split over tp


def test_a_pipelined_replica_is_reported_as_one_replica_with_its_streams(tmp_path):
    """With PP each replica runs pp micro-batch streams (vLLM's virtual engines); the summary, the records and the
    power series name replicas, the streams inside them."""
    sc = Scenario(model="llama-3.1-70b", engine=EngineConfig(tp=2, pp=2), replicas=2, router="least_tokens",
                  workload=WorkloadConfig(num_requests=200, rate=8.0, seed=2, **FIXED))  # fmt: skip
    result = simulate(sc)
    s = result.summary()
    assert len(result.replica_steps) == 4  # four engines: two replicas of two streams
    assert [result.deployment.engine_label(i) for i in range(4)] == ["replica 0 stream 0", "replica 0 stream 1",
                                                                     "replica 1 stream 0", "replica 1 stream 1"]
    assert [r["replica"] for r in s["replicas"]] == [0, 1]
    for entry in s["replicas"]:
        streams = entry["engines"]
        assert [x["stream"] for x in streams] == [0, 1]
        assert entry["iterations"] == sum(x["iterations"] for x in streams) > 0
        assert entry["kv_cache"]["blocks"] == sum(x["kv_cache"]["blocks"] for x in streams)
    assert sorted(set(result.requests.replica)) == [0, 1]
    assert sum(r["completed"] for r in s["replicas"]) == s["completed"] == 200
    assert len(s["energy"]["replica_avg_power_w"]) == 2
    assert [c for c in result.power_series().columns if c.startswith("replica_")] == ["replica_0_w", "replica_1_w"]
    streamed = simulate(sc, stream=True).summary()
    assert [r["completed"] for r in streamed["replicas"]] == [r["completed"] for r in s["replicas"]]
    one = simulate(sc.model_copy(update={"replicas": 1})).summary()
    assert len(one["replicas"]) == 1 and len(one["replicas"][0]["engines"]) == 2  # one replica, streams inside


def test_pipeline_spreads_weights_and_kv():
    m, g = get_model("llama-3.1-70b"), get_gpu("h100")
    tp4 = plan_memory(m, g, EngineConfig(tp=4))
    pp2 = plan_memory(m, g, EngineConfig(tp=4, pp=2))
    assert pp2.weights_gib == pytest.approx(tp4.weights_gib / 2)
    # half the layers per GPU and more room per GPU; the cache is shared by the two micro-batch streams
    assert pp2.kv_tokens * 2 > 2 * tp4.kv_tokens
    with pytest.raises(ServesimError, match="pipeline parallel size 100"):
        Layout(pp=100).check(m)


def test_expert_parallelism():
    m, g = get_model("mixtral-8x7b"), get_gpu("h100")
    tp = RooflineModel(m, g, layout=Layout(tp=2))
    ep = RooflineModel(m, g, layout=Layout(tp=2, ep=2))
    skewed = RooflineModel(m, g, Layout(tp=2, ep=2), expert_skew=1.8)
    b = Batch.prefill(4096)
    moe = lambda r: {o.name: o for o in r.breakdown(b)}["moe"]  # noqa: E731
    a2a = ep._moe_parts(np.array([4096.0]))[-1]  # dispatch + combine: each GPU sends its tokens' k copies
    assert float(a2a[2][0]) == pytest.approx(2 * 32 * (4096 / 2) * 2 * 4096 * 2 * (1 / 2))
    assert len(tp._moe_parts(np.array([4096.0]))) == len(ep._moe_parts(np.array([4096.0]))) - 1
    assert moe(skewed).seconds > 1.3 * moe(ep).seconds  # the busiest GPU sets the pace
    with pytest.raises(ServesimError, match="expert parallel size 3"):
        Layout(ep=3).check(m)
    with pytest.raises(ServesimError, match="needs a MoE model"):
        Layout(ep=2).check(get_model("llama-3.1-8b"))
    s = simulate(Scenario(model="mixtral-8x7b", engine=EngineConfig(tp=2, ep=2, expert_skew=1.5),
                          workload=WorkloadConfig(num_requests=100))).summary()  # fmt: skip
    assert s["completed"] == 100


def test_collectives_cross_nodes_over_the_network():
    m, g = get_model("llama-3.1-405b"), get_gpu("h100")
    b = Batch.decode(64, 2048)
    comm = lambda r: {o.name: o.seconds for o in r.breakdown(b)}["tp_comm"]  # noqa: E731
    in_node = RooflineModel(m, g, layout=Layout(tp=8))
    spanning = RooflineModel(m, g, Layout(16))  # two 8-GPU nodes: all-reduce over 50 GB/s NICs instead of NVLink
    assert comm(spanning) > 3 * comm(in_node)
    big_node = RooflineModel(m, g, layout=Layout(tp=16, gpus_per_node=16))
    assert comm(big_node) < comm(spanning)


def test_data_parallel_attention_with_expert_parallelism():
    """DP attention: each rank attends on its own tp GPUs with its own cache, MoE layers span every rank's GPUs."""
    qwen, big = get_model("qwen3-30b-a3b"), get_model("qwen3-235b-a22b")
    wide = Layout(tp=1, ep=8, dp=8)
    assert wide.check(get_model("deepseek-v3")) == [] and wide.label() == "TP1 DP8 EP8"
    assert (wide.gpus, wide.moe_gpus, wide.engines) == (8, 8, 8)
    with pytest.raises(ServesimError, match="is for MoE models"):
        Layout(dp=2).check(get_model("llama-3.1-8b"))
    with pytest.raises(ServesimError, match="must divide the GPUs an MoE layer spans"):
        Layout(tp=1, dp=2, ep=4).check(qwen)
    with pytest.raises(ServesimError, match="more GPUs than its 768 columns"):
        Layout(dp=10**12).check(qwen)  # refused before any engine is built
    # experts split over all four GPUs either way; attention and the rest replicated per rank under DP, split by TP
    g = get_gpu("h200")
    dep = plan_memory(big, g, EngineConfig(tp=1, dp=4, ep=4, max_model_len=8192))
    tep = plan_memory(big, g, EngineConfig(tp=4, ep=4, max_model_len=8192))
    assert tep.weights_gib < dep.weights_gib < 1.2 * tep.weights_gib
    s = simulate(Scenario(model="qwen3-30b-a3b", engine=EngineConfig(tp=1, dp=2, ep=2, max_model_len=8192),
                          workload=WorkloadConfig(num_requests=40))).summary()  # fmt: skip
    assert s["completed"] == 40 and len(s["replicas"]) == 1
    ranks = s["replicas"][0]["engines"]
    assert [e["rank"] for e in ranks] == [0, 1] and all(e["iterations"] > 0 for e in ranks)
