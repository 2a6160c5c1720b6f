import json

import pytest

from servesim.errors import ServesimError
from servesim.models import get_model, load_hf_config, model_names

CATALOG = [
    "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b",
    "qwen2.5-72b", "mistral-7b", "mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3",
]  # fmt: skip

# Published parameter counts (billions): model cards of each repository.
PUBLISHED = {
    "llama-3.1-8b": (8.03, 8.03),
    "llama-3.1-70b": (70.6, 70.6),
    "llama-3.1-405b": (405.9, 405.9),
    "qwen2.5-7b": (7.61, 7.61),
    "qwen2.5-14b": (14.7, 14.7),
    "qwen2.5-72b": (72.7, 72.7),
    "mistral-7b": (7.25, 7.25),
    "mixtral-8x7b": (46.7, 12.9),
    "qwen3-30b-a3b": (30.5, 3.3),
    "deepseek-v3": (671.0, 37.0),
}


def test_catalog_complete():
    assert set(CATALOG) <= set(model_names())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_published(name):
    total, active = PUBLISHED[name]
    m = get_model(name)
    assert m.num_params / 1e9 == pytest.approx(total, rel=0.01)
    assert m.active_params / 1e9 == pytest.approx(active, rel=0.03)


def test_kv_bytes():
    m = get_model("llama-3.1-8b")
    assert m.kv_bytes_per_token() == 128 * 1024  # 32 layers x 2 x 8 heads x 128 x 2 bytes
    assert m.kv_bytes_per_block(16) == 16 * 128 * 1024
    assert m.kv_bytes_per_token("fp8") == 64 * 1024
    assert get_model("llama-3.1-70b").kv_bytes_per_token() == 320 * 1024
    # MLA caches the 512-d latent plus the 64-d rotary key: 61 x 576 x 2 bytes
    assert get_model("deepseek-v3").kv_bytes_per_token() == 61 * 576 * 2


def test_weight_bytes_and_flops():
    m = get_model("llama-3.1-8b")
    assert m.weight_bytes("bf16") == 2 * m.num_params
    assert m.weight_bytes("fp8") == m.num_params + m.embedding_params()  # embedding and LM head stay bf16
    # 2 FLOPs per non-embedding weight; attention adds a term linear in context
    base = m.flops_per_token(0)
    assert base == pytest.approx(2 * (m.num_params - m.vocab * m.hidden), rel=1e-9)
    assert m.flops_per_token(1000) - base == pytest.approx(4 * 32 * 128 * 1000 * 32)


def test_structure_flags():
    assert get_model("mixtral-8x7b").is_moe and not get_model("mixtral-8x7b").is_mla
    ds = get_model("deepseek-v3")
    assert ds.is_mla and ds.is_moe and ds.dense_layers == 3 and ds.moe_layers == 58
    assert get_model("qwen2.5-7b").qkv_bias


def test_load_config_path(tmp_path):
    cfg = {
        "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": True,
    }  # fmt: skip
    d = tmp_path / "llama-3.2-1b"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    m = get_model(str(d))
    assert m.name == "llama-3.2-1b"
    assert m.num_params / 1e9 == pytest.approx(1.24, rel=0.01)  # Llama-3.2-1B: 1.24B


def test_bad_configs(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ServesimError, match="model_type 'gpt2' is not supported"):
        load_hf_config(p)
    p.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with pytest.raises(ServesimError, match="lacks 'num_attention_heads'"):
        load_hf_config(p)
    p.write_text("{")
    with pytest.raises(ServesimError, match="not valid JSON"):
        load_hf_config(p)
    with pytest.raises(ServesimError, match="unknown model 'gpt-9'"):
        get_model("gpt-9")
