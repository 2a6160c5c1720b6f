"""In-iteration mechanisms priced by the performance model: weight-only quantization, speculative decoding,
layered prefill, NanoFlow overlap, SM shares, and the MoE-Lens bound."""

import dataclasses

import numpy as np
import pytest

from servesim.bound import throughput_bound
from servesim.config import EngineConfig, SpeculativeConfig
from servesim.hardware import get_gpu
from servesim.models import get_model
from servesim.perf import Batch, RooflineModel
from servesim.perf.nanoflow import NanoFlowModel
from servesim.perf.profiled import load_profile_for, make_perf_model
from servesim.perf.quant import weight_quant
from servesim.perf.sm_share import SMShare, SMSharedModel
from servesim.perf.speculative import SpeculativeModel, draft_spec, expected_tokens
from servesim.sim.memory import plan_memory

M8, H100 = get_model("llama-3.1-8b"), get_gpu("h100-sxm")


@pytest.fixture(params=["roofline", "profiled"])
def kind(request):
    return request.param


def perf(kind, model=M8, **kw):
    return make_perf_model(model, H100, kind=kind, **kw)


def test_weight_only_quant_is_faster_when_memory_bound_and_slower_when_compute_bound(kind):
    plain, w4 = perf(kind), perf(kind, quant=weight_quant("awq"))
    assert w4.gemm_seconds(1, 28672, 4096) < 0.5 * plain.gemm_seconds(1, 28672, 4096)
    assert w4.gemm_seconds(8192, 28672, 4096) > plain.gemm_seconds(8192, 28672, 4096)
    w8 = perf(kind, quant=weight_quant("gptq", 8))
    assert w4.gemm_seconds(1, 28672, 4096) < w8.gemm_seconds(1, 28672, 4096) < plain.gemm_seconds(1, 28672, 4096)
    assert weight_quant("fp8") is None  # fp8 is W8A8: the fp8 dtype prices it


def test_quantized_weights_leave_more_kv_cache():
    plain = plan_memory(M8, H100, EngineConfig())
    w4 = plan_memory(M8, H100, EngineConfig(quantization="awq"))
    assert w4.weights_gib < 0.4 * plain.weights_gib and w4.num_blocks > plain.num_blocks
    assert EngineConfig(quantization="fp8").dtype == "fp8"


def test_expected_tokens_per_step():
    assert expected_tokens(SpeculativeConfig(num_speculative_tokens=2, acceptance_rate=0.5)) == pytest.approx(1.75)
    decay = SpeculativeConfig(num_speculative_tokens=2, acceptance_rate=0.5, acceptance_decay=0.5)
    assert expected_tokens(decay) == pytest.approx(1 + 0.5 + 0.5 * 0.25)


def test_verify_curve_equals_split_of_a_k_plus_1_token_decode(kind):
    p = perf(kind)
    for n in (1, 16, 200):
        curve = p.decode_curve(n, 4)
        for x in (100.0, 2000.0, 30000.0):
            assert float(curve.times(x)) == pytest.approx(sum(p.split(Batch(n, int(n * x), decode_q=4))), rel=1e-6)
    assert sum(p.split(Batch(8, 8000, decode_q=4))) > sum(p.split(Batch(8, 8000)))


def _spec(kind, cfg):
    draft = draft_spec(M8, cfg)
    return SpeculativeModel(perf(kind), None if draft is None else perf(kind, draft), cfg)


def test_speculation_helps_small_batches_and_hurts_large_ones(kind):
    plain = perf(kind)
    spec = _spec(kind, SpeculativeConfig(method="draft_model", draft_model="llama-3.2-1b"))
    per_token = lambda p, n: sum(p.split(Batch.decode(n, 1024)))  # noqa: E731
    assert per_token(spec, 1) < 0.8 * per_token(plain, 1)
    assert per_token(spec, 512) > per_token(plain, 512)
    for n in (1, 64):  # decode-only iterations: the split is the curve
        assert float(spec.decode_curve(n).times(1024)) == pytest.approx(per_token(spec, n))
    mixed = Batch(32, 32 * 1024, (512,), (0,))
    chunk_alone = sum(spec.split(Batch.prefill(512)))
    assert chunk_alone < sum(spec.split(mixed)) < sum(spec._step(mixed))  # the decodes' share is amortised


def test_eagle_head_is_one_layer_of_the_target():
    head = draft_spec(M8, SpeculativeConfig(method="eagle"))
    assert head.layers == 1 and head.hidden == M8.hidden
    assert draft_spec(M8, SpeculativeConfig(method="ngram")) is None


def test_layered_iteration_mixes_full_and_decode_only_costs(kind):
    p = perf(kind)
    full, dec = Batch(16, 16 * 500, (2048,), (0,)), Batch(16, 16 * 500)
    layered = dataclasses.replace(full, prefill_layers=0.25)
    want = 0.25 * sum(p.split(full)) + 0.75 * sum(p.split(dec))
    assert sum(p.split(layered)) == pytest.approx(want)
    assert sum(o.seconds for o in p.breakdown(layered)) == pytest.approx(want)


def test_layered_prefill_loads_moe_experts_once_per_prompt(kind):
    p = perf(kind, get_model("qwen3-30b-a3b"))
    n, prompt = 32, 2048
    chunked = sum(sum(p.split(Batch(n, n * 1000, (512,), (c,)))) for c in range(0, prompt, 512))
    layered = 4 * sum(p.split(Batch(n, n * 1000, (prompt,), (0,), prefill_layers=0.25)))
    assert layered < chunked


def test_nanoflow_overlap_is_between_the_longer_stream_and_the_sum(kind):
    p = perf(kind)
    nf = NanoFlowModel(p, 4)
    mixed = Batch(256, 256 * 1300, (2048,), (0,))
    comp, mem, other = p.split(mixed)
    t = sum(nf.split(mixed))
    assert max(comp, mem) + other < t <= comp + mem + other  # never worse than running in turn
    if kind == "profiled":  # the measured curves: bandwidth saturates on few SMs, so overlap pays
        assert t < 0.95 * (comp + mem + other)
    assert float(nf.decode_curve(64).times(1000)) == pytest.approx(sum(nf.split(Batch.decode(64, 1000))))


def test_measured_sm_shares_saturate_bandwidth_before_compute():
    sm = SMShare.for_profile(load_profile_for("h100-sxm"))
    assert sm.measured
    s = np.linspace(0.1, 1.0, 10)
    assert np.all(np.diff(sm.compute(s)) >= 0) and np.all(np.diff(sm.memory(s)) >= 0)
    assert sm.memory(0.4) > 0.85 and sm.compute(0.4) < 0.5 and sm.compute(1.0) == 1.0
    assert not SMShare().measured  # the assumed shape where there is no table


def test_a_share_of_the_sms_is_slower_and_its_curve_matches_its_split():
    p = RooflineModel(M8, H100)
    half = SMSharedModel(p, 0.5, SMShare(), "test")
    b = Batch(64, 64 * 1000, (1024,), (0,))
    assert sum(half.split(b)) > sum(p.split(b))
    assert float(half.decode_curve(64).times(1000)) == pytest.approx(sum(half.split(Batch.decode(64, 1000))))
    half.share = 0.9
    assert sum(half.split(b)) < sum(SMSharedModel(p, 0.5, SMShare(), "t").split(b))


def test_throughput_bound_orders(kind):
    p = perf(kind, get_model("qwen3-30b-a3b"))
    b = throughput_bound(p, 200_000, 256, 1024, 256)
    assert b.hardware_tokens_s > b.predicted_tokens_s > 0
    assert b.batch == int(200_000 // (1024 + 128)) and b.limited_by == "memory capacity"
