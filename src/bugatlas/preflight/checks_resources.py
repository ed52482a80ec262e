"""Resource checks: parallel sizes, context length, GPU memory (weights + KV cache +
overhead per shard) and CPU memory for loading."""

from __future__ import annotations

from typing import Any

from bugatlas.preflight._data import GIB, gib, load
from bugatlas.preflight.context import Context, check
from bugatlas.preflight.findings import Finding
from bugatlas.preflight.machine import repeated_device


@check("res.parallel_gpus")
def check_parallel_gpus(ctx: Context) -> list[Finding]:
    visible = len(ctx.gpus)
    if ctx.launch.engine == "llama.cpp":
        twice = repeated_device(ctx.cuda_visible_devices) if ctx.machine.gpus else None
        if visible == 0 and twice:
            return [ctx.finding(
                "res.parallel_gpus", "warn", f"no GPU visible: CUDA_VISIBLE_DEVICES={ctx.cuda_visible_devices!r} "
                f"lists GPU {twice} twice, and CUDA then shows no GPU at all; llama.cpp runs on the CPU",
                fix="List each GPU once in CUDA_VISIBLE_DEVICES.")]  # fmt: skip
        if visible == 0:
            return [ctx.finding("res.parallel_gpus", "pass", "no GPU visible: llama.cpp runs on the CPU")]
        return [ctx.finding("res.parallel_gpus", "pass", f"{visible} GPU(s) visible; llama.cpp splits layers across them")]
    need = ctx.gpus_needed
    numbers = {"tensor_parallel_size": ctx.tp, "pipeline_parallel_size": ctx.pp,
               "data_parallel_size": ctx.dp, "nnodes": ctx.nnodes, "gpus_needed": need, "gpus_visible": visible,
               "cuda_visible_devices": ctx.cuda_visible_devices}  # fmt: skip
    if visible == 0:
        twice = repeated_device(ctx.cuda_visible_devices) if ctx.machine.gpus else None
        return [ctx.finding(
            "res.parallel_gpus", "block", f"{ctx.launch.title} needs {need} GPU(s); none visible"
            + (f" (CUDA_VISIBLE_DEVICES={ctx.cuda_visible_devices!r})" if ctx.cuda_visible_devices is not None else "")
            + (f": it lists GPU {twice} twice, and CUDA then shows no GPU at all" if twice else ""),
            numbers=numbers,
            why="Start-up fails at device detection ('RuntimeError: No CUDA GPUs are available' / "
                "'Failed to infer device type').",
            fix=("List each GPU once in CUDA_VISIBLE_DEVICES." if twice else
                 "Run on a GPU host (check `nvidia-smi` and CUDA_VISIBLE_DEVICES), or use the engine's CPU build / llama.cpp."),
        )]  # fmt: skip
    if need > visible:
        sizes = (f"tensor-parallel {ctx.tp}" + (f" × pipeline-parallel {ctx.pp}" if ctx.pp > 1 else "")
                 + (f" × data-parallel {ctx.dp}" if ctx.dp > 1 and not ctx.dp_attention else "")
                 + (f" over {ctx.nnodes} nodes" if ctx.nnodes > 1 else ""))
        return [ctx.finding(
            "res.parallel_gpus", "block",
            f"{sizes} needs {need} GPUs; {visible} visible" + (f" (CUDA_VISIBLE_DEVICES={ctx.cuda_visible_devices})" if ctx.cuda_visible_devices is not None else ""),
            numbers=numbers,
            why="The engine cannot place its workers: vLLM stops with 'The number of required GPUs "
                "exceeds the total number of available GPUs in the placement group' (or waits for "
                "Ray resources forever); SGLang fails creating the process group.",
            fix=f"Set --tensor-parallel-size (×PP×DP) to at most {max(visible, 1)}, or make more GPUs visible.",
        )]  # fmt: skip
    note = f"; {visible - need} visible GPU(s) unused" if visible > need else ""
    return [ctx.finding("res.parallel_gpus", "pass", f"{need} GPU(s) needed, {visible} visible{note}", numbers=numbers)]


@check("res.parallel_heads")
def check_parallel_heads(ctx: Context) -> list[Finding]:
    if ctx.model is None:
        return [ctx.finding("res.parallel_heads", "skip", "no model config")]
    if ctx.launch.engine == "llama.cpp" or (ctx.tp == 1 and ctx.pp == 1):
        return [ctx.finding("res.parallel_heads", "pass", "no tensor/pipeline parallel split")]
    m, tp, pp = ctx.model, ctx.attention_tp, ctx.pp
    problems: list[tuple[str, str]] = []
    notes = []
    if ctx.dp_attention:
        notes.append(f"DP attention: heads split {tp} ways (TP {ctx.tp} / DP {ctx.dp})")
    if m.num_heads % tp:
        problems.append((f"{m.num_heads} attention heads are not divisible by tensor-parallel size {tp}",
                         f"Total number of attention heads ({m.num_heads}) must be divisible by tensor parallel size ({tp})"))  # fmt: skip
    if not m.is_mla:
        kv = m.num_kv_heads
        if (kv >= tp and kv % tp) or (kv < tp and tp % kv):
            problems.append((f"{kv} KV heads cannot be split or replicated evenly over {tp} shards",
                             "the QKV projection cannot be partitioned"))  # fmt: skip
    tp = ctx.tp  # MLP weights are split over the full tensor-parallel group
    mlps = []  # (what, width, ways it is sliced)
    if not m.num_experts or int(m._get("first_k_dense_replace", default=0) or 0) > 0:
        dense_tp = int(ctx.launch.get("moe_dense_tp_size") or tp) if m.num_experts else tp
        mlps.append(("dense MLP", m.intermediate_size, dense_tp))
    if m.num_experts:
        if ctx.expert_parallel:
            notes.append("expert parallelism: experts are placed whole, not sliced")
        else:
            mlps.append(("expert MLP", int(m._get("moe_intermediate_size", default=m.intermediate_size)), tp))
    q = m.quantization_config or {}
    bits = m.weight_bits()
    block = q.get("weight_block_size")
    for what, width, ways in mlps:
        if width % ways:
            problems.append((f"{what} size {width} is not divisible by tensor-parallel size {ways}", "the MLP weights cannot be sharded"))
            continue
        part = width // ways
        group = int(q.get("group_size") or 128)
        if bits and bits < 8 and group > 0 and part % group:
            problems.append((f"each shard's {what} input ({part}) is not a multiple of the quantization group size {group}",
                             "'The input size is not aligned with the quantized weight shape'"))  # fmt: skip
        elif block and (part % int(block[0]) or part % int(block[1])):
            problems.append((f"each shard's {what} slice ({part}) is not a multiple of the FP8 weight block {block[0]}×{block[1]}",
                             f"'Weight output_partition_size = {part} is not divisible by weight quantization block_n = {block[0]}'"))  # fmt: skip
    inter = mlps[0][1] if mlps else m.intermediate_size
    if pp > m.num_layers:
        problems.append((f"pipeline-parallel size {pp} exceeds the {m.num_layers} layers", "a pipeline stage would hold no layer"))
    numbers = {"attention_heads": m.num_heads, "kv_heads": m.num_kv_heads, "layers": m.num_layers,
               "intermediate_size": inter, "tensor_parallel_size": tp, "pipeline_parallel_size": pp}  # fmt: skip
    if not problems:
        return [ctx.finding("res.parallel_heads", "pass",
                            f"{m.num_heads} heads / {m.num_kv_heads} KV heads split evenly over {ctx.attention_tp} shards"
                            + "".join(f"; {n}" for n in notes), numbers=numbers)]  # fmt: skip
    good = [d for d in range(1, 17) if m.num_heads % d == 0 and (m.is_mla or m.num_kv_heads % d == 0 or d % m.num_kv_heads == 0)
            and all(w % d == 0 and not (block and (w // d) % int(block[0])) for _, w, _ in mlps)]
    return [ctx.finding(
        "res.parallel_heads", "block", "; ".join(p for p, _ in problems), numbers={**numbers, "valid_tp_sizes": good},
        why="Weight sharding fails at start-up: " + "; ".join(w for _, w in problems) + ".",
        fix=f"Use a tensor-parallel size from {good} (pipeline parallelism can cover the remaining GPUs).",
    )]  # fmt: skip


def model_context(ctx: Context) -> tuple[int | None, str]:
    """The longest context the model config supports (with rope scaling), and how derived."""
    m = ctx.model
    if m is None or not m.max_position_embeddings:
        return None, ""
    base = m.max_position_embeddings
    rope = m._get("rope_scaling") or {}
    if isinstance(rope, dict):
        kind = rope.get("rope_type") or rope.get("type")
        factor = rope.get("factor")
        if kind in ("linear", "dynamic", "yarn") and factor:
            original = rope.get("original_max_position_embeddings") or base
            return int(original * float(factor)), f"max_position_embeddings {original} × {kind} rope factor {factor}"
    return base, "max_position_embeddings"


def context_length(ctx: Context) -> int | None:
    """The context the engine will use (explicit, or its default derived from the model)."""
    requested = ctx.launch.settings.get("max_model_len")
    if ctx.launch.engine == "llama.cpp":
        requested = ctx.launch.get("max_model_len")
        if requested == 0:
            return model_context(ctx)[0]
        return requested
    if requested:
        return int(requested)
    return model_context(ctx)[0]


@check("res.context")
def check_context(ctx: Context) -> list[Finding]:
    limit, how = model_context(ctx)
    requested = context_length(ctx)
    if limit is None or requested is None:
        return [ctx.finding("res.context", "skip", "model context length unknown")]
    numbers = {"context_length": requested, "model_context": limit, "derived_from": how}
    if requested <= limit:
        return [ctx.finding("res.context", "pass", f"context {requested:,} ≤ the model's {limit:,}", numbers=numbers)]
    env_name = ctx.launch.spec.get("long_context_env")
    allowed = bool(env_name) and ctx.launch.env.get(env_name, "0") not in ("0", "", "false")
    refuses = ctx.launch.spec.get("rejects_context_beyond_model") and not allowed
    return [ctx.finding(
        "res.context", "block" if refuses else "warn",
        f"context {requested:,} exceeds the model's {limit:,} ({how})",
        numbers=numbers,
        why=("The engine refuses to start: 'User-specified max_model_len is greater than the derived "
             f"max_model_len' (unless {env_name}=1)." if refuses else
             "Positions past the trained context are out of distribution: output degrades into "
             "repetition or nonsense for long prompts."),
        fix=f"Set the context to at most {limit:,}, or use a long-context variant of the model "
            "(e.g. Llama-3.1 instead of Llama-3 for 128K).",
    )]  # fmt: skip


def _per_token(n: float) -> str:
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n:.0f} B"


def overhead_bytes(ctx: Context, tp: int) -> dict[str, int]:
    """Per-GPU memory besides weights and KV cache (estimates, see engines.yaml)."""
    o = load("engines")["overhead"]
    out = {"cuda_context": int(o["cuda_context_gib"] * GIB)}
    if ctx.launch.engine != "llama.cpp" and not ctx.launch.get("enforce_eager"):
        out["cuda_graphs"] = int(o["cuda_graphs_gib"] * GIB)
    m = ctx.model
    if m is not None:
        batched = int(ctx.launch.get("max_num_batched_tokens") or 0)
        # SGLang's --chunked-prefill-size -1 turns chunking off: a whole prompt is one batch
        tokens = batched if batched > 0 else (context_length(ctx) or 8192) if batched < 0 else min(context_length(ctx) or 8192, 8192)
        if ctx.launch.engine == "llama.cpp":
            tokens = int(ctx.launch.get("ubatch_size", 512))
        act = 2.0  # activations in half precision
        inter = m.intermediate_size if not m.num_experts else int(m._get("moe_intermediate_size", default=m.intermediate_size)) * int(m._get("num_experts_per_tok", default=2))
        per_token = (4 * m.hidden_size + 2 * inter / tp) * act * o["activation_bytes_per_token_factor"]
        out["activations"] = int(tokens * per_token)
        seqs = int(ctx.launch.get("max_num_seqs") or 1)
        out["logits"] = int(min(seqs, tokens) * m.vocab_size * o["logits_bytes_per_value"])
    return out


def _llama_offload(ctx: Context) -> tuple[int, int]:
    """(layers on GPU, total layers) from -ngl."""
    layers = ctx.model.num_layers if ctx.model else 0
    raw = str(ctx.launch.get("n_gpu_layers", "0")).lower()
    if raw in ("all", "auto", "-1"):
        return layers, layers
    try:
        return min(int(raw), layers), layers
    except ValueError:
        return 0, layers


@check("res.gpu_memory")
def check_gpu_memory(ctx: Context) -> list[Finding]:
    if ctx.model is None:
        return [ctx.finding("res.gpu_memory", "skip", "no model config")]
    if not ctx.gpus:
        return [ctx.finding("res.gpu_memory", "skip", "no GPU visible")]
    if ctx.launch.engine == "llama.cpp":
        return _llama_gpu_memory(ctx)
    m = ctx.model
    requested_shards = ctx.tp * ctx.pp
    # With fewer GPUs than asked for (a separate blocking finding), size the model on the GPUs
    # there are: shrinking the parallel size is the user's first fix, so show whether it fits.
    tp = min(ctx.tp, len(ctx.gpus))
    pp = min(ctx.pp, max(1, len(ctx.gpus) // tp))
    shards = tp * pp
    used = ctx.gpus[:shards]
    gpu = min(used, key=lambda g: g.memory_bytes)
    util = float(ctx.launch.get("gpu_memory_utilization") or 0.9)
    budget = int(gpu.memory_bytes * util)
    quant = ctx.launch.get("quantization")
    weights_total = m.weights_bytes(ctx.compute_dtype, quant if quant and not m.quant_method else None)
    offload = int(float(ctx.launch.get("cpu_offload_gb") or 0) * GIB)
    weights = max(0, weights_total // shards - offload)
    tokens = context_length(ctx) or 0
    kv_one = m.kv_bytes(tokens, ctx.kv_dtype_bytes, tp) // pp
    seqs = int(ctx.launch.get("max_num_seqs") or 1)
    kv_all = kv_one * seqs
    over = overhead_bytes(ctx, tp)
    outside = bool(ctx.launch.spec.get("overhead_outside_budget"))
    overhead = 0 if outside else sum(over.values())  # SGLang: the fraction covers weights + KV only
    reserve = gpu.memory_bytes - budget
    need = weights + kv_one + overhead
    kv_room = budget - weights - overhead
    fits_seqs = kv_room / kv_one if kv_one else float("inf")
    numbers: dict[str, Any] = {
        "gpu": gpu.name, "gpu_memory_bytes": gpu.memory_bytes,
        "memory_utilization": util, "budget_bytes": budget,
        "shards": shards, "requested_shards": requested_shards,
        "weights_total_bytes": weights_total, "weights_per_gpu_bytes": weights,
        "kv_bytes_per_token": m.kv_bytes_per_token(ctx.kv_dtype_bytes, tp) / pp,
        "context_length": tokens, "kv_one_sequence_bytes": kv_one,
        "max_num_seqs": seqs, "kv_max_num_seqs_bytes": kv_all,
        "overhead_bytes": over, "need_bytes": need,
        "full_length_sequences_that_fit": round(max(fits_seqs, 0.0), 2),
    }  # fmt: skip
    at = f"at tensor-parallel {tp}" + (f" × pipeline {pp}" if pp > 1 else "")
    if shards < requested_shards:
        at += f" (the GPUs visible; {requested_shards} requested)"
    summary = (f"{at} each GPU needs weights {gib(weights)} + KV cache {gib(kv_one)} "
               f"({tokens:,} tokens × {_per_token(m.kv_bytes_per_token(ctx.kv_dtype_bytes, tp) / pp)}) "
               + (f"+ overhead ≈{gib(overhead)} " if not outside else "")
               + f"= {gib(need)}; budget {gib(budget)} ({gpu.name} {gib(gpu.memory_bytes)} × {util})")  # fmt: skip
    extra: list[Finding] = []
    if outside and sum(over.values()) > reserve:
        extra.append(ctx.finding(
            "res.gpu_memory", "warn",
            f"activations, CUDA graphs and context ≈{gib(sum(over.values()))} exceed the {gib(reserve)} "
            f"left outside the static memory fraction {util}",
            numbers={"overhead_bytes": over, "reserve_bytes": reserve, "memory_utilization": util},
            why="Large prefills or CUDA-graph capture run out of memory at run time (CUDA out of memory "
                "during a request), after a successful start.",
            fix="Lower --mem-fraction-static (e.g. by 0.05) or --chunked-prefill-size.",
        ))  # fmt: skip
    fix_options = []
    if tokens:
        max_len = int(max(kv_room, 0) / (kv_one / tokens)) if kv_one else 0
        if max_len > 0:
            fix_options.append(f"--max-model-len {max_len // 1024 * 1024 if max_len > 2048 else max_len} (the longest context that fits)")
    if ctx.kv_dtype_bytes > 1:
        fix_options.append("--kv-cache-dtype fp8 (halves the KV cache)")
    fix_options.append("a quantized checkpoint (FP8/AWQ/GPTQ) or more GPUs with a larger tensor-parallel size")
    if weights + overhead > budget:
        return [ctx.finding(
            "res.gpu_memory", "block", "weights alone exceed the memory budget: " + summary, numbers=numbers,
            why="Loading fails with 'CUDA out of memory' before the KV cache is even allocated.",
            fix="Use " + "; or ".join(fix_options[-1:]) + f"; or raise --gpu-memory-utilization (now {util}).",
        )]  # fmt: skip
    if need > budget:
        hard = ctx.launch.spec.get("kv_must_hold_full_sequence")
        return [ctx.finding(
            "res.gpu_memory", "block" if hard else "warn",
            f"weights + KV cache for one {tokens:,}-token sequence exceed the budget by {gib(need - budget)}: " + summary,
            numbers=numbers,
            why=("vLLM stops after profiling: 'The model's max seq len is larger than the maximum number "
                 "of tokens that can be stored in KV cache' (or 'No available memory for the cache blocks')."
                 if hard else "The engine starts with a smaller KV pool and rejects or truncates requests longer than it holds."),
            fix="Use " + "; or ".join(fix_options) + ".",
        ), *extra]  # fmt: skip
    return extra or [ctx.finding(
        "res.gpu_memory", "pass",
        summary + f"; KV room holds {fits_seqs:.1f} full-length sequences "
        f"(max_num_seqs {seqs} × {tokens:,} tokens would need {gib(kv_all)})",
        numbers=numbers,
    )]  # fmt: skip


def _llama_gpu_memory(ctx: Context) -> list[Finding]:
    m = ctx.model
    assert m is not None
    on_gpu, layers = _llama_offload(ctx)
    if on_gpu == 0:
        return [ctx.finding("res.gpu_memory", "pass", "no layers offloaded (-ngl 0): weights and KV cache stay in CPU RAM")]
    frac = on_gpu / layers if layers else 0
    weights = int(m.weights_bytes() * frac)
    tokens = context_length(ctx) or 0
    kv = int(m.kv_bytes(tokens, ctx.kv_dtype_bytes) * frac) if not ctx.launch.get("no_kv_offload") else 0
    over = overhead_bytes(ctx, 1)
    need = weights + kv + sum(over.values())
    budget = sum(g.memory_bytes for g in ctx.gpus)
    numbers = {"layers_on_gpu": on_gpu, "layers": layers, "weights_on_gpu_bytes": weights, "kv_bytes": kv,
               "context_length": tokens, "overhead_bytes": over, "need_bytes": need, "budget_bytes": budget,
               "gpus": [g.name for g in ctx.gpus]}  # fmt: skip
    summary = (f"{on_gpu}/{layers} layers on GPU: weights {gib(weights)} + KV cache {gib(kv)} ({tokens:,} tokens) "
               f"+ compute buffers ≈{gib(sum(over.values()))} = {gib(need)}; GPU memory {gib(budget)}")  # fmt: skip
    if need > budget:
        per_layer = (weights + kv) / on_gpu if on_gpu else 1
        fit = max(0, int((budget - sum(over.values())) / per_layer))
        return [ctx.finding(
            "res.gpu_memory", "block", "does not fit: " + summary, numbers={**numbers, "layers_that_fit": fit},
            why="llama.cpp aborts while allocating ('cudaMalloc failed: out of memory', 'failed to allocate buffer').",
            fix=f"Use -ngl {fit} (the layers that fit), a smaller -c, -ctk/-ctv q8_0, or a smaller quantization.",
        )]  # fmt: skip
    return [ctx.finding("res.gpu_memory", "pass", summary, numbers=numbers)]


@check("res.cpu_memory")
def check_cpu_memory(ctx: Context) -> list[Finding]:
    ram = ctx.machine.cpu_ram_bytes
    if ctx.model is None or not ram:
        return [ctx.finding("res.cpu_memory", "skip", "CPU RAM or model size unknown")]
    m = ctx.model
    weights = m.weights_bytes(ctx.compute_dtype)
    process = int(2 * GIB)  # one engine process: Python, CUDA host allocations
    if ctx.launch.engine == "llama.cpp":
        on_gpu, layers = _llama_offload(ctx)
        cpu_weights = int(weights * (1 - (on_gpu / layers if layers else 0)))
        kv_cpu = m.kv_bytes(context_length(ctx) or 0, ctx.kv_dtype_bytes) if on_gpu == 0 else 0
        need = cpu_weights + kv_cpu + process
        locked = bool(ctx.launch.get("no_mmap") or ctx.launch.get("mlock"))
        numbers = {"cpu_ram_bytes": ram, "weights_in_ram_bytes": cpu_weights, "kv_in_ram_bytes": kv_cpu, "need_bytes": need}
        if need > ram:
            return [ctx.finding(
                "res.cpu_memory", "block" if locked else "warn",
                f"the CPU part needs {gib(need)} (weights {gib(cpu_weights)} + KV {gib(kv_cpu)}); RAM {gib(ram)}",
                numbers=numbers,
                why=("With --no-mmap/--mlock the weights must fit in RAM: the process is killed by the OOM killer."
                     if locked else "The weights are memory-mapped and paged from disk on every token: generation crawls."),
                fix="Offload more layers (-ngl), use a smaller quantization, or add RAM.",
            )]  # fmt: skip
        return [ctx.finding("res.cpu_memory", "pass", f"CPU part {gib(need)} fits in RAM {gib(ram)}", numbers=numbers)]
    workers = ctx.tp * ctx.pp * ctx.dp
    offload = int(float(ctx.launch.get("cpu_offload_gb") or 0) * GIB) * workers
    swap = int(float(ctx.launch.settings.get("swap_space") or 0) * GIB) * workers
    largest = int(ctx.cache.get("largest_shard_bytes") or min(weights, 5 * 10**9))
    need = workers * (process + largest) + offload + swap
    comfortable = need + weights
    numbers = {"cpu_ram_bytes": ram, "workers": workers, "largest_shard_bytes": largest,
               "cpu_offload_bytes": offload, "swap_space_bytes": swap, "need_bytes": need,
               "with_page_cache_bytes": comfortable}  # fmt: skip
    if need > ram:
        return [ctx.finding(
            "res.cpu_memory", "block",
            f"loading needs ≈{gib(need)} of CPU RAM ({workers} worker(s) × (2 GiB + largest shard {gib(largest)})"
            f" + CPU offload {gib(offload)} + swap {gib(swap)}); RAM {gib(ram)}",
            numbers=numbers,
            why="The loader is killed by the kernel's OOM killer (exit code -9 / 'Killed') while reading shards.",
            fix="Lower --cpu-offload-gb/--swap-space, use fewer workers per host, or add RAM.",
        )]  # fmt: skip
    if comfortable > ram:
        return [ctx.finding(
            "res.cpu_memory", "warn",
            f"RAM {gib(ram)} cannot also cache the {gib(weights)} of weights: loading streams them from disk",
            numbers=numbers,
            why="Slow start-up and heavy swapping while loading; on a small host the OOM killer may still fire.",
            fix="Expect slow loading; keep weights on fast local disk, or add RAM.",
        )]  # fmt: skip
    return [ctx.finding("res.cpu_memory", "pass", f"RAM {gib(ram)} ≥ ≈{gib(comfortable)} for loading", numbers=numbers)]
