"""A model's shape and what it costs: parameters, weight bytes, KV-cache bytes per token.

Everything is computed from the architecture fields of a Hugging Face ``config.json`` (or the
same fields read from a GGUF file, or a known shape in ``data/models.yaml``), so a deployment
can be sized without downloading weights. Counts follow the modules the engines build:
embeddings, attention projections (standard, grouped-query or DeepSeek's MLA), gated MLPs,
mixture-of-experts layers, norms and the LM head (unless tied to the embeddings).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bugatlas.errors import BadInputError
from bugatlas.preflight._data import load

DTYPE_BYTES = {
    "float32": 4.0, "fp32": 4.0, "f32": 4.0, "float": 4.0,
    "float16": 2.0, "fp16": 2.0, "f16": 2.0, "half": 2.0,
    "bfloat16": 2.0, "bf16": 2.0,
    "fp8": 1.0, "fp8_e4m3": 1.0, "fp8_e5m2": 1.0, "float8_e4m3fn": 1.0, "fp8_inc": 1.0,
    # llama.cpp cache types: block formats of 32 values (bytes per block / 32)
    "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32,
    "iq4_nl": 18 / 32,
}  # fmt: skip


def dtype_bytes(name: str | None, default: float = 2.0) -> float:
    if not name:
        return default
    return DTYPE_BYTES.get(str(name).lower().replace("torch.", ""), default)


@dataclass
class ParamCount:
    embedding: int = 0
    lm_head: int = 0
    attention: int = 0        # linear weights of attention (quantizable)
    mlp: int = 0              # linear weights of dense MLPs and experts (quantizable)
    other: int = 0            # norms, biases, routers, extra towers (kept in model dtype)

    @property
    def total(self) -> int:
        return self.embedding + self.lm_head + self.attention + self.mlp + self.other

    @property
    def linear(self) -> int:
        return self.attention + self.mlp


@dataclass
class ModelSpec:
    """The fields of a model config that sizing needs, with the config kept for other checks."""

    config: dict[str, Any]
    source: str = "config"                 # a path, "known:<name>" or "gguf:<path>"
    name: str | None = None
    directory: Path | None = None          # local model directory, when there is one
    weights_bytes_on_disk: int | None = None
    notes: list[str] = field(default_factory=list)

    # -- basic fields ------------------------------------------------------------------------
    def _get(self, *keys: str, default: Any = None) -> Any:
        text = self.config.get("text_config") or {}
        for key in keys:
            if key in self.config and self.config[key] is not None:
                return self.config[key]
            if key in text and text[key] is not None:
                return text[key]
        return default

    def _int(self, *keys: str, default: int | None = None) -> int:
        value = self._get(*keys, default=default)
        if value is None:
            raise BadInputError(f"{self.source}: model config lacks {keys[0]}")
        return int(value)

    @property
    def architectures(self) -> list[str]:
        return list(self.config.get("architectures") or [])

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")

    @property
    def vocab_size(self) -> int:
        return self._int("vocab_size")

    @property
    def hidden_size(self) -> int:
        return self._int("hidden_size", "n_embd", "d_model")

    @property
    def num_layers(self) -> int:
        return self._int("num_hidden_layers", "n_layer", "num_layers")

    @property
    def num_heads(self) -> int:
        return self._int("num_attention_heads", "n_head")

    @property
    def num_kv_heads(self) -> int:
        return int(self._get("num_key_value_heads", "n_head_kv", default=None) or self.num_heads)

    @property
    def head_dim(self) -> int:
        return int(self._get("head_dim", default=None) or self.hidden_size // self.num_heads)

    @property
    def intermediate_size(self) -> int:
        return self._int("intermediate_size", "ffn_dim", "n_inner", default=4 * self.hidden_size)

    @property
    def max_position_embeddings(self) -> int | None:
        value = self._get("max_position_embeddings", "max_sequence_length", "seq_length", "n_positions")
        return int(value) if value else None

    @property
    def tied_embeddings(self) -> bool:
        return bool(self._get("tie_word_embeddings", default=False))

    @property
    def torch_dtype(self) -> str:
        return str(self._get("torch_dtype", "dtype", default="float16")).replace("torch.", "")

    @property
    def is_mla(self) -> bool:
        return self._get("kv_lora_rank") is not None

    @property
    def num_experts(self) -> int:
        return int(self._get("n_routed_experts", "num_experts", "num_local_experts", default=0) or 0)

    @property
    def quantization_config(self) -> dict[str, Any] | None:
        q = self._get("quantization_config")
        return q if isinstance(q, dict) else None

    @property
    def quant_method(self) -> str | None:
        q = self.quantization_config
        if not q:
            return None
        method = q.get("quant_method")
        if method == "bitsandbytes" or q.get("load_in_4bit") or q.get("load_in_8bit"):
            return "bitsandbytes"
        return str(method).lower() if method else None

    # -- parameters ----------------------------------------------------------------------------
    def _attention_params(self) -> tuple[int, int]:
        """(linear weights, norms and biases) of one layer's attention."""
        h, heads = self.hidden_size, self.num_heads
        if self.is_mla:  # DeepSeek-V2/V3 multi-head latent attention
            q_rank = self._get("q_lora_rank")
            kv_rank = self._int("kv_lora_rank")
            nope, rope = self._int("qk_nope_head_dim"), self._int("qk_rope_head_dim")
            v_dim = self._int("v_head_dim")
            q_out = heads * (nope + rope)
            linear = (h * q_rank + q_rank * q_out) if q_rank else h * q_out
            linear += h * (kv_rank + rope) + kv_rank * heads * (nope + v_dim) + heads * v_dim * h
            other = (q_rank or 0) + kv_rank
            return linear, other
        d, kv = self.head_dim, self.num_kv_heads
        linear = h * heads * d + 2 * h * kv * d + heads * d * h
        other = 0
        if self._get("attention_bias", default=self.model_type in ("qwen2", "qwen2_moe")):
            other += heads * d + 2 * kv * d
        if self._get("qk_norm", default=self.model_type in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text")):
            other += 2 * d
        return linear, other

    def _mlp_params(self, layer: int) -> tuple[int, int]:
        """(linear weights, router and other) of one layer's feed-forward block."""
        h = self.hidden_size
        gated = 3 if self._get("hidden_act", "hidden_activation", default="silu") not in ("gelu_new", "gelu_pytorch", "relu") or self.model_type in ("llama", "mistral", "qwen2", "qwen3", "gemma3", "gemma3_text", "gemma2") else 2
        experts = self.num_experts
        first_dense = int(self._get("first_k_dense_replace", default=0) or 0)
        if not experts or layer < first_dense:
            return gated * h * self.intermediate_size, 0
        moe_inter = int(self._get("moe_intermediate_size", default=None) or self.intermediate_size)
        linear = experts * gated * h * moe_inter
        shared = int(self._get("n_shared_experts", default=0) or 0)
        linear += shared * gated * h * moe_inter
        shared_inter = self._get("shared_expert_intermediate_size")
        other = h * experts  # router
        if shared_inter:  # Qwen2-MoE: one shared expert with its own size and a gate
            linear += gated * h * int(shared_inter)
            other += h
        if self._get("topk_method") == "noaux_tc" or self.model_type == "deepseek_v3":
            other += experts  # e_score_correction_bias
        return linear, other

    def param_count(self) -> ParamCount:
        h, layers = self.hidden_size, self.num_layers
        pc = ParamCount(embedding=self.vocab_size * h)
        pc.lm_head = 0 if self.tied_embeddings else self.vocab_size * h
        norms = int(self._get("norms_per_layer", default=2))
        for layer in range(layers):
            a_lin, a_other = self._attention_params()
            m_lin, m_other = self._mlp_params(layer)
            pc.attention += a_lin
            pc.mlp += m_lin
            pc.other += a_other + m_other + norms * h
        pc.other += h + int(self._get("extra_params", default=0) or 0)  # final norm; towers
        return pc

    # -- bytes -----------------------------------------------------------------------------------
    def weight_bits(self, quantization: str | None = None) -> float | None:
        """Bits per quantized linear weight (with scales), or None when unquantized."""
        q = self.quantization_config or {}
        method = (quantization or self.quant_method or "").lower()
        if not method:
            return None
        if method in ("fp8", "fbgemm_fp8", "modelopt", "fp8_inc", "ptpc_fp8", "experts_int8"):
            return 8.0
        if method in ("mxfp4",):
            return 4.25
        if method in ("modelopt_fp4", "nvfp4"):
            return 4.5
        if method == "bitsandbytes":
            return 8.0 if q.get("load_in_8bit") else 4.5  # 4-bit NF4 + absmax per 64 values
        if method == "compressed-tensors":
            bits = _compressed_tensors_bits(q)
            return float(bits) if bits else 8.0
        if method == "gguf":
            return float(q["bits"]) if q.get("bits") else None
        bits = float(q.get("bits") or q.get("w_bit") or 4)
        group = q.get("group_size") or q.get("q_group_size") or 128
        group = int(group) if int(group) > 0 else 4096
        return bits + (16 + bits) / group  # fp16 scale and packed zero point per group

    def weights_bytes(self, dtype: str | None = None, quantization: str | None = None) -> int:
        """Bytes of weights in GPU memory: the files' own size when known, else computed."""
        if self.weights_bytes_on_disk and not quantization:
            return self.weights_bytes_on_disk
        pc = self.param_count()
        unq = dtype_bytes(resolve_dtype(dtype, self.torch_dtype))
        bits = self.weight_bits(quantization)
        if bits is None:
            return int(pc.total * unq)
        if (quantization or self.quant_method) == "gguf":  # llama.cpp types cover every tensor
            return int(pc.total * bits / 8)
        return int(pc.linear * bits / 8 + (pc.total - pc.linear) * unq)

    def kv_bytes_per_token(self, kv_dtype_bytes: float = 2.0, tp: int = 1) -> float:
        """KV-cache bytes per token of context, for one tensor-parallel shard.

        Standard and grouped-query attention: 2 (K and V) × layers × KV heads × head size ×
        bytes; the KV heads are split across the shards (replicated when fewer than the
        shards). MLA keeps one compressed latent plus the RoPE key per layer, not split by
        tensor parallelism. Sliding-window layers are counted in :meth:`kv_bytes`.
        """
        if self.is_mla:
            return self.num_layers * (self._int("kv_lora_rank") + self._int("qk_rope_head_dim")) * kv_dtype_bytes
        kv_heads = max(1, -(-self.num_kv_heads // tp))  # ceil: replicated below one per shard
        return 2 * self.num_layers * kv_heads * self.head_dim * kv_dtype_bytes

    def kv_bytes(self, tokens: int, kv_dtype_bytes: float = 2.0, tp: int = 1) -> int:
        """KV bytes for ``tokens`` tokens of one sequence, for one shard; local
        (sliding-window) layers hold only the window."""
        per_layer = self.kv_bytes_per_token(kv_dtype_bytes, tp) / self.num_layers
        local_layers = self.local_attention_layers()
        if local_layers:
            window = int(self._get("sliding_window"))
            global_layers = self.num_layers - local_layers
            return int(per_layer * (global_layers * tokens + local_layers * min(window, tokens)))
        return int(per_layer * self.num_layers * tokens)

    def local_attention_layers(self) -> int:
        """How many layers attend only within ``sliding_window``: from the config's
        ``layer_types`` or ``sliding_window_pattern``, else the family's layout in
        ``data/attention.yaml``. Zero (every layer holds the whole context, the conservative
        count) when the window is off or the layout is unknown."""
        window = self._get("sliding_window")
        if not window or self._get("use_sliding_window") is False:
            return 0
        types = self._get("layer_types")
        if isinstance(types, list) and types:
            return sum(t == "sliding_attention" for t in types)
        pattern = self._get("sliding_window_pattern") or load("attention")["sliding_window_pattern"].get(
            str(self.model_type or "").lower())
        if not pattern:
            return 0
        return self.num_layers - self.num_layers // int(pattern)

    def to_dict(self) -> dict[str, Any]:
        pc = self.param_count()
        return {
            "name": self.name, "source": self.source, "architectures": self.architectures,
            "model_type": self.model_type, "params": pc.total, "layers": self.num_layers,
            "hidden_size": self.hidden_size, "attention_heads": self.num_heads,
            "kv_heads": self.num_kv_heads, "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "torch_dtype": self.torch_dtype, "quantization": self.quant_method,
            "weights_bytes_on_disk": self.weights_bytes_on_disk,
        }  # fmt: skip


def _compressed_tensors_bits(q: dict[str, Any]) -> int | None:
    for group in (q.get("config_groups") or {}).values():
        weights = (group or {}).get("weights") or {}
        if weights.get("num_bits"):
            return int(weights["num_bits"])
    return None


def resolve_dtype(requested: str | None, config_dtype: str) -> str:
    """The dtype an engine computes in: ``auto`` follows the config (fp32 checkpoints are
    served in half precision)."""
    if not requested or requested == "auto":
        return "float16" if config_dtype in ("float32", "float") else config_dtype
    return {"half": "float16", "float": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(requested, requested)


# -- where model configs come from --------------------------------------------------------------
def known_models() -> dict[str, dict[str, Any]]:
    return load("models")


def find_known(name: str) -> str | None:
    """The known shape whose key or alias matches a model name (its last path component)."""
    leaf = name.rstrip("/").split("/")[-1].lower()
    for _ in range(3):  # strip quantization/format suffixes: -AWQ, .gguf, -Q4_K_M, -FP8-dynamic
        leaf = re.sub(r"([-_.](gguf|awq|gptq|fp8|fp8-dynamic|dynamic|int4|int8|w4a16|w8a8|bnb|4bit|nf4|i?q\d[a-z0-9_]*|f16|bf16))$", "", leaf)
    models = known_models()
    for key, entry in models.items():
        names = {key.lower(), *(a.lower() for a in entry.get("aliases", []))}
        if leaf in names or name.lower() in names:
            return key
    return None


def quantization_from_name(name: str) -> dict[str, Any] | None:
    """The quantization a checkpoint's name announces (…-AWQ, …-FP8, …Q4_K_M.gguf), or None."""
    leaf = name.rstrip("/").split("/")[-1]
    compat = load("compat")
    # llama.cpp's quant types (Q4_K_M) name GGUF files only; F16/BF16/F32 do so only as a .gguf
    # file: a repository or directory named …-BF16 holds ordinary safetensors
    gguf = re.search(r"(?i)(?:^|[-_.])(?:(i?q\d_[a-z0-9_]+?|q\d_\d)(?:\.gguf)?|(f16|bf16|f32)\.gguf)$", leaf)
    if gguf:
        qtype = (gguf.group(1) or gguf.group(2)).upper()
        bits = compat["gguf_bits"]["types"].get(qtype)
        if bits:
            return {"quant_method": "gguf", "bits": bits, "type": qtype}
    for row in compat["name_quantization"]:
        if re.search(row["match"], leaf, re.IGNORECASE):
            return dict(row["config"])
    return None


def spec_for_name(model: str, key: str | None = None) -> ModelSpec:
    """A known shape for a model name, with the quantization its name announces applied."""
    spec = spec_from_known(key or model)
    q = quantization_from_name(model)
    half = re.search(r"(?i)[-_.](bf16|f16|fp16)$", model.rstrip("/"))
    if q is None and half and spec.config.pop("quantization_config", None):
        # a checkpoint converted to 16 bits (DeepSeek-R1-BF16): the published shape's FP8 is gone
        spec.notes.append(f"unquantized: the name {model!r} announces 16-bit weights")
        spec.source += f" + {half.group(1).upper()} from the name"
    if q is not None:
        spec.config["quantization_config"] = q
        spec.notes.append(f"quantization {q['quant_method']} taken from the name {model!r}")
        spec.source += f" + {q.get('type') or q['quant_method']} from the name"
    return spec


def spec_from_known(key: str) -> ModelSpec:
    models = known_models()
    if key not in models:
        found = find_known(key)
        if not found:
            raise BadInputError(
                f"--model-config: unknown model {key!r} (known: {', '.join(sorted(models))}, "
                f"or a path to a config.json)"
            )
        key = found
    entry = models[key]
    return ModelSpec(config=dict(entry["config"]), source=f"known:{key}", name=key)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a JSON object")
    return data


def spec_from_config_file(path: Path) -> ModelSpec:
    directory = path.parent
    return ModelSpec(config=read_json(path), source=str(path), name=directory.name, directory=directory)
