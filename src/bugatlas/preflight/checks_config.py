"""Configuration checks: flags the engine does not know (likely typos) and flag combinations
it rejects at start-up."""

from __future__ import annotations

import difflib

from bugatlas.preflight.context import Context, check
from bugatlas.preflight.findings import Finding
from bugatlas.preflight.launch import _flag_index


def _problems(ctx: Context) -> list[tuple[str, str, str, str]]:
    """(severity, message, why, fix) for each rejected combination."""
    out = []
    g = ctx.launch.get
    if ctx.launch.engine in ("vllm", "sglang"):
        util = g("gpu_memory_utilization")
        if util is not None and not 0 < float(util) <= 1:
            out.append(("block", f"memory fraction {util} is outside (0, 1]",
                        "The engine rejects it at start-up (vLLM: 'GPU memory utilization must be less than 1.0').",
                        "Use a fraction such as 0.9."))  # fmt: skip
    if ctx.launch.engine == "vllm":
        seqs, batched = g("max_num_seqs"), ctx.launch.settings.get("max_num_batched_tokens")
        if batched is not None and seqs is not None and int(batched) < int(seqs):
            out.append(("block", f"--max-num-batched-tokens {batched} is smaller than --max-num-seqs {seqs}",
                        "vLLM refuses to start: 'max_num_batched_tokens must be greater than or equal to max_num_seqs'.",
                        f"Raise --max-num-batched-tokens to at least {seqs} or lower --max-num-seqs."))  # fmt: skip
    if ctx.launch.engine == "llama.cpp":
        v = str(g("cache_type_v", "f16")).lower()
        fa = ctx.launch.settings.get("flash_attn")
        if v not in ("f16", "f32", "bf16"):
            if fa is False:
                out.append(("block", f"-ctv {v} with flash attention off",
                            "llama.cpp refuses a quantized V cache without flash attention ('V cache quantization requires flash_attn').",
                            "Add -fa on, or use -ctv f16."))  # fmt: skip
            elif fa is None:
                out.append(("warn", f"-ctv {v} without -fa",
                            "Older llama.cpp builds refuse a quantized V cache unless flash attention is on; newer ones turn it on automatically where supported.",
                            "Add -fa on explicitly."))  # fmt: skip
    return out


@check("cfg.flags")
def check_flags(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    known = sorted(n for n in _flag_index(ctx.launch.engine) if n.startswith("--"))
    typos = []
    for flag in ctx.launch.unknown_flags:
        if not flag.startswith("--"):
            continue
        close = difflib.get_close_matches(flag, known, n=1, cutoff=0.85)
        if close and close[0] != flag:
            typos.append((flag, close[0]))
    for flag, near in typos:
        out.append(ctx.finding(
            "cfg.flags", "warn", f"{flag} is not a {ctx.launch.title} flag preflight knows; did you mean {near}?",
            numbers={"flag": flag, "closest": near},
            why="A misspelt flag stops the engine ('unrecognized arguments'), or, passed through a "
                "wrapper that ignores unknown flags, silently leaves the default in force.",
            fix=f"Use {near}.",
        ))  # fmt: skip
    for severity, message, why, fix in _problems(ctx):
        out.append(ctx.finding("cfg.flags", severity, message, why=why, fix=fix))  # type: ignore[arg-type]
    if not out:
        others = [f for f in ctx.launch.unknown_flags if f.startswith("-")]
        note = f"; not in preflight's flag table (not checked): {', '.join(others)}" if others else ""
        out.append(ctx.finding("cfg.flags", "pass", f"{len(ctx.launch.settings)} flag(s) understood, no rejected combination{note}",
                               numbers={"unknown_flags": others}))  # fmt: skip
    return out
