"""Model-asset checks on real directories with safetensors files written by the tests."""

from __future__ import annotations

import json

from tests.preflight.helpers import build_model_dir, gpu_machine, tiny_config

from bugatlas.preflight import load_machine, parse_command, run_preflight
from bugatlas.preflight.assets import read_safetensors_header


def _run(tmp_path, model_dir, *, cc="8.9", gpu="NVIDIA L4", extra="", only=None):
    machine = load_machine(gpu_machine(tmp_path, gpu=gpu, cc=cc))
    launch = parse_command(f"vllm serve {model_dir} --max-model-len 2048 {extra}")
    return run_preflight(launch, machine, only=only)


def _one(report, check_id):
    found = [f for f in report.findings if f.check == check_id]
    assert len(found) == 1, found
    return found[0]


def test_a_complete_sharded_directory_passes_and_sizes_from_the_files(tmp_path):
    model = build_model_dir(tmp_path / "m", shards=3)
    report = _run(tmp_path, model)
    for cid in ("assets.files", "assets.safetensors", "assets.index", "assets.quantization"):
        assert _one(report, cid).severity == "pass", _one(report, cid).message
    st = _one(report, "assets.safetensors")
    assert st.numbers["shards"] == 3
    assert report.model["weights_bytes_on_disk"] == st.numbers["bytes"]


def test_truncated_shard_is_blocking_with_missing_byte_count(tmp_path):
    model = build_model_dir(tmp_path / "m", shards=2)
    shard = sorted(model.glob("*.safetensors"))[1]
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[: size - 1000])
    info = read_safetensors_header(shard)
    assert info.truncated_by == 1000
    f = _one(_run(tmp_path, model), "assets.safetensors")
    assert f.severity == "block"
    assert f.numbers["missing_bytes"] == 1000 and f.numbers["expected_size"] == size
    assert "truncated" in f.message and shard.name in f.message
    assert any("Safetensor File Corruption" in c.value for c in f.classes)


def test_corrupt_header_and_lfs_pointer_are_blocking(tmp_path):
    model = build_model_dir(tmp_path / "m")
    (model / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    f = _one(_run(tmp_path, model), "assets.safetensors")
    assert f.severity == "block" and "header" in f.message


def test_index_naming_a_missing_shard_or_tensor_is_blocking(tmp_path):
    model = build_model_dir(tmp_path / "m", shards=3)
    sorted(model.glob("*.safetensors"))[2].unlink()
    f = _one(_run(tmp_path, model), "assets.index")
    assert f.severity == "block" and f.numbers["missing_files"] == ["model-00003-of-00003.safetensors"]
    model2 = build_model_dir(tmp_path / "m2", shards=2)
    index = json.loads((model2 / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors"
    (model2 / "model.safetensors.index.json").write_text(json.dumps(index))
    f2 = _one(_run(tmp_path, model2), "assets.index")
    assert f2.severity == "block" and "model.layers.9.mlp.up_proj.weight" in f2.numbers["tensors_missing_from_shards"]


def test_missing_tokenizer_and_weights_are_blocking(tmp_path):
    model = build_model_dir(tmp_path / "m", tokenizer=False)
    for p in model.glob("*.safetensors"):
        p.unlink()
    f = _one(_run(tmp_path, model), "assets.files")
    assert f.severity == "block" and "tokenizer" in f.message and "weights" in f.message


def test_fp8_checkpoint_blocks_before_ampere_and_warns_on_ampere(tmp_path):
    model = build_model_dir(tmp_path / "m", fp8=True)
    turing = _one(_run(tmp_path, model, cc="7.5", gpu="Tesla T4"), "assets.quantization")
    assert turing.severity == "block"
    assert "needs compute capability ≥ 8.0" in turing.message and "7.5" in turing.message
    assert any(c.value == "Mismatched Precision" for c in turing.classes)
    ampere = _one(_run(tmp_path, model, cc="8.0", gpu="NVIDIA A100-SXM4-80GB"), "assets.quantization")
    assert ampere.severity == "warn" and "Marlin" in ampere.message
    ada = _one(_run(tmp_path, model, cc="8.9"), "assets.quantization")
    assert ada.severity == "pass"


def test_fp8_detected_from_safetensors_dtypes_without_quantization_config(tmp_path):
    model = build_model_dir(tmp_path / "m", fp8=True)
    cfg = json.loads((model / "config.json").read_text())
    cfg.pop("quantization_config")
    (model / "config.json").write_text(json.dumps(cfg))
    f = _one(_run(tmp_path, model, cc="7.0", gpu="Tesla V100"), "assets.quantization")
    assert f.severity == "block" and "F8_E4M3" in f.numbers["found_in"]


def test_quantization_flag_contradicting_the_checkpoint(tmp_path):
    model = build_model_dir(tmp_path / "m", fp8=True)
    f = _one(_run(tmp_path, model, extra="--quantization awq"), "assets.quantization")
    assert f.severity == "block" and "contradicts" in f.message


def test_llama_server_on_a_hf_directory_is_blocking(tmp_path):
    model = build_model_dir(tmp_path / "m", config=tiny_config())
    machine = load_machine(gpu_machine(tmp_path))
    report = run_preflight(parse_command(f"llama-server -m {model}"), machine)
    assert _one(report, "assets.files").severity == "block"


def test_hub_model_names_use_the_local_hub_cache(tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    snap = build_model_dir(repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    machine = load_machine(gpu_machine(tmp_path))
    report = run_preflight(parse_command("vllm serve acme/tiny-chat --max-model-len 2048"), machine)
    f = _one(report, "assets.files")
    assert f.severity == "pass" and f.numbers["directory"] == str(snap)
    assert _one(report, "tok.stop").severity == "pass"


def test_corrupt_or_unsizable_config(tmp_path):
    model = build_model_dir(tmp_path / "m")
    (model / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "hidden_size": 40')
    f = _one(_run(tmp_path, model), "assets.files")
    assert f.severity == "block" and "config.json is unreadable" in f.message
    assert any(c.value == "Config File Corruption" for c in f.classes)
    model2 = build_model_dir(tmp_path / "m2")
    (model2 / "config.json").write_text(json.dumps({"architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": 64}))
    report = _run(tmp_path, model2)
    assert _one(report, "assets.files").severity == "warn"
    assert _one(report, "res.gpu_memory").severity == "skip"


def test_kernel_choices_for_the_same_weights_are_not_contradictions(tmp_path):
    model = build_model_dir(tmp_path / "m")
    cfg = json.loads((model / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 16}
    (model / "config.json").write_text(json.dumps(cfg))
    assert _one(_run(tmp_path, model, extra="--quantization moe_wna16"), "assets.quantization").severity != "block"
    assert _one(_run(tmp_path, model, extra="--quantization awq_marlin"), "assets.quantization").severity == "pass"
    assert _one(_run(tmp_path, model, extra="--quantization fp8"), "assets.quantization").severity == "block"
