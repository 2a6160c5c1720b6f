"""Offloading: the placement, the layer pipeline's arithmetic, each policy, and the bad input it refuses."""

import pytest

from servesim.config import EngineConfig, OffloadConfig, Scenario
from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.hardware.tiers import TierPath, TierSpec
from servesim.models import get_model
from servesim.perf.batch import Batch
from servesim.sim.deployment import plan
from servesim.sim.memory import plan_memory

GIB = 2**30


def _pool(model="llama-3.1-70b", gpu="h100-sxm", **offload):
    engine = {"max_model_len": 4096, "offload": offload or {"policy": "stream"}}
    return plan(Scenario(model=model, gpu=gpu, engine=engine, perf_model="roofline")).pools[0]


def test_least_offloaded_that_fits():
    pool = _pool()
    p = pool.memory.placement
    assert 0.4 < p.offloaded < 0.6  # 70B bf16 (131 GiB) on one 80 GB GPU: about half of each layer streams in
    m = pool.memory
    used = m.weights_gib + m.reserve_gib + m.kv_gib
    assert used == pytest.approx(m.budget_gib, rel=1e-6)  # everything left is KV cache...
    assert m.kv_gib * GIB >= 4096 * m.kv.bytes_per_token * 0.999  # ...at least one max_model_len request's
    # a model that fits offloads nothing
    assert _pool("llama-3.1-8b").memory.placement.offloaded == 0.0


def test_layer_pipeline_arithmetic():
    pool = _pool(policy="stream", resident=0.2)
    perf, p = pool.perf, pool.memory.placement
    inner = perf.inner
    b = Batch.decode(4, 1024)
    comp, mem, other = inner.split(b)
    L = p.layers
    io = p.layer_io_bytes / (p.weights.read_gbs * 1e9) + 0  # weights only (KV on the device)
    c = (comp + mem) / L
    assert sum(perf.split(b)) == pytest.approx(L * max(c, io) + other, rel=1e-9)
    serial = plan(Scenario(model="llama-3.1-70b", perf_model="roofline", engine={
        "max_model_len": 4096, "offload": {"resident": 0.2, "prefetch": False}})).pools[0].perf  # fmt: skip
    assert sum(serial.split(b)) == pytest.approx(L * (io + c) + other, rel=1e-9)
    # the link, slower than the device here, sets the pace: the iteration is the weights' read time
    assert io > c and sum(perf.split(b)) == pytest.approx(L * io + other, rel=1e-9)
    assert p.offloaded == pytest.approx(0.8)


def test_decode_curve_agrees_with_split():
    perf = _pool(policy="flexgen", kv="host", attention="near", gpu_batch=8).perf
    for n in (1, 8, 20):
        curve = perf.decode_curve(n)
        for ctx in (16, 1000, 40_000):
            assert float(curve.times(ctx)) == pytest.approx(sum(perf.split(Batch.decode(n, ctx))), rel=0.02)


def test_flexgen_block_amortises_the_weights():
    perf = _pool(policy="flexgen", kv="host", attention="near", gpu_batch=32).perf
    per_request = [sum(perf.split(Batch.decode(n, 544))) / n for n in (1, 32, 256)]
    assert per_request[0] > 10 * per_request[1] > per_request[2] * 10  # one load serves the whole block
    # micro-batches of 32 cost more device time than one batch of 256 (smaller GEMMs), never less
    one = _pool(policy="flexgen", kv="host", attention="near").perf
    assert perf.policy.device_split(perf.inner, Batch.decode(256, 544 * 256 // 256))[1] >= \
        one.policy.device_split(one.inner, Batch.decode(256, 544))[1] * 0.999  # fmt: skip


def test_kv_in_host_memory():
    dev = _pool(policy="stream", resident=0.4, kv="host")
    near = _pool(policy="stream", resident=0.4, kv="host", attention="near")
    kept = _pool(policy="stream", resident=0.4)
    tier = get_gpu("h100-sxm").tier_path("host").tier
    # the cache lives in the tier, less the weights offloaded to the same tier
    assert dev.memory.kv_gib * GIB == pytest.approx(tier.capacity_bytes - dev.memory.placement.layer_io_bytes * 80)
    long = Batch.decode(64, 8192)
    t_dev, t_kept = sum(dev.perf.split(long)), sum(kept.perf.split(long))
    assert t_dev > t_kept  # streaming 64 x 8192 tokens of KV per layer costs link time
    kv_io = dev.memory.kv.per_layer * 64 * 8192 / (55e9)
    assert t_dev - t_kept == pytest.approx(80 * kv_io, rel=0.05)
    assert sum(near.perf.split(long)) != t_dev


def test_sparse_reads_only_active_neurons():
    pool = _pool("llama-3.2-1b", "snapdragon-8-gen3", policy="sparse", weights="flash", resident=0.0, sparsity=0.9)
    perf, p = pool.perf, pool.memory.placement
    pol = perf.policy
    assert pol.layer_bytes(Batch.decode(1, 100)) == pytest.approx(p.layer_io_bytes * 0.1)
    assert pol.layer_bytes(Batch.decode(2, 200)) == pytest.approx(p.layer_io_bytes * (1 - 0.81))
    assert pol.layer_bytes(Batch.prefill(512)) == pytest.approx(p.layer_io_bytes)  # a prompt touches every neuron
    m = get_model("llama-3.2-1b")
    ffn = m.dense_mlp_params() / (m.dense_mlp_params() + m.attention_params())
    assert p.offloadable_bytes == pytest.approx(ffn * (p.offloadable_bytes / ffn))
    # sparser is faster; bundles of one neuron read at a fraction of the flash's sequential rate
    denser = _pool("llama-3.2-1b", "snapdragon-8-gen3", policy="sparse", weights="flash", resident=0.0, sparsity=0.5)
    b = Batch.decode(1, 256)
    assert sum(perf.split(b)) < sum(denser.perf.split(b))
    flash = get_gpu("snapdragon-8-gen3").tier_path("flash")
    assert flash.read_rate(pol.chunk_bytes()) < flash.read_rate()


def test_tier_read_rate_and_plausibility():
    t = TierSpec(name="ssd", medium="ssd", capacity_gib=1000, read_gbs=7, write_gbs=3, latency_us=100,
                 queue_depth=4, link="pcie4x4")  # fmt: skip
    path = TierPath(t)
    assert path.read_rate() == 7e9
    chunk = 64 * 1024
    assert path.read_rate(chunk) == pytest.approx(4 * chunk / (100e-6 + chunk / 7e9))
    assert TierPath(t, cap_gbs=2.0).read_gbs == 2.0  # a slower link on the way sets the pace
    with pytest.raises(ValueError, match="more than any one device has"):
        TierSpec(name="host", medium="dram", capacity_gib=10**6, read_gbs=100, write_gbs=100)
    with pytest.raises(ValueError, match="outside"):
        TierSpec(name="ssd", medium="ssd", capacity_gib=100, read_gbs=0.0005, write_gbs=1)


@pytest.mark.parametrize("offload, match", [
    ({"weights": "none"}, "no tier to offload to"),
    ({"sparsity": 1.0, "policy": "sparse"}, "less than 1"),
    ({"attention": "near"}, "set kv"),
])  # fmt: skip
def test_config_refusals(offload, match):
    with pytest.raises(ValueError, match=match):
        OffloadConfig(**offload)


@pytest.mark.parametrize("model, gpu, offload, match", [
    ("llama-3.1-70b", "h100-sxm", {"weights": "flash"}, "no memory tier 'flash'"),
    ("llama-3.1-70b", "b200", {}, "no memory tier 'host'"),
    ("llama-3.1-70b", "h100-sxm", {"gpu_batch": 8}, "gpu_batch acts only"),
    ("llama-3.1-70b", "h100-sxm", {"kv": "ssd", "attention": "near"}, "nothing computes next to"),
    ("llama-3.1-70b", "h100-sxm", {"resident": 1.0}, "does not fit"),
    ("qwen3-30b-a3b", "h100-sxm", {"policy": "sparse"}, "mixture of experts"),
    ("llama-3.1-70b", "h100-sxm", {"policy": "nope"}, "unknown offload policy"),
])  # fmt: skip
def test_plan_refusals(model, gpu, offload, match):
    with pytest.raises(ServesimError, match=match):
        _pool(model, gpu, **{"policy": "stream", **offload})


def test_tier_too_small_is_refused():
    engine = EngineConfig(max_model_len=4096, offload={"weights": "flash", "resident": 0.0})
    with pytest.raises(ServesimError, match="holds"):
        plan_memory(get_model("llama-3.1-70b"), get_gpu("apple-m1-max").model_copy(update={"tiers": (
            TierSpec(name="flash", medium="flash", capacity_gib=16, read_gbs=6, write_gbs=5),)}), engine)  # fmt: skip


def test_a_model_that_fits_runs_as_without_offload():
    from servesim.api import simulate

    wl = {"num_requests": 60, "rate": 20.0, "seed": 3}
    base = simulate(Scenario(model="llama-3.1-8b", perf_model="roofline", workload=wl))
    off = Scenario(model="llama-3.1-8b", perf_model="roofline", workload=wl, engine={"offload": {"policy": "stream"}})
    again = simulate(off)
    assert again.summary()["output_throughput"] == base.summary()["output_throughput"]
    assert "nothing is offloaded" in " ".join(plan(off).notes)


def test_an_offloaded_run_reports_its_io_bound_speed():
    sc = Scenario(model="llama-3.1-70b", perf_model="roofline", engine={"max_model_len": 4096, "offload": {}},
                  workload={"num_requests": 4, "rate": 100.0, "seed": 1})  # fmt: skip
    (note,) = [n for n in plan(sc).notes if n.startswith("offload:")]
    assert "the link sets the pace" in note
    pool = plan(sc).pools[0]
    one = sum(pool.perf.split(Batch.decode(1, 1024)))
    assert f"takes {one * 1e3:.0f} ms" in note
    # a single decode is the offloaded weights' read time, within the last layer's compute
    p = pool.memory.placement
    assert one == pytest.approx(p.layer_io_bytes * p.layers / 55e9, rel=0.02)
