"""Builders for real model directories, GGUF files and machine descriptions used by the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
WORDS = "the capital of france is paris and italy rome what hi be brief assistant user system".split()


def write_machine(path: Path, **spec: Any) -> Path:
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def gpu_machine(tmp: Path, name: str = "gpu.yaml", *, gpu: str = "NVIDIA GeForce RTX 4090", memory_gib: float = 24,
                cc: str = "8.9", count: int = 1, **extra: Any) -> Path:
    spec = {"gpus": [{"name": gpu, "memory_gib": memory_gib, "compute_capability": cc, "count": count}],
            "driver": "550.54.14", "cpu_ram_gib": 64, "python": "3.11.9"}
    spec.update(extra)
    return write_machine(tmp / name, **spec)


def tiny_config(**over: Any) -> dict[str, Any]:
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 64,
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 0, "eos_token_id": 4,
    }
    cfg.update(over)
    return cfg


def build_tokenizer(directory: Path, specials: list[str] = SPECIALS) -> dict[str, int]:
    """A real word-level tokenizer.json (tokenizers library) with special added tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(specials)}
    for w in WORDS + ["[UNK]"]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(specials)
    tok.save(str(directory / "tokenizer.json"))
    return vocab


def write_weights(directory: Path, config: dict[str, Any], *, shards: int = 1, dtype: str = "bfloat16",
                  fp8: bool = False) -> list[Path]:
    """Small real safetensors shards (safetensors package) with an index when sharded."""
    import numpy as np
    from safetensors.numpy import save_file

    h, v, inter = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    tensors: dict[str, Any] = {"model.embed_tokens.weight": np.zeros((v, h), np.float16),
                               "lm_head.weight": np.zeros((v, h), np.float16)}
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        tensors[p + "mlp.up_proj.weight"] = np.zeros((inter, h), np.uint8 if fp8 else np.float16)
        tensors[p + "mlp.down_proj.weight"] = np.zeros((h, inter), np.uint8 if fp8 else np.float16)
        tensors[p + "input_layernorm.weight"] = np.ones((h,), np.float16)
    names = sorted(tensors)
    paths, weight_map = [], {}
    for s in range(shards):
        part = {n: tensors[n] for n in names[s::shards]}
        fname = "model.safetensors" if shards == 1 else f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, str(directory / fname), metadata={"format": "pt"})
        if fp8:  # numpy has no float8: relabel the uint8 tensors in the header as F8_E4M3
            _relabel(directory / fname, "U8", "F8_E4M3")
        paths.append(directory / fname)
        weight_map.update({n: fname for n in part})
    if shards > 1:
        total = sum(t.nbytes for t in tensors.values())  # HF: bytes of tensor data
        (directory / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}), encoding="utf-8")
    return paths


def _relabel(path: Path, old: str, new: str) -> None:
    import struct

    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    for name, t in header.items():
        if name != "__metadata__" and t["dtype"] == old:
            t["dtype"] = new
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data offsets are relative to the data start; pad to 8
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def build_model_dir(directory: Path, *, config: dict[str, Any] | None = None, template: str | None = LLAMA3_TEMPLATE,
                    eos: str | None = "<|eot_id|>", bos: str | None = "<|begin_of_text|>",
                    generation_eos: Any = "same", shards: int = 1, fp8: bool = False,
                    tokenizer: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    cfg = config or tiny_config()
    vocab = build_tokenizer(directory) if tokenizer else {}
    if fp8:
        cfg = {**cfg, "quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic"}}
    (directory / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    tc: dict[str, Any] = {"add_bos_token": True, "model_max_length": 4096}
    if bos:
        tc["bos_token"] = bos
    if eos:
        tc["eos_token"] = eos
    if template is not None:
        tc["chat_template"] = template
    (directory / "tokenizer_config.json").write_text(json.dumps(tc), encoding="utf-8")
    if generation_eos == "same":
        generation_eos = vocab.get(eos) if eos else None
    gen = {"bos_token_id": vocab.get(bos) if bos else None}
    if generation_eos is not None:
        gen["eos_token_id"] = generation_eos
    (directory / "generation_config.json").write_text(json.dumps(gen), encoding="utf-8")
    write_weights(directory, cfg, shards=shards, fp8=fp8)
    return directory
