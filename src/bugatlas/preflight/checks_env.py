"""Environment checks: Python, the engine and its declared requirements, CUDA against the
driver, the architecture against transformers and the engine, kernels against the GPU."""

from __future__ import annotations

import re
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from bugatlas.preflight._data import load
from bugatlas.preflight.context import Context, check
from bugatlas.preflight.findings import Finding


def _v(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def _cc_text(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def _cc_of(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def engine_release(ctx: Context) -> dict[str, Any] | None:
    """The compatibility-table row of the installed engine release."""
    version = ctx.engine_version
    if version is None:
        return None
    for row in load("compat")["engine_releases"].get(ctx.launch.engine, []):
        if SpecifierSet(row["versions"]).contains(version, prereleases=True):
            return row
    return None


@check("env.python")
def check_python(ctx: Context) -> list[Finding]:
    python = _v(ctx.machine.python)
    if python is None:
        return [ctx.finding("env.python", "skip", "Python version unknown (not in the machine description)")]
    package = ctx.engine_package
    spec, source = None, None
    if package and package in ctx.machine.requires_python:
        spec, source = ctx.machine.requires_python[package], f"{package} package metadata (Requires-Python)"
    elif (row := engine_release(ctx)) and row.get("python"):
        spec, source = row["python"], row["source"]
    if not spec:
        return [ctx.finding("env.python", "pass", f"Python {python}; no requirement known for {ctx.launch.title}")]
    if SpecifierSet(spec).contains(python, prereleases=True):
        return [ctx.finding("env.python", "pass", f"Python {python} satisfies {spec}", numbers={"python": str(python), "requires": spec})]
    return [ctx.finding(
        "env.python", "block",
        f"Python {python} is outside {ctx.launch.title} {ctx.engine_version}'s supported range {spec}",
        numbers={"python": str(python), "requires": spec, "source": source},
        why="No wheel (or a broken build) of the engine exists for this interpreter: installation "
            "fails or the compiled extension does not import.",
        fix=f"Use a Python in {spec} (e.g. a fresh venv: `uv venv --python 3.12`).",
    )]  # fmt: skip


def _declared_requirements(ctx: Context) -> tuple[list[Requirement], str]:
    package = ctx.engine_package
    if package and package in ctx.machine.requirements:
        reqs = []
        for line in ctx.machine.requirements[package]:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None:
                try:
                    if not req.marker.evaluate({"extra": ""}):
                        continue
                except Exception:  # noqa: BLE001 - markers naming unknown variables are skipped
                    continue
            reqs.append(req)
        return reqs, f"{package} {ctx.engine_version} package metadata"
    row = engine_release(ctx)
    if row:
        reqs = [Requirement(f"{name}{row[name]}") for name in ("torch", "transformers") if row.get(name)]
        return reqs, row["source"]
    return [], ""


@check("env.engine")
def check_engine(ctx: Context) -> list[Finding]:
    package = ctx.engine_package
    if not package:
        return [ctx.finding("env.engine", "skip", f"{ctx.launch.title} is a native binary; no Python package to check")]
    if not ctx.machine.packages:
        return [ctx.finding("env.engine", "skip", "no package list (describe `packages:` in the machine file)")]
    if ctx.engine_version is None:
        return [ctx.finding(
            "env.engine", "block", f"{package} is not installed in this Python environment",
            numbers={"package": package},
            why="The launch command fails before loading anything (command or module not found).",
            fix=f"`pip install {package}` (a release whose torch matches your CUDA driver), or run "
                f"preflight with the engine's interpreter: `bugatlas preflight --python /path/to/venv/bin/python …`.",
        )]  # fmt: skip
    reqs, source = _declared_requirements(ctx)
    if not reqs:
        return [ctx.finding("env.engine", "pass", f"{package} {ctx.engine_version} installed; its requirements are not in the compatibility table",
                            numbers={"engine": f"{package} {ctx.engine_version}"})]  # fmt: skip
    broken, missing = [], []
    for req in reqs:
        have = ctx.machine.package(req.name)
        if have is None:
            if req.name.lower() in ("torch", "transformers", "tokenizers", "xformers", "triton") or package in ctx.machine.requirements:
                missing.append(str(req))
            continue
        v = _v(have)
        if req.specifier and v is not None and not req.specifier.contains(v, prereleases=True):
            broken.append((req, have))
    numbers = {"engine": f"{package} {ctx.engine_version}", "checked": len(reqs), "source": source,
               "unmet": [f"{r.name} {have} (needs {r.specifier})" for r, have in broken], "missing": missing}  # fmt: skip
    if not broken and not missing:
        return [ctx.finding("env.engine", "pass", f"{package} {ctx.engine_version}: all {len(reqs)} declared requirements met", numbers=numbers)]
    core = [r for r, _ in broken if r.name.lower() in ("torch", "transformers", "xformers", "flashinfer-python", "triton")]
    severity = "block" if core or missing else "warn"
    parts = [f"{r.name} {have} (declared {r.specifier})" for r, have in broken] + [f"{m} missing" for m in missing]
    return [ctx.finding(
        "env.engine", severity,
        f"{package} {ctx.engine_version} declares requirements this environment does not meet: " + "; ".join(parts),
        numbers=numbers,
        why="Engines compile their CUDA extensions against one exact torch; another torch fails at "
            "import with `undefined symbol` errors, and an older transformers lacks the classes the "
            "engine imports.",
        fix=f"Reinstall in a clean venv so pip resolves the pins: `pip install '{package}=={ctx.engine_version}'` "
            "(do not upgrade torch or transformers separately afterwards).",
    )]  # fmt: skip


def cuda_runtime(ctx: Context) -> tuple[str | None, str]:
    """The CUDA runtime the engine will use, and where that came from."""
    if ctx.machine.cuda_runtime:
        return ctx.machine.cuda_runtime, "machine"
    torch = ctx.machine.package("torch")
    if torch:
        match = re.search(r"\+cu(\d+)(\d)$", torch)
        if match:
            return f"{match.group(1)}.{match.group(2)}", "torch build tag"
        tv = _v(torch)
        for row in load("compat")["torch_default_cuda"]:
            if tv is not None and SpecifierSet(row["versions"]).contains(Version(tv.base_version)):
                return row["cuda"], f"default CUDA of torch {tv.base_version} wheels"
    row = engine_release(ctx)
    if row and row.get("cuda"):
        return row["cuda"], f"CUDA of {ctx.engine_package} {ctx.engine_version} wheels"
    return None, ""


@check("env.cuda_driver")
def check_cuda_driver(ctx: Context) -> list[Finding]:
    if not ctx.gpus:
        return [ctx.finding("env.cuda_driver", "skip", "no GPU visible")]
    torch = ctx.machine.package("torch") or ""
    if re.search(r"\+(cpu|rocm[\d.]*|xpu)$", torch) and ctx.launch.engine != "llama.cpp":
        build = torch.split("+")[1]
        return [ctx.finding(
            "env.cuda_driver", "block", f"torch {torch} is a {build} build; this machine has NVIDIA GPUs",
            numbers={"torch": torch},
            why="'Torch not compiled with CUDA enabled' (or no CUDA device found) at start-up: the "
                "wrong wheel was installed, usually by a later `pip install torch` from the CPU index.",
            fix="Reinstall the engine in a clean venv so its CUDA torch pin is resolved (`pip install --force-reinstall ENGINE`).",
        )]  # fmt: skip
    runtime, origin = cuda_runtime(ctx)
    driver = _v(ctx.machine.driver)
    if runtime is None or driver is None:
        what = "CUDA runtime" if runtime is None else "NVIDIA driver version"
        return [ctx.finding("env.cuda_driver", "skip", f"{what} unknown")]
    rows = load("compat")["cuda_drivers"]
    rt = _v(runtime)
    candidates = [r for r in rows if _v(r["cuda"]) <= rt and _v(r["cuda"]).major == rt.major]  # type: ignore[operator]
    if not candidates:
        return [ctx.finding("env.cuda_driver", "pass", f"CUDA {runtime}: not in the driver table")]
    row = max(candidates, key=lambda r: _v(r["cuda"]))  # type: ignore[arg-type, return-value]
    shown = ctx.machine.driver  # as the machine reports it (570.124.06, not 570.124.6)
    numbers = {"cuda_runtime": runtime, "cuda_from": origin, "driver": shown,
               "driver_minimum": row["minimum"], "driver_for_toolkit": row["toolkit"], "source": row["source"]}  # fmt: skip
    if driver < Version(row["minimum"]):
        return [ctx.finding(
            "env.cuda_driver", "block",
            f"driver {shown} is older than {row['minimum']}, the minimum for CUDA {runtime} ({origin})",
            numbers=numbers,
            why="CUDA initialisation fails: 'The NVIDIA driver on your system is too old' / "
                "cudaErrorInsufficientDriver, before any model code runs.",
            fix=f"Upgrade the driver to ≥ {row['toolkit']}, or install an engine/torch build for an "
                "older CUDA (e.g. a cu118 or cu121 wheel).",
        )]  # fmt: skip
    if driver < Version(row["toolkit"]):
        return [ctx.finding(
            "env.cuda_driver", "warn",
            f"driver {shown} runs CUDA {runtime} only through minor-version compatibility "
            f"(released with ≥ {row['toolkit']})",
            numbers=numbers,
            why="Kernels compiled just-in-time from PTX (Triton, some FlashInfer paths) fail with "
                "'the provided PTX was compiled with an unsupported toolchain'.",
            fix=f"Upgrade the driver to ≥ {row['toolkit']}.",
        )]  # fmt: skip
    return [ctx.finding("env.cuda_driver", "pass", f"driver {shown} supports CUDA {runtime} ({origin})", numbers=numbers)]


def _architecture_rows(ctx: Context) -> list[dict[str, Any]]:
    archs = set(ctx.model.architectures) if ctx.model else set()
    rows = [r for r in load("compat")["architectures"] if archs & set(r["match"])]
    for feat in load("compat")["features"]:
        if all(_dig(ctx.model.config if ctx.model else {}, k) == v for k, v in feat["when"].items()):
            rows.append({**feat, "match": [feat["title"]]})
    return rows


def _dig(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)  # type: ignore[assignment]
    return data


@check("env.architecture")
def check_architecture(ctx: Context) -> list[Finding]:
    if ctx.model is None:
        return [ctx.finding("env.architecture", "skip", "no model config")]
    rows = _architecture_rows(ctx)
    archs = ", ".join(ctx.model.architectures) or ctx.model.model_type or "unknown"
    if not rows:
        return [ctx.finding("env.architecture", "pass", f"{archs}: no minimum versions in the table")]
    remote = bool(ctx.launch.get("trust_remote_code")) and bool(ctx.model.config.get("auto_map"))
    problems, checked = [], []
    for row in rows:
        for package in ("transformers", ctx.launch.engine):
            spec = row.get(package)
            pkg_name = "transformers" if package == "transformers" else ctx.engine_package
            if not spec or not pkg_name:
                continue
            have = ctx.version(pkg_name)
            if have is None:
                continue
            checked.append(f"{pkg_name} {have} {spec}")
            if not SpecifierSet(spec).contains(have, prereleases=True):
                if package == "transformers" and remote:
                    continue  # the checkpoint's own modeling code is used instead
                problems.append((row, pkg_name, have, spec))
    if not problems:
        if not checked:
            return [ctx.finding("env.architecture", "skip", f"{archs}: transformers/engine versions unknown")]
        return [ctx.finding("env.architecture", "pass", f"{archs}: " + "; ".join(checked))]
    text = "; ".join(f"{' / '.join(r['match'])} needs {p}{s}, found {h}" for r, p, h, s in problems)
    return [ctx.finding(
        "env.architecture", "block", text,
        numbers={"architectures": ctx.model.architectures,
                 "unmet": [{"package": p, "found": str(h), "needs": s, "source": r["source"]} for r, p, h, s in problems]},
        why="The installed release does not know this architecture or config feature: loading fails "
            "with 'model type … not recognized' / 'Model architectures [...] are not supported', or "
            "rope scaling is rejected.",
        fix="Upgrade: " + ", ".join(f"`pip install '{p}{s}'`" for _, p, _, s in problems)
            + (" (or pass --trust-remote-code when the checkpoint ships its own code)" if ctx.model.config.get("auto_map") else ""),
    )]  # fmt: skip


def _attention_choice(ctx: Context) -> str | None:
    explicit = ctx.launch.get("attention_backend")
    env_name = ctx.launch.spec.get("env", {}).get("attention_backend")
    if env_name and env_name in ctx.launch.env:
        explicit = ctx.launch.env[env_name]
    return str(explicit).lower() if explicit else None


@check("env.kernels")
def check_kernels(ctx: Context) -> list[Finding]:
    cc = ctx.min_cc()
    if cc is None:
        return [ctx.finding("env.kernels", "skip", "GPU compute capability unknown" if ctx.gpus else "no GPU visible")]
    if ctx.launch.engine == "llama.cpp":
        return [ctx.finding("env.kernels", "pass", f"compute capability {_cc_text(cc)}: llama.cpp's CUDA kernels cover it")]
    kernels = load("compat")["kernels"]
    out: list[Finding] = []
    gpu = next(g for g in ctx.gpus if g.cc == cc)
    dtype = ctx.compute_dtype
    bf16 = kernels["bfloat16"]
    if dtype == "bfloat16" and cc < _cc_of(bf16["min"]):
        explicit = ctx.launch.get("dtype") not in (None, "auto")
        out.append(ctx.finding(
            "env.kernels", "block" if explicit else "warn",
            f"bfloat16 needs compute capability ≥ {bf16['min']}; {gpu.name} has {_cc_text(cc)}"
            + ("" if explicit else " (the checkpoint is bfloat16 and --dtype is auto)"),
            numbers={"dtype": dtype, "compute_capability": _cc_text(cc), "needs": bf16["min"], "source": bf16["source"]},
            why="'Bfloat16 is only supported on GPUs with compute capability of at least 8.0' at start-up; "
                "with dtype auto recent engines cast to float16, where bf16-trained models (Gemma, "
                "Qwen) can overflow to inf/NaN and emit garbage.",
            fix="Pass `--dtype float16` (and check outputs), or use an Ampere-or-newer GPU.",
        ))  # fmt: skip
    choice = _attention_choice(ctx)
    fa2, fa3 = kernels["flash_attention_2"], kernels["flash_attention_3"]
    if choice in ("flash_attn", "fa2", "flash_attention") and cc < _cc_of(fa2["min"]):
        out.append(ctx.finding(
            "env.kernels", "block", f"attention backend {choice} needs compute capability ≥ {fa2['min']}; {gpu.name} has {_cc_text(cc)}",
            numbers={"attention_backend": choice, "compute_capability": _cc_text(cc), "needs": fa2["min"], "source": fa2["source"]},
            why="FlashAttention-2 has no kernels for this GPU ('FlashAttention only supports Ampere GPUs or newer').",
            fix="Drop the attention-backend setting so the engine picks one that runs here (xformers, FlashInfer, Triton).",
        ))  # fmt: skip
    elif choice in ("fa3", "flash_attn_3") and cc < _cc_of(fa3["min"]):
        out.append(ctx.finding(
            "env.kernels", "block", f"attention backend {choice} needs compute capability ≥ {fa3['min']}; {gpu.name} has {_cc_text(cc)}",
            numbers={"attention_backend": choice, "compute_capability": _cc_text(cc), "needs": fa3["min"], "source": fa3["source"]},
            why="FlashAttention-3 is written for Hopper (sm90) only.",
            fix="Use `--attention-backend flashinfer` or `triton`, or leave the default.",
        ))  # fmt: skip
    elif choice is None and cc < _cc_of(fa2["min"]):
        out.append(ctx.finding(
            "env.kernels", "warn", f"no FlashAttention-2 on compute capability {_cc_text(cc)} ({gpu.name}): the engine falls back to a slower attention backend",
            numbers={"compute_capability": _cc_text(cc), "flash_attention_2_needs": fa2["min"], "source": fa2["source"]},
            why="Pre-Ampere GPUs run slower fallback kernels; some features (sliding window, FP8 KV "
                "cache, MLA) have no fallback there.",
            fix="Expect lower throughput; use an Ampere-or-newer GPU for production.",
        ))  # fmt: skip
    kv = str(ctx.launch.get("kv_cache_dtype") or "auto")
    if kv.startswith("fp8"):
        fp8kv = kernels["fp8_kv_cache"]
        if cc < _cc_of(fp8kv["min"]):
            out.append(ctx.finding(
                "env.kernels", "block", f"--kv-cache-dtype {kv} needs compute capability ≥ {fp8kv['min']}; {gpu.name} has {_cc_text(cc)}",
                numbers={"kv_cache_dtype": kv, "compute_capability": _cc_text(cc), "source": fp8kv["source"]},
                why="No attention kernel reads an FP8 cache on this GPU.", fix="Use `--kv-cache-dtype auto`.",
            ))  # fmt: skip
        elif cc < _cc_of(fp8kv["native"]):
            out.append(ctx.finding(
                "env.kernels", "warn", f"--kv-cache-dtype {kv} on compute capability {_cc_text(cc)}: no native FP8, values are converted in software",
                numbers={"kv_cache_dtype": kv, "compute_capability": _cc_text(cc), "native": fp8kv["native"], "source": fp8kv["source"]},
                why="Some attention backends reject an FP8 cache below Ada/Hopper; others run it slower.",
                fix="Check the start-up log for the chosen backend, or use `--kv-cache-dtype auto`.",
            ))  # fmt: skip
    if not out:
        out.append(ctx.finding("env.kernels", "pass", f"{gpu.name} (compute capability {_cc_text(cc)}) supports {dtype}"
                               + (f" and attention backend {choice}" if choice else "")))  # fmt: skip
    return out
