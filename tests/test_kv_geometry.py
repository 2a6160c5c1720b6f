"""One KV geometry: the memory plan, the CPU swap tier, KV transfer, migration and the performance model all ask
it, so they agree (they did not: the swap tier divided the model's total by tp x pp)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim import EngineConfig, Scenario
from servesim.config import SpeculativeConfig
from servesim.kv_geometry import KVGeometry, kv_dtype
from servesim.layout import Layout
from servesim.models import get_model
from servesim.sim.deployment import plan

DEEPSEEK_TP8 = Scenario(model="deepseek-v3", gpu="h200", engine=EngineConfig(tp=8, dtype="fp8", max_model_len=8192))


def test_mla_and_replicated_kv_heads_per_gpu():
    ds = get_model("deepseek-v3")  # MLA: the 576-wide latent is whole on every TP GPU
    assert KVGeometry.of(ds, Layout(8)).bytes_per_token == 61 * 576 * 2 == 70_272
    assert ds.kv_bytes_per_token() / 8 == 8_784  # what dividing the model's total by the GPUs gave
    m70 = get_model("llama-3.1-70b")  # 8 KV heads over 16 GPUs: each GPU holds one, twice over
    assert KVGeometry.of(m70, Layout(16)).bytes_per_token == 80 * 2 * 1 * 128 * 2 == 2 * m70.kv_bytes_per_token() / 16
    assert KVGeometry.of(m70, Layout(4, 3)).layers == 27  # uneven stages: the largest sets what a GPU holds
    assert kv_dtype("fp8") == "bf16" and kv_dtype("fp8", "fp8") == "fp8" and kv_dtype("fp16") == "fp16"


def test_the_swap_tier_holds_what_the_memory_plan_holds_per_gpu():
    pool = plan(DEEPSEEK_TP8).pools[0]
    swap, e = pool.swap, pool.engine
    assert swap.block_bytes * swap.tensors == 70_272 * e.block_size  # 8x the tier's former figure
    assert swap.tensors == 61  # MLA: one latent tensor a layer
    assert swap.host_blocks == int(e.swap_space * 2**30 // (70_272 * e.block_size))


CASES = [  # (model, gpu, engine settings) that fit, across MLA, GQA with and without replicated heads, PP, EP
    ("llama-3.1-8b", "h100", {}),
    ("llama-3.1-8b", "h100", {"tp": 2, "pp": 2}),
    ("llama-3.1-8b", "h100", {"kv_cache_dtype": "fp8"}),
    ("llama-3.1-8b", "h100", {"speculative": SpeculativeConfig(method="eagle")}),
    ("llama-3.1-70b", "h100", {"tp": 16}),
    ("llama-3.1-70b", "h100", {"tp": 4, "pp": 3, "dtype": "fp8"}),
    ("qwen3-30b-a3b", "h100", {"tp": 8, "ep": 4}),
    ("qwen2.5-7b", "h100", {"tp": 28}),
    ("mixtral-8x7b", "h200", {"tp": 2, "ep": 2}),
    ("deepseek-v3", "h200", {"tp": 8, "dtype": "fp8", "max_model_len": 8192}),
]


@settings(max_examples=30, deadline=None)
@given(case=st.sampled_from(CASES), block_size=st.sampled_from([16, 32]), swap_gib=st.floats(0.5, 64))
def test_every_consumer_asks_the_same_geometry(case, block_size, swap_gib):
    model, gpu, settings_ = case
    engine = EngineConfig(block_size=block_size, swap_space=swap_gib, **settings_)
    pool = plan(Scenario(model=model, gpu=gpu, engine=engine)).pools[0]
    kv, memory, swap, perf = pool.memory.kv, pool.memory, pool.swap, pool.perf
    m, tp = get_model(model), engine.tp
    b = 1 if "fp8" in (engine.kv_cache_dtype,) else 2
    heads = max(1, m.kv_heads // tp)  # what one GPU holds of a layer, worked out here on its own
    assert kv.per_layer == ((m.kv_lora_rank + m.qk_rope_dim) * b if m.is_mla else 2 * heads * m.head_dim * b)
    assert kv.layers == -(-m.layers // engine.pp)
    # the memory plan sized its blocks by it
    assert memory.kv_bytes_per_token == kv.bytes_per_token
    assert memory.num_blocks * pool.layout.streams * kv.block_bytes(block_size) <= memory.kv_gib * 2**30
    # the swap tier copies and holds it
    assert swap.block_bytes * swap.tensors == pytest.approx(kv.block_bytes(block_size), rel=1e-12)
    assert swap.host_blocks == int(swap_gib * 2**30 // kv.block_bytes(block_size))
    # the performance model reads it: decode attention's bytes per context token, each layer on each GPU
    while getattr(perf, "inner", None) is not None:  # (under the mechanisms that wrap it: speculative decoding)
        perf = perf.inner
    assert perf.kv.per_layer == kv.per_layer and perf.kv.kv_heads == kv.kv_heads
    assert perf._decode_attn_coeffs()[1] == kv.per_layer
    # migration and KV transfer move each GPU's share over its own link
    assert kv.link_bytes_per_token(kv) == kv.bytes_per_token
