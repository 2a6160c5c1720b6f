"""The profiler's kernels and validation decoder on the CPU (needs PyTorch; skipped without it)."""

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from servesim.models import get_model  # noqa: E402
from servesim.profiler import kernels as K  # noqa: E402
from servesim.profiler.validate import validation_grid  # noqa: E402


def reference_attention(q, k, v, ctx):
    """Plain softmax attention, K/V heads repeated, causal with `ctx` cached keys before the queries."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    L, S = q.shape[2], k.shape[2]
    mask = torch.ones(L, S, dtype=torch.bool).tril(diagonal=ctx)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), -1) @ v


@pytest.mark.parametrize("ctx", [0, 7])
def test_prefill_attention_is_causal_after_the_cache(ctx):
    L, hq, hkv, d = 5, 8, 2, 16
    q = torch.randn(L, hq, d)
    k, v = torch.randn(1, hkv, ctx + L, d), torch.randn(1, hkv, ctx + L, d)
    out = K.attention_prefill(q, k, v)
    ref = reference_attention(q.transpose(0, 1).unsqueeze(0), k, v, ctx)[0].transpose(0, 1).reshape(L, hq * d)
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_split_kv_decode_on_the_gpu_matches_the_reference():
    report = K.probe("cuda")
    assert report["decode_backends"] and K.DECODE_BACKENDS  # a split-KV backend was found and is used
    B, hq, hkv, d, C = 2, 32, 8, 128, 9000
    q = torch.randn(B, hq, d, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(B, hkv, C, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    ref = reference_attention(q.float().cpu().unsqueeze(2), k.float().cpu(), v.float().cpu(), C)[:, :, 0]
    ref = ref.reshape(B, hq * d)
    out = K.attention_decode(q, k, v).float().cpu()
    assert (out - ref).norm() / ref.norm() < 1e-2


def test_decode_attention_packs_query_groups():
    B, hq, hkv, d, C = 3, 8, 2, 16, 11
    q, k, v = torch.randn(B, hq, d), torch.randn(B, hkv, C, d), torch.randn(B, hkv, C, d)
    ref = reference_attention(q.unsqueeze(2), k, v, C)[:, :, 0].reshape(B, hq * d)
    assert torch.allclose(K.attention_decode(q, k, v), ref, atol=1e-5)


def test_write_kv_layouts():
    cache = torch.zeros(1, 2, 10, 4)
    new = torch.randn(3, 2, 4)
    K.write_kv(cache, new, 5)
    assert torch.equal(cache[0, :, 5:8], new.transpose(0, 1))
    batch = torch.zeros(3, 2, 10, 4)
    K.write_kv(batch, new, 9)
    assert torch.equal(batch[:, :, 9], new)


def test_decoder_forward_shapes(monkeypatch):
    import servesim.profiler.decoder as D

    monkeypatch.setattr(D, "DT", torch.float32)
    spec = dataclasses.replace(get_model("llama-3.1-8b"), hidden=64, intermediate=128, layers=2, heads=4,
                               kv_heads=2, head_dim=16, vocab=100)  # fmt: skip
    dec = D.Decoder(spec, "cpu")
    assert dec.forward(dec.inputs(5, 3, 4, 7)).shape == (5, 100)  # one chunk + four decodes
    assert dec.forward(dec.inputs(0, 0, 4, 7)).shape == (4, 100)
    assert dec.forward(dec.inputs(9, 0, 0, 0)).shape == (1, 100)
    for q_lora in (0, 24):  # DeepSeek-V2-Lite's direct query projection, and V3's low-rank one
        mla = dataclasses.replace(get_model("deepseek-v2-lite"), hidden=64, layers=2, heads=4, vocab=100, top_k=2,
                                  num_experts=8, moe_intermediate=32, shared_intermediate=32, q_lora_rank=q_lora,
                                  kv_lora_rank=32, qk_nope_dim=16, qk_rope_dim=8, v_head_dim=16)  # fmt: skip
        mla_dec = D.Decoder(mla, "cpu")
        assert mla_dec.forward(mla_dec.inputs(5, 3, 4, 7)).shape == (5, 100)
        assert mla_dec.inputs(5, 3, 0, 0)["prefill_cache"][0].shape == (1, 8, 40)  # one latent + rotary key a token
    moe = dataclasses.replace(get_model("qwen3-30b-a3b"), hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16,
                              vocab=100, num_experts=8, top_k=2, moe_intermediate=32)  # fmt: skip
    moe_dec = D.Decoder(moe, "cpu")
    assert moe_dec.forward(moe_dec.inputs(5, 3, 4, 7)).shape == (5, 100)  # routed experts, qk-norm


def test_absorbed_mla_decode_equals_decompressed_attention():
    """A decode scored in the latent space (W_UK absorbed into the query, W_UV applied after) gives what the prompt
    path gives the same token: its keys and values decompressed with kv_b_proj, ordinary attention over them."""
    torch.manual_seed(0)
    H, dl, rope, nope, v, C = 4, 32, 8, 16, 12, 9
    kvb = torch.randn(H * (nope + v), dl) * 0.2
    per_head = kvb.view(H, nope + v, dl)
    w_uk, w_uv = per_head[:, :nope].contiguous(), per_head[:, nope:].transpose(1, 2).contiguous()
    q_nope, q_rot = torch.randn(1, H, nope), torch.randn(1, H, rope)
    latent, rot = torch.randn(1, dl), torch.randn(1, rope)
    cache = torch.randn(1, C, dl + rope)
    prefill = K.mla_prefill(q_nope, q_rot, latent, rot, cache.clone(), C - 1, kvb)  # the last token, over all C
    decode = K.mla_decode(q_nope, q_rot, latent, rot, cache.clone(), C - 1, w_uk, w_uv)
    assert decode.shape == prefill.shape == (1, H * v)
    assert torch.allclose(decode, prefill, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mla_decode_kernel_on_the_gpu_matches_the_reference():
    from servesim.profiler import mla_decode

    mla_decode.tune("cuda")
    for B, H, C in ((1, 16, 9000), (3, 128, 700), (2, 4, 300)):  # split and direct, heads past and under a block
        q = torch.randn(B, H, 576, device="cuda", dtype=torch.bfloat16)
        cache = torch.randn(B, C, 576, device="cuda", dtype=torch.bfloat16)
        ref = K.mla_attention_reference(q, cache, 512, 192**-0.5)
        out = mla_decode.mla_attention(q, cache, 512, 192**-0.5).float()
        assert (out - ref).norm() / ref.norm() < 1e-2


def test_decoder_spreads_a_prompt_over_the_experts(monkeypatch):
    """A random-weight model's prompt would collapse onto a few experts layer by layer (causal attention gives
    every position nearly the same update); the decoder's routing bias keeps its last layer as spread as its first."""
    import servesim.profiler.decoder as D

    monkeypatch.setattr(D, "DT", torch.float32)
    torch.manual_seed(0)
    spec = dataclasses.replace(get_model("qwen3-30b-a3b"), hidden=256, layers=12, heads=4, kv_heads=2, head_dim=64,
                               vocab=1000, num_experts=64, top_k=4, moe_intermediate=32)  # fmt: skip
    dec, hit = D.Decoder(spec, "cpu"), []
    route = D.K.moe_route

    def spy(logits, k):
        weights, ids = route(logits, k)
        hit.append(ids.unique().numel())
        return weights, ids

    monkeypatch.setattr(D.K, "moe_route", spy)
    dec.forward(dec.inputs(64, 0, 0, 0))  # 256 routed copies over 64 experts: uniform routing hits about 63
    assert min(hit) >= 56, hit


def test_grouped_moe_matches_one_expert_at_a_time():
    """The MoE layer as engines run it (grouped GEMMs over routed copies in expert order) computes the layer."""
    if not hasattr(torch, "_grouped_mm"):
        pytest.skip("this PyTorch has no grouped GEMM")
    import servesim.profiler.kernels as K

    gen = torch.Generator().manual_seed(1)
    for align in (1, 16):
        K.MOE_ALIGN = align
        x = torch.randn(29, 64, generator=gen, dtype=torch.bfloat16)
        w13 = torch.randn(8, 64, 64, generator=gen, dtype=torch.bfloat16) * 0.1
        w2 = torch.randn(8, 64, 32, generator=gen, dtype=torch.bfloat16) * 0.1
        logits = torch.randn(29, 8, generator=gen)
        logits[:, :3] -= 50.0  # three experts get nothing
        weights, ids = K.moe_route(logits, 2)
        assert torch.allclose(weights.sum(-1), torch.ones(29))
        ref = K.moe_reference(x, w13, w2, weights, ids)
        out = K.moe_experts(x, w13, w2, weights, ids).float()
        assert float((out - ref).norm() / ref.norm()) < 2e-2
    K.MOE_ALIGN = 1


def test_validation_grid_covers_three_kinds():
    grid = validation_grid(get_model("llama-3.1-8b"))
    kinds = {g[0] for g in grid}
    assert kinds == {"prefill", "decode", "mixed"}
    assert ("prefill", 8192, 0, 0, 0) in grid and ("decode", 0, 0, 256, 2048) in grid
