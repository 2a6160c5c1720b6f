import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.layout import Layout
from servesim.models import get_model
from servesim.perf import Batch, RooflineModel

H100 = get_gpu("h100")


def model(name="llama-3.1-8b", gpu=H100, tp=1, **kw):
    m, layout = get_model(name), Layout(tp)
    layout.check(m)  # (a deployment checks its layout once, before any model prices it)
    return RooflineModel(m, gpu, layout, **kw)


def test_batch_aggregates():
    b = Batch.prefill(4, 10) + Batch.decode(3, 100)
    assert b.num_tokens == 7 and b.num_seqs == 4
    assert b.prefill_pairs == 4 * 10 + 4 * 5 // 2
    assert b.prefill_kv_tokens == 14
    assert b.decode_ctx_sum == 300


@pytest.mark.parametrize("name", ["llama-3.1-8b", "mixtral-8x7b", "deepseek-v3", "qwen3-30b-a3b"])
def test_breakdown_sums_to_total(name):
    m = model(name, tp=8 if name == "deepseek-v3" else 1)
    b = Batch.prefill(300, 200) + Batch.decode(16, 900)
    ops = m.breakdown(b)
    assert sum(o.seconds for o in ops) == pytest.approx(m.iteration_time(b), rel=1e-12)
    names = {o.name for o in ops}
    assert {"qkv_proj", "attention", "o_proj", "lm_head", "embedding", "cpu_overhead"} <= names
    assert ("moe" in names) == get_model(name).is_moe
    assert all(o.seconds > 0 for o in ops)


def test_decode_times_match_iteration_time():
    m = model()
    ctx = np.array([64 * 100, 64 * 2000, 64 * 8000])
    vec = m.decode_times(64, ctx)
    one = [m.iteration_time(Batch(64, int(c))) for c in ctx]
    assert vec == pytest.approx(one, rel=1e-12)


def test_bounds():
    m = model()
    dec = {o.name: o.bound for o in m.breakdown(Batch.decode(1, 1000))}
    assert dec["mlp"] == "memory" and dec["attention"] == "memory"
    pre = {o.name: o.bound for o in m.breakdown(Batch.prefill(8192))}
    assert pre["mlp"] == "compute" and pre["attention"] == "compute"


def test_small_gemms_do_not_reach_peak():
    m = model()
    big = next(o for o in m.breakdown(Batch.prefill(8192)) if o.name == "mlp")
    small = next(o for o in m.breakdown(Batch.prefill(256)) if o.name == "mlp")
    assert small.flops / small.seconds < 0.9 * big.flops / big.seconds
    assert big.flops / big.seconds < H100.bf16_tflops * 1e12


def test_decode_is_weight_bound_at_batch_one():
    t = model().iteration_time(Batch.decode(1, 128))
    floor = get_model("llama-3.1-8b").weight_bytes() / (H100.mem_bw_gbs * 1e9)
    assert floor < t < 1.6 * floor


def test_h200_decodes_faster_and_h100_prefills_alike():
    h100, h200 = model(), model(gpu=get_gpu("h200"))
    assert h200.iteration_time(Batch.decode(64, 2048)) < 0.85 * h100.iteration_time(Batch.decode(64, 2048))
    assert h200.iteration_time(Batch.prefill(8192)) == pytest.approx(h100.iteration_time(Batch.prefill(8192)), rel=0.1)


def test_tensor_parallel():
    one, two = model(tp=1), model(tp=2)
    b = Batch.decode(8, 512)
    w1 = next(o for o in one.breakdown(b) if o.name == "mlp").bytes
    w2 = next(o for o in two.breakdown(b) if o.name == "mlp").bytes
    assert w2 == pytest.approx(w1 / 2, rel=0.01)  # weights split over two GPUs
    comm = {o.name: o for o in two.breakdown(Batch.prefill(2048))}["tp_comm"]
    comm_small = {o.name: o for o in two.breakdown(Batch.prefill(1024))}["tp_comm"]
    assert comm.bytes == 2 * comm_small.bytes and comm.seconds > comm_small.seconds
    comm_half = {o.name: o for o in two.breakdown(Batch.prefill(512))}["tp_comm"]
    # a fixed latency plus a term proportional to the payload
    assert comm.seconds - comm_small.seconds == pytest.approx(2 * (comm_small.seconds - comm_half.seconds))
    assert "tp_comm" not in {o.name for o in one.breakdown(b)}
    with pytest.raises(ServesimError, match="must divide"):
        model(tp=3)


def test_fp8_speeds_up_compute_bound_prefill():
    bf16, fp8 = model(), model(dtype="fp8")
    assert fp8.iteration_time(Batch.prefill(8192)) < 0.75 * bf16.iteration_time(Batch.prefill(8192))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 256),
    ctx=st.integers(1, 16384),
    chunk=st.integers(1, 8192),
    prior=st.integers(0, 16384),
    extra=st.integers(1, 512),
)
def test_monotone(n, ctx, chunk, prior, extra):
    """More tokens, more requests or more context never make an iteration faster."""
    m = model()
    t = m.iteration_time(Batch.decode(n, ctx))
    assert m.iteration_time(Batch.decode(n, ctx + extra)) >= t
    assert m.iteration_time(Batch.decode(n + 1, ctx)) >= t
    p = m.iteration_time(Batch.prefill(chunk, prior))
    assert m.iteration_time(Batch.prefill(chunk + extra, prior)) >= p
    assert m.iteration_time(Batch.prefill(chunk, prior + extra)) >= p
    assert m.iteration_time(Batch.prefill(chunk, prior) + Batch.decode(n, ctx)) >= max(p, t)


def test_moe_is_one_grouped_kernel_reading_each_hit_expert_once():
    """As engines run MoE (fused_moe, grouped GEMM): a decode step reads the weights of the experts its tokens hit
    once; a long prefill is bound by the experts' FLOPs; not one GEMM per expert."""
    spec, q = get_model("qwen3-30b-a3b"), model("qwen3-30b-a3b")
    moe = lambda m, b: {o.name: o for o in m.breakdown(b)}["moe"]  # noqa: E731
    hit = 128 * (1 - (1 - 1 / 128) ** (64 * 8))  # distinct experts 64 tokens x top 8 reach, uniform routing
    weights = hit * spec.expert_params() * 2 * spec.moe_layers
    step = moe(q, Batch.decode(64, 1024))
    floor = weights / (H100.mem_bw_gbs * 1e9 * q.p.mem_efficiency)
    assert floor < step.seconds < 1.3 * floor  # memory-bound on the hit experts' weights
    mix, m8 = model("mixtral-8x7b"), get_model("mixtral-8x7b")
    pre = moe(mix, Batch.prefill(4096))
    flops = 2 * 4096 * m8.top_k * m8.expert_params() * m8.moe_layers
    assert pre.flops >= flops and pre.seconds >= flops / (H100.peak_flops("bf16") * mix.p.gemm_efficiency)
    assert moe(mix, Batch.prefill(8192)).seconds == pytest.approx(2 * pre.seconds, rel=0.1)  # linear once bound
