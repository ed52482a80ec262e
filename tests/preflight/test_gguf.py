"""llama-server with real GGUF files written by the `gguf` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bugatlas.preflight import machine_from_mapping, parse_command, run_preflight
from bugatlas.preflight.assets import read_gguf, spec_from_gguf

TOKENS = ["<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "hello", "world"]
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|eot_id|>{% endfor %}"
            "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}")


def write_gguf(path: Path, *, layers: int = 4, eos: int | None = 2, eot: bool = True, template: str | None = TEMPLATE,
               tokens: list[str] = TOKENS, output: bool = False) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_block_count(layers)
    w.add_context_length(8192)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(8)
    w.add_head_count_kv(2)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t.startswith("<") else 1 for t in tokens])
    w.add_bos_token_id(1)
    if eos is not None:
        w.add_eos_token_id(eos)
    if eot and "<|eot_id|>" in tokens:
        w.add_eot_token_id(tokens.index("<|eot_id|>"))
    if template:
        w.add_chat_template(template)
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 64), dtype=np.float16))
    if output:
        w.add_tensor("output.weight", np.zeros((len(tokens), 64), dtype=np.float16))
    for i in range(layers):
        w.add_tensor(f"blk.{i}.ffn_up.weight", np.zeros((128, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _machine(gpus=True, ram_gib=64):
    spec = {"cpu_ram_gib": ram_gib}
    if gpus:
        spec["gpus"] = [{"name": "NVIDIA GeForce RTX 3060", "memory_gib": 12, "compute_capability": "8.6"}]
    return machine_from_mapping(spec, where="test")


def _one(report, check_id):
    (f,) = [f for f in report.findings if f.check == check_id]
    return f


def test_gguf_metadata_becomes_a_model_shape(tmp_path):
    path = write_gguf(tmp_path / "m.gguf")
    info = read_gguf(path)
    assert info.fields["general.architecture"] == "llama" and info.tensors == 5
    spec = spec_from_gguf(path)
    assert (spec.num_layers, spec.num_heads, spec.num_kv_heads, spec.head_dim) == (4, 8, 2, 8)
    assert spec.weights_bytes() == info.tensor_bytes == (6 * 64 + 4 * 128 * 64) * 2
    assert spec.kv_bytes_per_token(2.0) == 2 * 4 * 2 * 8 * 2


def test_llama_server_with_a_good_gguf_passes(tmp_path):
    path = write_gguf(tmp_path / "m.gguf")
    report = run_preflight(parse_command(f"llama-server -m {path} -c 4096 -ngl 99"), _machine())
    bad = [(f.check, f.message) for f in report.findings if f.severity in ("warn", "block")]
    assert not bad, bad
    assert _one(report, "tok.stop").severity == "pass"
    assert _one(report, "assets.gguf").severity == "pass"


def test_truncated_gguf_is_blocking(tmp_path):
    path = write_gguf(tmp_path / "m.gguf")
    data = path.read_bytes()
    path.write_bytes(data[:-4000])
    report = run_preflight(parse_command(f"llama-server -m {path}"), _machine())
    f = _one(report, "assets.gguf")
    assert f.severity == "block"


def test_gguf_without_eos_and_broken_template(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", eos=None, eot=False, tokens=["<unk>", "<|begin_of_text|>", "hi"],
                      template="{% for m in messages %}{{ m.content }")
    report = run_preflight(parse_command(f"llama-server -m {path} --jinja"), _machine())
    assert _one(report, "tok.special_tokens").severity == "block"
    assert _one(report, "tok.chat_template").severity == "block"


def test_partial_offload_memory_and_cpu_part(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", layers=8)
    report = run_preflight(parse_command(f"llama-server -m {path} -ngl 4 -c 2048"), _machine())
    f = _one(report, "res.gpu_memory")
    assert f.severity == "pass" and f.numbers["layers_on_gpu"] == 4
    assert f.numbers["kv_bytes"] == (2 * 8 * 2 * 8 * 2) * 2048 // 2
    cpu_only = run_preflight(parse_command(f"llama-server -m {path}"), _machine(gpus=False))
    assert _one(cpu_only, "res.gpu_memory").severity == "skip"
    assert _one(cpu_only, "res.parallel_gpus").severity == "pass"


def test_missing_model_path(tmp_path):
    described = run_preflight(parse_command(f"llama-server -m {tmp_path / 'nope.gguf'}"), _machine())
    f = _one(described, "assets.files")
    assert f.severity == "skip"  # the described machine's files may live there, not here
    from bugatlas.preflight import detect_machine

    here = run_preflight(parse_command(f"llama-server -m {tmp_path / 'nope.gguf'}"), detect_machine())
    f = _one(here, "assets.files")
    assert f.severity == "block" and "does not exist" in f.message


def test_gguf_without_output_tensor_counts_tied_embeddings_once(tmp_path):
    # Gemma and Llama 3.2 1B/3B GGUFs have no output.weight: the head reuses token_embd.
    tied = spec_from_gguf(write_gguf(tmp_path / "tied.gguf")).param_count()
    untied = spec_from_gguf(write_gguf(tmp_path / "untied.gguf", output=True)).param_count()
    assert tied.lm_head == 0 and untied.lm_head == len(TOKENS) * 64
    assert untied.total - tied.total == len(TOKENS) * 64
