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
