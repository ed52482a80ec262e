"""Parameter counts, weight bytes and KV-cache bytes against published numbers."""

from __future__ import annotations

import pytest

from bugatlas.preflight.model import ModelSpec, find_known, known_models, spec_from_known


def test_llama3_8b_public_numbers():
    spec = spec_from_known("llama-3-8b")
    # 32 layers × 8 KV heads × 128 dims × 2 (K and V) × 2 bytes = 131,072 bytes = 128 KiB
    assert spec.kv_bytes_per_token(2.0) == 128 * 1024
    assert spec.param_count().total == 8_030_261_248  # the published 8.03 B
    assert spec.weights_bytes("bfloat16") == 8_030_261_248 * 2
    # tensor parallel 2 halves the KV heads per shard; fp8 halves the bytes
    assert spec.kv_bytes_per_token(2.0, tp=2) == 64 * 1024
    assert spec.kv_bytes_per_token(1.0) == 64 * 1024


@pytest.mark.parametrize("key", sorted(known_models()))
def test_every_known_shape_matches_its_published_parameter_count(key):
    published = float(known_models()[key]["params"])
    assert spec_from_known(key).param_count().total == pytest.approx(published, rel=0.01)


def test_mla_kv_cache_and_moe_counts_for_deepseek_v3():
    spec = spec_from_known("deepseek-v3")
    # MLA caches the 512-dim latent + 64-dim RoPE key per layer: 61 × 576 × 2 bytes
    assert spec.kv_bytes_per_token(2.0) == 61 * 576 * 2
    assert spec.kv_bytes_per_token(2.0, tp=8) == 61 * 576 * 2  # not split by tensor parallelism
    assert spec.quant_method == "fp8"
    pc = spec.param_count()
    assert pc.mlp > 0.95 * pc.total  # almost all parameters are experts
    # FP8 linear weights: about 1 byte per parameter
    assert spec.weights_bytes() == pytest.approx(pc.total, rel=0.01)


def test_sliding_window_layers_hold_only_the_window():
    spec = spec_from_known("gemma-3-27b")
    full = spec.kv_bytes_per_token(2.0) * 131072
    windowed = spec.kv_bytes(131072, 2.0)
    # 62 layers: 10 global, 52 local with a 1024-token window
    assert windowed == pytest.approx(full * (10 * 131072 + 52 * 1024) / (62 * 131072), rel=1e-6)


def test_gptq_4bit_weights_are_a_quarter_plus_scales():
    cfg = dict(known_models()["llama-3-8b"]["config"])
    cfg["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    spec = ModelSpec(config=cfg)
    pc = spec.param_count()
    expected = pc.linear * (4 + 20 / 128) / 8 + (pc.total - pc.linear) * 2
    assert spec.weights_bytes() == int(expected)
    assert spec.weights_bytes() < 0.4 * pc.total * 2


def test_model_names_map_to_known_shapes():
    assert find_known("meta-llama/Meta-Llama-3-8B-Instruct") == "llama-3-8b"
    assert find_known("Qwen/Qwen3-8B") == "qwen3-8b"
    assert find_known("Qwen/Qwen2.5-7B-Instruct-AWQ") == "qwen2.5-7b"
    assert find_known("someone/unheard-of-model") is None


def test_gemma3_gguf_local_layers_hold_only_the_window():
    """A GGUF file names the window but not the layout: Gemma 3's five-local-one-global layout
    comes from data/attention.yaml (it used to count every layer at the whole context)."""
    from tests.llama_server import model_path

    from bugatlas.preflight.assets import spec_from_gguf

    spec = spec_from_gguf(model_path())
    assert spec.model_type == "gemma3" and spec.num_layers == 18
    window = int(spec.config["sliding_window"])
    assert window == 512
    assert spec.local_attention_layers() == 15  # 18 layers, every sixth global
    per_layer = spec.kv_bytes_per_token(2.0) / 18
    assert spec.kv_bytes(32768, 2.0) == int(per_layer * (3 * 32768 + 15 * window))
    assert spec.kv_bytes(256, 2.0) == int(per_layer * 18 * 256)  # shorter than the window


def test_sliding_window_layout_from_layer_types_family_or_none():
    base = {"model_type": "gemma2", "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
            "hidden_size": 512, "head_dim": 64, "sliding_window": 100}
    assert ModelSpec(config=base).local_attention_layers() == 2  # Gemma 2 alternates
    types = ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"]
    assert ModelSpec(config={**base, "layer_types": types}).local_attention_layers() == 3  # the config wins
    # Qwen2 configs name a window they do not use; an unknown family keeps the whole context
    assert ModelSpec(config={**base, "model_type": "qwen2", "use_sliding_window": False}).local_attention_layers() == 0
    unknown = ModelSpec(config={**base, "model_type": "mistral"})
    assert unknown.local_attention_layers() == 0
    assert unknown.kv_bytes(1000, 2.0) == unknown.kv_bytes_per_token(2.0) * 1000
