"""Model-asset checks: files present, safetensors headers and shards, the shard index, the
quantization method against engine and GPU, and GGUF files for llama.cpp.

Safetensors files are read the way the format defines them: an 8-byte little-endian header
length, a JSON header naming each tensor's dtype, shape and byte range, then the data. Only the
header is read, so a 100 GB checkpoint is checked in milliseconds; a shard whose byte ranges
run past the end of the file is truncated (an interrupted download).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bugatlas.errors import BadInputError
from bugatlas.preflight._data import gib, load
from bugatlas.preflight.context import Context, check
from bugatlas.preflight.findings import Finding
from bugatlas.preflight.model import ModelSpec

ST_DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
    "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1,
    "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75,
}  # fmt: skip
MAX_HEADER = 100 * 1024 * 1024  # the safetensors library refuses larger headers
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model", "tokenizer.tiktoken")
WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "consolidated*.pth")


@dataclass
class SafetensorsFile:
    path: Path
    size: int
    header_len: int | None = None
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    data_bytes: int = 0
    error: str | None = None          # unreadable header (corrupt, not safetensors)
    truncated_by: int = 0             # bytes missing at the end of the file
    bad_tensors: list[str] = field(default_factory=list)  # byte range ≠ dtype × shape

    @property
    def dtypes(self) -> set[str]:
        return {t.get("dtype", "?") for t in self.tensors.values()}

    @property
    def ok(self) -> bool:
        return self.error is None and not self.truncated_by and not self.bad_tensors


def read_safetensors_header(path: Path) -> SafetensorsFile:
    """Read and validate one safetensors file's header without loading its data."""
    size = path.stat().st_size
    info = SafetensorsFile(path=path, size=size)
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            info.error = f"file is {size} bytes, shorter than the 8-byte header length"
            return info
        (n,) = struct.unpack("<Q", head)
        info.header_len = n
        if n > MAX_HEADER:
            info.error = f"header length {n:,} bytes is implausible (corrupt or not safetensors)"
            return info
        if 8 + n > size:
            info.error = f"header claims {n:,} bytes but the file has only {size - 8:,} after the length"
            info.truncated_by = 8 + n - size
            return info
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        info.error = f"header is not valid JSON ({exc})"
        return info
    if not isinstance(header, dict):
        info.error = "header is not a JSON object"
        return info
    info.metadata = header.pop("__metadata__", None) or {}
    end_max = 0
    for name, t in header.items():
        if not isinstance(t, dict) or "data_offsets" not in t:
            info.error = f"tensor {name!r} has no data_offsets"
            return info
        begin, end = (int(x) for x in t["data_offsets"])
        info.tensors[name] = t
        end_max = max(end_max, end)
        per = ST_DTYPE_BYTES.get(str(t.get("dtype")))
        if per is not None and end - begin != math.ceil(per * math.prod(t.get("shape") or [1])):
            info.bad_tensors.append(name)
    info.data_bytes = end_max
    available = size - 8 - n
    if end_max > available:
        info.truncated_by = end_max - available
    return info


@dataclass
class AssetScan:
    directory: Path
    config: bool
    tokenizer_files: list[str]
    weight_files: list[Path]
    safetensors: list[SafetensorsFile]
    index: dict[str, Any] | None
    index_error: str | None = None

    @property
    def safetensors_bytes(self) -> int:
        return sum(f.data_bytes for f in self.safetensors if f.error is None)

    @property
    def dtypes(self) -> set[str]:
        out: set[str] = set()
        for f in self.safetensors:
            out |= f.dtypes
        return out


def scan_directory(directory: Path) -> AssetScan:
    weights: list[Path] = []
    for pattern in WEIGHT_GLOBS:
        weights += [p for p in sorted(directory.glob(pattern)) if p not in weights and not p.name.startswith("training_args")]
    index, index_error = None, None
    index_path = directory / "model.safetensors.index.json"
    if index_path.exists():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            index_error = f"{index_path.name} is not valid JSON ({exc})"
    st = [read_safetensors_header(p) for p in weights if p.suffix == ".safetensors"]
    return AssetScan(
        directory=directory, config=(directory / "config.json").exists(),
        tokenizer_files=[n for n in TOKENIZER_FILES if (directory / n).exists()],
        weight_files=weights, safetensors=st, index=index, index_error=index_error,
    )  # fmt: skip


def prepare(ctx: Context) -> None:
    """Scan local assets once; let the weights on disk size the model."""
    if ctx.model_dir is not None:
        scan = scan_directory(ctx.model_dir)
        ctx.cache["scan"] = scan
        if ctx.model is not None and scan.safetensors and all(f.error is None for f in scan.safetensors):
            ctx.model.weights_bytes_on_disk = scan.safetensors_bytes
            ctx.cache["largest_shard_bytes"] = max(f.data_bytes for f in scan.safetensors)
    if ctx.gguf_path is not None:
        ctx.cache["gguf"] = read_gguf(ctx.gguf_path)


# -- checks --------------------------------------------------------------------------------------
@check("assets.files")
def check_files(ctx: Context) -> list[Finding]:
    if ctx.gguf_path is not None:
        return [ctx.finding("assets.files", "pass", f"GGUF file {ctx.gguf_path.name} ({gib(ctx.gguf_path.stat().st_size)})")]
    scan: AssetScan | None = ctx.cache.get("scan")
    missing = ctx.cache.get("missing_path")
    if missing and ctx.machine.source == "this machine":
        return [ctx.finding(
            "assets.files", "block", f"model path {missing} does not exist on this machine",
            numbers={"path": missing},
            why="The engine treats it as a hub repository id and fails ('Repo id must be in the form "
                "repo_name or namespace/repo_name' / 'failed to load model').",
            fix="Fix the path (relative paths resolve from the directory the engine starts in).",
        )]  # fmt: skip
    if missing:
        return [ctx.finding("assets.files", "skip", f"model path {missing} is not on this host (the described machine's files are not checked)")]
    if scan is None:
        where = "a known shape" if ctx.model is not None else "nothing"
        return [ctx.finding("assets.files", "skip", f"model {ctx.launch.model!r} is not a local directory (sized from {where}; files are fetched at launch)")]
    if ctx.launch.engine == "llama.cpp":
        return [ctx.finding(
            "assets.files", "block", f"llama-server loads one GGUF file; {scan.directory} is a Hugging Face directory",
            why="'failed to load model': llama.cpp does not read safetensors directories.",
            fix="Convert it: `python convert_hf_to_gguf.py DIR --outtype q8_0`, then pass -m FILE.gguf.",
        )]  # fmt: skip
    problem = ctx.cache.get("config_problem")
    if problem is not None and problem.corrupt:
        return [ctx.finding(
            "assets.files", "block", f"config.json is unreadable: {problem}",
            numbers={"directory": str(scan.directory)},
            why="The engine cannot build the model: loading stops on the config before any weight is read.",
            fix="Re-download config.json (a truncated or hand-edited file is the usual cause).",
        )]  # fmt: skip
    missing = []
    if not scan.config:
        missing.append("config.json")
    tokenizer_elsewhere = bool(ctx.launch.get("tokenizer"))
    if not scan.tokenizer_files and not tokenizer_elsewhere:
        missing.append("tokenizer (tokenizer.json / tokenizer.model / vocab.json)")
    if not scan.weight_files:
        missing.append("weights (*.safetensors / *.bin)")
    numbers = {"directory": str(scan.directory), "tokenizer_files": scan.tokenizer_files,
               "weight_files": len(scan.weight_files)}  # fmt: skip
    if missing:
        return [ctx.finding(
            "assets.files", "block", f"{scan.directory} lacks " + ", ".join(missing), numbers=numbers,
            why="Loading stops: 'does not appear to have a file named config.json' / 'Can't load "
                "tokenizer' / 'Cannot find any model weights'.",
            fix="Re-download the full repository (`huggingface-cli download REPO --local-dir DIR`), "
                "or point --tokenizer at the base model's tokenizer.",
        )]  # fmt: skip
    if problem is not None:
        return [ctx.finding(
            "assets.files", "warn", f"files present, but {problem}; memory and parallelism checks are skipped",
            numbers=numbers,
            why="Without layers, hidden size and heads preflight cannot size the model; the engine "
                "may still load it if it knows the architecture.",
            fix="Pass --model-config with a known shape or a config.json that has the standard fields.",
        )]  # fmt: skip
    return [ctx.finding("assets.files", "pass",
                        f"config.json, {', '.join(scan.tokenizer_files) or 'tokenizer via --tokenizer'}, {len(scan.weight_files)} weight file(s)",
                        numbers=numbers)]  # fmt: skip


@check("assets.safetensors")
def check_safetensors(ctx: Context) -> list[Finding]:
    scan: AssetScan | None = ctx.cache.get("scan")
    if scan is None or not scan.safetensors:
        return [ctx.finding("assets.safetensors", "skip", "no local safetensors files")]
    out = []
    for f in scan.safetensors:
        if f.truncated_by:
            expected = f.size + f.truncated_by
            out.append(ctx.finding(
                "assets.safetensors", "block",
                f"{f.path.name} is truncated: {f.size:,} bytes on disk, its header needs {expected:,} ({f.truncated_by:,} missing)",
                numbers={"file": f.path.name, "size": f.size, "expected_size": expected, "missing_bytes": f.truncated_by},
                why="An interrupted download or copy: loading fails with 'SafetensorError: Error while "
                    "deserializing header: incomplete metadata, file not fully covered' or reads garbage.",
                fix=f"Delete {f.path.name} and download it again; compare sizes/sha256 with the hub listing.",
            ))  # fmt: skip
        elif f.error:
            out.append(ctx.finding(
                "assets.safetensors", "block", f"{f.path.name}: {f.error}",
                numbers={"file": f.path.name, "size": f.size, "header_length": f.header_len},
                why="'SafetensorError: Error while deserializing header' — the file is corrupt or not "
                    "safetensors (often a Git LFS pointer or an HTML error page saved as the file).",
                fix=f"Re-download {f.path.name} (run `git lfs pull` if the repository was cloned with git).",
            ))  # fmt: skip
        elif f.bad_tensors:
            out.append(ctx.finding(
                "assets.safetensors", "block",
                f"{f.path.name}: {len(f.bad_tensors)} tensor(s) whose byte range does not match dtype × shape (e.g. {f.bad_tensors[0]})",
                numbers={"file": f.path.name, "bad_tensors": f.bad_tensors[:10]},
                why="The header is inconsistent: the loader raises while building tensors.",
                fix=f"Re-export or re-download {f.path.name}.",
            ))  # fmt: skip
    if out:
        return out
    n = sum(len(f.tensors) for f in scan.safetensors)
    return [ctx.finding("assets.safetensors", "pass",
                        f"{len(scan.safetensors)} shard(s), {n:,} tensors, {gib(scan.safetensors_bytes)}; headers valid, no truncation",
                        numbers={"shards": len(scan.safetensors), "tensors": n, "bytes": scan.safetensors_bytes,
                                 "dtypes": sorted(scan.dtypes)})]  # fmt: skip


@check("assets.index")
def check_index(ctx: Context) -> list[Finding]:
    scan: AssetScan | None = ctx.cache.get("scan")
    if scan is None or not scan.safetensors:
        return [ctx.finding("assets.index", "skip", "no local safetensors files")]
    if scan.index_error:
        return [ctx.finding("assets.index", "block", scan.index_error,
                            why="transformers and the engines read the index first and stop on invalid JSON.",
                            fix="Re-download model.safetensors.index.json.")]  # fmt: skip
    if scan.index is None:
        if len(scan.safetensors) > 1:
            return [ctx.finding(
                "assets.index", "warn", f"{len(scan.safetensors)} shards but no model.safetensors.index.json",
                numbers={"shards": len(scan.safetensors)},
                why="transformers cannot load a sharded checkpoint without its index; engines that glob "
                    "*.safetensors also load stray files (e.g. a consolidated copy) twice.",
                fix="Download model.safetensors.index.json with the shards.",
            )]  # fmt: skip
        return [ctx.finding("assets.index", "pass", "single-file checkpoint (no index needed)")]
    weight_map: dict[str, str] = scan.index.get("weight_map") or {}
    by_name = {f.path.name: f for f in scan.safetensors}
    missing_files = sorted({fn for fn in weight_map.values() if not (scan.directory / fn).exists()})
    missing_tensors = [t for t, fn in weight_map.items() if fn in by_name and by_name[fn].error is None and t not in by_name[fn].tensors]
    indexed_files = set(weight_map.values())
    unindexed = sorted(set(by_name) - indexed_files)
    total = (scan.index.get("metadata") or {}).get("total_size")
    numbers = {"tensors_indexed": len(weight_map), "files_indexed": len(indexed_files), "missing_files": missing_files,
               "tensors_missing_from_shards": missing_tensors[:20], "unindexed_files": unindexed,
               "total_size": total, "shard_bytes": scan.safetensors_bytes}  # fmt: skip
    if missing_files or missing_tensors:
        what = []
        if missing_files:
            what.append(f"{len(missing_files)} shard file(s) named in the index are missing ({', '.join(missing_files[:3])})")
        if missing_tensors:
            what.append(f"{len(missing_tensors)} indexed tensor(s) are not in their shard (e.g. {missing_tensors[0]})")
        return [ctx.finding(
            "assets.index", "block", "; ".join(what), numbers=numbers,
            why="Loading stops on the first missing shard (FileNotFoundError) or tensor (KeyError: "
                "'model.layers…'), after minutes of reading the others.",
            fix="Download the missing shards (`huggingface-cli download REPO --local-dir DIR` resumes).",
        )]  # fmt: skip
    warn = []
    if unindexed:
        warn.append(f"{len(unindexed)} safetensors file(s) not in the index ({', '.join(unindexed[:3])})")
    if total and scan.safetensors_bytes and abs(int(total) - scan.safetensors_bytes) > 0.01 * int(total):
        warn.append(f"index total_size {int(total):,} differs from the shards' {scan.safetensors_bytes:,} bytes")
    if warn:
        return [ctx.finding(
            "assets.index", "warn", "; ".join(warn), numbers=numbers,
            why="A stale or mixed checkpoint directory: engines that glob *.safetensors may load extra weights.",
            fix="Remove files that do not belong to this checkpoint.",
        )]  # fmt: skip
    return [ctx.finding("assets.index", "pass", f"index complete: {len(weight_map):,} tensors in {len(indexed_files)} shard(s)", numbers=numbers)]


def quant_method(ctx: Context) -> tuple[str | None, str]:
    """The checkpoint's or requested quantization method, and where it was found."""
    requested = ctx.launch.get("quantization")
    if requested:
        return str(requested).lower(), "--quantization"
    m = ctx.model
    if m is not None and m.quant_method:
        method = m.quant_method
        if method == "compressed-tensors":
            q = m.quantization_config or {}
            for group in (q.get("config_groups") or {}).values():
                w = (group or {}).get("weights") or {}
                if w.get("type") == "float" and int(w.get("num_bits") or 0) == 8:
                    return "fp8", "config.json quantization_config (compressed-tensors FP8 scheme)"
        return method, "config.json quantization_config"
    scan: AssetScan | None = ctx.cache.get("scan")
    if scan is not None and any(d.startswith("F8") for d in scan.dtypes):
        return "fp8", "safetensors dtypes (F8_E4M3 weights)"
    return None, ""


@check("assets.quantization")
def check_quantization(ctx: Context) -> list[Finding]:
    if ctx.launch.engine == "llama.cpp":
        return [ctx.finding("assets.quantization", "pass", "llama.cpp reads the GGUF quantization types on every backend")]
    method, origin = quant_method(ctx)
    if method is None:
        return [ctx.finding("assets.quantization", "pass", "unquantized checkpoint")]
    requested = ctx.launch.get("quantization")
    in_config = ctx.model.quant_method if ctx.model else None
    accepted = load("compat")["quantization_overrides"].get(in_config or "", [in_config, f"{in_config}_marlin"])
    if requested and in_config and str(requested).lower() not in accepted and in_config not in ("compressed-tensors", "gguf"):
        return [ctx.finding(
            "assets.quantization", "block",
            f"--quantization {requested} contradicts the checkpoint's {in_config}",
            numbers={"requested": requested, "checkpoint": in_config},
            why="'Quantization method specified in the model config does not match the quantization "
                "method specified in the `quantization` argument.'",
            fix="Drop --quantization (the engine reads it from config.json).",
        )]  # fmt: skip
    table = load("compat")["quantization"]
    row = table.get(method)
    if row is None:
        return [ctx.finding("assets.quantization", "warn", f"quantization {method!r} ({origin}) is not in the compatibility table",
                            why="Unknown methods may not be supported by this engine.",
                            fix="Check the engine's supported-quantization page.")]  # fmt: skip
    support = row.get(ctx.launch.engine)
    numbers: dict[str, Any] = {"method": method, "found_in": origin, "engine": ctx.launch.title, "source": row["source"]}
    if support is None:
        return [ctx.finding(
            "assets.quantization", "block", f"{ctx.launch.title} does not support {row['title']} checkpoints",
            numbers=numbers,
            why="The engine rejects the quantization method at start-up ('Unknown quantization method').",
            fix="Use an engine that supports it, or a checkpoint in a supported format.",
        )]  # fmt: skip
    cc = ctx.min_cc()
    if cc is None:
        return [ctx.finding("assets.quantization", "skip", f"{row['title']}: GPU compute capability unknown", numbers=numbers)]
    gpu = next(g for g in ctx.gpus if g.cc == cc)
    need = tuple(int(x) for x in support["min"].split("."))
    numbers.update({"compute_capability": f"{cc[0]}.{cc[1]}", "needs": support["min"], "native": support.get("native")})
    if cc < need:
        return [ctx.finding(
            "assets.quantization", "block",
            f"{row['title']} ({origin}) needs compute capability ≥ {support['min']} in {ctx.launch.title}; {gpu.name} has {cc[0]}.{cc[1]}",
            numbers=numbers,
            why=f"Start-up fails: 'The quantization method {method} is not supported for the current GPU. "
                f"Minimum capability: {support['min'].replace('.', '')}. Current capability: {cc[0]}{cc[1]}.'",
            fix="Use the unquantized (bf16/fp16) checkpoint or a GPTQ/AWQ one, or a newer GPU"
                + (" (FP8 compute needs Ada/Hopper: L4, L40S, RTX 4090, H100)" if "fp8" in method else "") + ".",
        )]  # fmt: skip
    native = support.get("native")
    if native and cc < tuple(int(x) for x in native.split(".")):
        return [ctx.finding(
            "assets.quantization", "warn",
            f"{row['title']} ({origin}) on {gpu.name} (compute capability {cc[0]}.{cc[1]} < {native}): no native support, "
            f"{support.get('fallback', 'a fallback kernel')} is used",
            numbers=numbers,
            why="Runs, but activations stay in 16-bit: slower than on Ada/Hopper and without FP8's "
                "compute savings; block-quantized MoE checkpoints may not have a fallback.",
            fix="Accept the fallback, or use a GPU with compute capability ≥ " + native + ".",
        )]  # fmt: skip
    return [ctx.finding("assets.quantization", "pass", f"{row['title']} supported on {gpu.name} ({cc[0]}.{cc[1]})", numbers=numbers)]


# -- GGUF -------------------------------------------------------------------------------------------
@dataclass
class GGUFInfo:
    path: Path
    size: int
    fields: dict[str, Any] = field(default_factory=dict)
    tensor_bytes: int = 0
    tensors: int = 0
    error: str | None = None
    truncated_by: int = 0
    tensor_names: set[str] = field(default_factory=set)


def read_gguf(path: Path) -> GGUFInfo:
    """Metadata and tensor extents of a GGUF file (via the `gguf` package)."""
    info = GGUFInfo(path=path, size=path.stat().st_size)
    try:
        from gguf import GGUFReader
    except ImportError:  # pragma: no cover - gguf is a dependency
        info.error = "the gguf package is not installed"
        return info
    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a broken file
        hint = " — tensor data is cut short: the file is truncated" if "reshape" in str(exc) else ""
        info.error = f"cannot parse GGUF ({type(exc).__name__}: {exc}){hint}"
        return info
    for key, fld in reader.fields.items():
        try:
            info.fields[key] = fld.contents()
        except Exception:  # noqa: BLE001 - unreadable values are left out, not fatal
            continue
    end = 0
    for t in reader.tensors:
        info.tensor_bytes += int(t.n_bytes)
        end = max(end, int(t.data_offset) + int(t.n_bytes))
        info.tensors += 1
        info.tensor_names.add(str(t.name))
    if end > info.size:
        info.truncated_by = end - info.size
    return info


def spec_from_gguf(path: Path) -> ModelSpec:
    info = read_gguf(path)
    if info.error:
        raise BadInputError(f"{path}: {info.error}")
    f = info.fields
    arch = f.get("general.architecture", "llama")

    def a(key: str, default: Any = None) -> Any:
        return f.get(f"{arch}.{key}", default)

    heads = a("attention.head_count")
    hidden = a("embedding_length")
    config = {
        "architectures": [f"gguf:{arch}"], "model_type": arch,
        "vocab_size": a("vocab_size") or len(f.get("tokenizer.ggml.tokens") or []) or None,
        "hidden_size": hidden, "intermediate_size": a("feed_forward_length"),
        "num_hidden_layers": a("block_count"), "num_attention_heads": heads,
        "num_key_value_heads": a("attention.head_count_kv", heads),
        "head_dim": a("attention.key_length") or (hidden // heads if hidden and heads else None),
        "max_position_embeddings": a("context_length"),
        "sliding_window": a("attention.sliding_window"),
        "num_local_experts": a("expert_count"), "torch_dtype": "float16",
        # no output.weight tensor: the output layer reuses the token embeddings (Gemma, Llama 3.2 1B/3B)
        "tie_word_embeddings": bool(info.tensor_names) and "output.weight" not in info.tensor_names,
    }  # fmt: skip
    spec = ModelSpec(config={k: v for k, v in config.items() if v is not None}, source=f"gguf:{path}",
                     name=f.get("general.name") or path.stem)  # fmt: skip
    spec.weights_bytes_on_disk = info.tensor_bytes or info.size
    return spec


@check("assets.gguf")
def check_gguf(ctx: Context) -> list[Finding]:
    info: GGUFInfo | None = ctx.cache.get("gguf")
    if info is None:
        return [ctx.finding("assets.gguf", "skip", "no local GGUF file")]
    if ctx.launch.engine != "llama.cpp" and ctx.launch.engine != "vllm":
        return [ctx.finding("assets.gguf", "block", f"{ctx.launch.title} does not load GGUF files",
                            why="The engine expects a Hugging Face directory.", fix="Use llama-server, or the original checkpoint.")]  # fmt: skip
    if info.error:
        return [ctx.finding(
            "assets.gguf", "block", f"{info.path.name}: {info.error}", numbers={"size": info.size},
            why="llama.cpp stops with 'gguf_init_from_file: failed to read …' / 'failed to load model'.",
            fix="Re-download or re-convert the file.",
        )]  # fmt: skip
    if info.truncated_by:
        return [ctx.finding(
            "assets.gguf", "block", f"{info.path.name} is truncated: tensor data runs {info.truncated_by:,} bytes past the end ({info.size:,} bytes on disk)",
            numbers={"size": info.size, "missing_bytes": info.truncated_by},
            why="'tensor data is not within the file bounds': the model does not load.",
            fix="Re-download the file (check its size/sha256 against the hub).",
        )]  # fmt: skip
    needed = ["general.architecture"]
    arch = info.fields.get("general.architecture")
    if arch:
        needed += [f"{arch}.block_count", f"{arch}.embedding_length", f"{arch}.attention.head_count"]
    missing = [k for k in needed if k not in info.fields]
    if missing:
        return [ctx.finding(
            "assets.gguf", "block", f"{info.path.name} lacks metadata: {', '.join(missing)}",
            numbers={"missing": missing},
            why="llama.cpp cannot build the model graph ('key not found in model').",
            fix="Re-convert with a current convert_hf_to_gguf.py.",
        )]  # fmt: skip
    return [ctx.finding("assets.gguf", "pass", f"{info.path.name}: {arch}, {info.tensors} tensors, {gib(info.tensor_bytes)}",
                        numbers={"architecture": arch, "tensors": info.tensors, "tensor_bytes": info.tensor_bytes})]  # fmt: skip
