"""Run preflight: resolve the model, build the context, run every check, link examples."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bugatlas.errors import BadInputError
from bugatlas.preflight import checks_config, checks_env, checks_resources  # noqa: F401 - registers checks
from bugatlas.preflight._data import load
from bugatlas.preflight.context import REGISTRY, Context
from bugatlas.preflight.findings import Report, find_example
from bugatlas.preflight.launch import Launch
from bugatlas.preflight.machine import Machine
from bugatlas.preflight.model import (
    ModelSpec,
    find_known,
    spec_for_name,
    spec_from_config_file,
    spec_from_known,
)


class ModelConfigError(BadInputError):
    """The model directory's config.json cannot be read (a finding, not a preflight failure)."""

    def __init__(self, message: str, *, corrupt: bool):
        super().__init__(message)
        self.corrupt = corrupt


def hub_cache_snapshot(model: str) -> Path | None:
    """The local snapshot of a Hugging Face hub model already downloaded to this machine's cache
    ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub), so its files can be checked."""
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        return None
    roots = [os.environ.get("HF_HUB_CACHE"),
             os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None,
             os.path.expanduser("~/.cache/huggingface/hub")]  # fmt: skip
    for root in filter(None, roots):
        repo = Path(root) / ("models--" + model.replace("/", "--"))
        ref = repo / "refs" / "main"
        if ref.exists():
            snap = repo / "snapshots" / ref.read_text().strip()
            if snap.is_dir():
                return snap
        snaps = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if (repo / "snapshots").is_dir() else []
        if snaps:
            return snaps[-1]
    return None


def resolve_model(launch: Launch, model_config: str | None = None) -> tuple[ModelSpec | None, Path | None, Path | None]:
    """(spec, local model directory, local GGUF file) for the launch.

    ``model_config`` (``--model-config``) wins: a known shape name, a config.json, or a model
    directory. Otherwise the launch's model: a local directory or GGUF file, or a name that
    matches a known shape (``meta-llama/Meta-Llama-3-8B`` → ``llama-3-8b``).
    """
    from bugatlas.preflight import assets

    model = launch.model
    local = Path(model).expanduser() if model else None
    model_dir = local if local is not None and local.is_dir() else None
    if model_dir is None and model and not (local is not None and local.exists()):
        model_dir = hub_cache_snapshot(model)
    gguf = local if local is not None and local.is_file() and local.suffix.lower() == ".gguf" else None
    spec: ModelSpec | None = None
    if model_config:
        path = Path(model_config).expanduser()
        if path.is_dir():
            spec = spec_from_config_file(path / "config.json") if (path / "config.json").exists() else None
            if spec is None:
                raise BadInputError(f"--model-config {path}: no config.json in that directory")
            model_dir = model_dir or path
        elif path.is_file():
            spec = assets.spec_from_gguf(path) if path.suffix.lower() == ".gguf" else spec_from_config_file(path)
        else:
            spec = spec_for_name(model, model_config) if model else spec_from_known(model_config)
    elif model_dir is not None and (model_dir / "config.json").exists():
        try:
            spec = spec_from_config_file(model_dir / "config.json")
        except BadInputError as exc:
            raise ModelConfigError(str(exc), corrupt=True) from exc
    elif gguf is not None:
        try:
            spec = assets.spec_from_gguf(gguf)
        except BadInputError:
            spec = None  # a broken GGUF file is a blocking finding of assets.gguf, not bad input
    elif model and (key := find_known(model)):
        spec = spec_for_name(model, key)
    if spec is not None and model_dir is not None:
        spec.directory = model_dir
    return spec, model_dir, gguf


def run_preflight(
    launch: Launch,
    machine: Machine,
    *,
    model_config: str | None = None,
    store: Any = None,
    only: list[str] | None = None,
) -> Report:
    """Check a launch configuration against a machine. ``store`` (a :class:`bugatlas.Store`)
    links each failing finding to an example issue."""
    from bugatlas.preflight import (
        assets,  # noqa: F401 - registers asset and tokenizer checks
        tokenizer,  # noqa: F401
    )

    config_problem: ModelConfigError | None = None
    try:
        spec, model_dir, gguf = resolve_model(launch, model_config)
    except ModelConfigError as exc:
        config_problem = exc
        spec, gguf = None, None
        model_dir = Path(launch.model).expanduser() if launch.model else None
    overrides = launch.get("hf_overrides")
    if spec is not None and overrides:
        try:  # vLLM --hf-overrides / SGLang --json-model-override-args: merged into config.json
            extra = json.loads(overrides) if isinstance(overrides, str) else dict(overrides)
        except ValueError as exc:
            raise BadInputError(f"launch command: config overrides are not JSON ({exc})") from exc
        if not isinstance(extra, dict):
            raise BadInputError("launch command: config overrides must be a JSON object")
        spec.config.update(extra)
        spec.source += " + overrides"
    if spec is not None:
        try:  # a config without the fields sizing needs (an unfamiliar architecture)
            spec.param_count()
            spec.kv_bytes_per_token()
        except (BadInputError, KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            config_problem = ModelConfigError(f"{spec.source}: cannot size this architecture ({exc})", corrupt=False)
            spec = None
    ctx = Context(launch=launch, machine=machine, model=spec, model_dir=model_dir, gguf_path=gguf)
    model = launch.model or ""
    if model_dir is None and gguf is None and (model.startswith(("/", "./", "../", "~")) or model.endswith(".gguf")):
        ctx.cache["missing_path"] = model  # a path, not a hub name, and not on this host
    if config_problem is not None:
        ctx.cache["config_problem"] = config_problem
    assets.prepare(ctx)
    if spec is not None and overrides and any(k in str(overrides) for k in ("num_hidden_layers", "hidden_size", "num_experts", "n_routed_experts")):
        spec.weights_bytes_on_disk = None  # the engine builds a different shape than the files hold
    findings = []
    order = {cid: n for n, cid in enumerate(load("checks"))}  # the order of checks.yaml
    unknown = [o for o in only or [] if not any(cid.startswith(o) for cid, _ in REGISTRY)]
    if unknown:  # a typo would run no check and pass
        raise BadInputError(f"--only {', '.join(unknown)}: no check id starts with it "
                            f"(checks: {', '.join(sorted(order))})")
    for check_id, fn in sorted(REGISTRY, key=lambda item: order[item[0]]):
        if only and not any(check_id.startswith(o) for o in only):
            continue
        findings.extend(fn(ctx))
    if store is not None:
        cache: dict[str, Any] = {}
        for f in findings:
            if f.severity in ("warn", "block"):
                if f.check not in cache:
                    cache[f.check] = find_example(store, f.check, f.classes)
                f.example = cache[f.check]
    return Report(
        findings=findings, launch=launch.to_dict(), machine=machine.to_dict(),
        model=spec.to_dict() if spec else None,
    )
