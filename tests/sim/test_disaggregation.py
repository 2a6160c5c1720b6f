import numpy as np
import pytest

from servesim import Scenario, WorkloadConfig, simulate
from servesim.config import EngineConfig, KVTransferConfig, LengthDist, PoolConfig
from servesim.kv_geometry import KVGeometry
from servesim.layout import Layout
from servesim.models import get_model
from servesim.perf import Batch
from servesim.sim.cluster import Cluster
from servesim.sim.kv_transfer import HandOff, kv_transfer_seconds
from servesim.sim.request import Request
from tests.sim.conftest import pool_spec

MODEL = get_model("llama-3.1-8b")
KV_BYTES = MODEL.kv_bytes_per_token()


def run_pd(reqs, cfg=KVTransferConfig(), n_prefill=1, n_decode=1):
    requests = [Request(i, *t) for i, t in enumerate(reqs)]
    hand_off = HandOff(cfg, KV_BYTES, MODEL.layers)
    cluster = Cluster([pool_spec("prefill", n_prefill, router="least_tokens", hand_off=hand_off),
                       pool_spec("decode", n_decode, router="least_tokens", stage=1)])  # fmt: skip
    cluster.run(requests)
    prefill, decode = (pool.replicas for pool in cluster.pools)
    return prefill, decode, requests


def test_transfer_cost():
    cfg = KVTransferConfig(bandwidth_gbs=50, latency_us=10, mode="whole")
    whole = kv_transfer_seconds(4000, KV_BYTES, 32, cfg, 0.2)
    assert whole == pytest.approx(4000 * 131072 / 50e9 + 10e-6)
    layer = kv_transfer_seconds(4000, KV_BYTES, 32, cfg.model_copy(update={"mode": "layerwise"}), 0.2)
    assert layer == pytest.approx(4000 * 131072 / 50e9 / 32 + 10e-6)  # all but the last layer hidden
    slow = KVTransferConfig(bandwidth_gbs=0.5, mode="layerwise")
    assert kv_transfer_seconds(4000, KV_BYTES, 32, slow, 0.01) > 4000 * 131072 / 0.5e9 / 2  # not hideable


def test_each_gpu_moves_its_share_over_its_own_link():
    """Every receiving GPU takes what it will hold; the senders share that out: the busier side sets the pace."""
    m70 = get_model("llama-3.1-70b")
    tp1, tp2, tp4 = (KVGeometry.of(m70, Layout(tp)) for tp in (1, 2, 4))
    pp2 = KVGeometry.of(m70, Layout(2, 2))
    total = m70.kv_bytes_per_token()
    assert tp4.link_bytes_per_token(tp4) == total / 4
    assert tp2.link_bytes_per_token(tp4) == total / 2  # two senders feed four receivers
    assert tp4.link_bytes_per_token(tp2) == total / 2  # each receiver takes half
    assert pp2.link_bytes_per_token(tp4) == total / 4  # TP2 x PP2: four GPUs send, a quarter each
    assert tp1.link_bytes_per_token(tp1) == total
    ds = get_model("deepseek-v3")  # MLA: every TP GPU holds the whole latent, so each receiver takes all of it
    tp8 = KVGeometry.of(ds, Layout(8))
    assert tp8.link_bytes_per_token(tp8) == ds.kv_bytes_per_token()


def test_first_decode_token_waits_exactly_for_the_transfer(checked):
    prefill, decode, (req,) = run_pd([(0.0, 3000, 5)], KVTransferConfig(mode="whole", bandwidth_gbs=20))
    p_perf = prefill[0].perf
    prefill_s = p_perf.iteration_time(Batch.prefill(3000))
    assert req.record.first_token == pytest.approx(prefill_s)  # the prefill replica makes the first token
    transfer = 3000 * KV_BYTES / 20e9 + 10e-6
    assert req.record.transfer_s == pytest.approx(transfer)
    iter_ends = [prefill[0].meter.iter_end[: prefill[0].it], decode[0].meter.iter_end[: decode[0].it]]
    from servesim.metrics import token_times

    times = token_times(req, iter_ends)
    assert len(times) == 5
    first_decode = decode[0].perf.iteration_time(Batch.decode(1, 3001))
    assert times[1] - times[0] == pytest.approx(transfer + first_decode, rel=1e-9)
    assert [seg[0] for seg in req.record.segments] == [0, 1]
    assert prefill[0].state.kv.used == 0 and decode[0].state.kv.used == 0


def test_conservation_with_pools(checked):
    rng = np.random.default_rng(4)
    reqs = [(float(t), int(i), int(o)) for t, i, o in
            zip(np.cumsum(rng.exponential(0.02, 300)), rng.integers(1, 4000, 300), rng.integers(1, 300, 300),
                strict=True)]  # fmt: skip
    prefill, decode, done = run_pd(reqs, n_prefill=2, n_decode=2)
    assert all(q.record.finish is not None for q in done)
    for q in done:
        assert q.record.segments[0][0] in (0, 1)
        if q.output_len > 1:
            assert q.record.segments[-1][0] in (2, 3)
    assert all(r.state.kv.used == 0 and not r.state.running for r in prefill + decode)
    assert all(r.state.dec.n == 0 for r in prefill)  # prefill replicas never decode


def test_colocated_vs_disaggregated_mixed_hardware():
    wl = WorkloadConfig(num_requests=400, rate=6, seed=2, input=LengthDist(dist="lognormal", mean=3000, max=8000),
                        output=LengthDist(dist="lognormal", mean=150, max=1000))  # fmt: skip
    engine = EngineConfig()
    pd = simulate(Scenario(workload=wl, prefill=PoolConfig(gpu="h100", engine=engine),
                           decode=PoolConfig(gpu="h200", engine=engine)))  # fmt: skip
    s = pd.summary()
    assert s["completed"] == 400 and set(s["pools"]) == {"prefill", "decode"}
    assert s["pools"]["prefill"]["requests"] == 400 and s["pools"]["decode"]["requests"] > 300
    assert s["memory"]["decode"]["kv_cache_tokens"] > s["memory"]["prefill"]["kv_cache_tokens"]  # H200 holds more
    assert s["kv_transfer_ms"]["mean"] > 0
    assert pd.requests.kv_transfer_s.notna().sum() == (pd.requests.output_len > 1).sum()
    co = simulate(Scenario(workload=wl, replicas=2, router="least_tokens")).summary()
    # disaggregation removes prefill interference from decodes: steadier token pace
    assert s["tpot_ms"]["p99"] < co["tpot_ms"]["p99"]
