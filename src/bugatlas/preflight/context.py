"""What every check sees: the launch, the machine and the model, plus a registry of checks."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from bugatlas.preflight._data import load
from bugatlas.preflight.findings import Finding, Severity, failure_classes
from bugatlas.preflight.launch import Launch
from bugatlas.preflight.machine import GPU, Machine
from bugatlas.preflight.model import ModelSpec, dtype_bytes, resolve_dtype


@dataclass
class Context:
    launch: Launch
    machine: Machine
    model: ModelSpec | None = None
    model_dir: Path | None = None        # local Hugging Face model directory
    gguf_path: Path | None = None        # local GGUF file (llama.cpp)
    cache: dict[str, Any] = field(default_factory=dict)

    # -- GPUs and parallelism ------------------------------------------------------------------
    @property
    def cuda_visible_devices(self) -> str | None:
        if "CUDA_VISIBLE_DEVICES" in self.launch.env:
            return self.launch.env["CUDA_VISIBLE_DEVICES"]
        if self.machine.source == "this machine":
            return os.environ.get("CUDA_VISIBLE_DEVICES")
        return None

    @property
    def gpus(self) -> list[GPU]:
        return self.machine.visible_gpus(self.cuda_visible_devices)

    @property
    def tp(self) -> int:
        return int(self.launch.get("tensor_parallel_size", 1) or 1)

    @property
    def pp(self) -> int:
        return int(self.launch.get("pipeline_parallel_size", 1) or 1)

    @property
    def dp(self) -> int:
        return int(self.launch.get("data_parallel_size", 1) or 1)

    @property
    def nnodes(self) -> int:
        return max(1, int(self.launch.get("nnodes", 1) or 1))

    @property
    def dp_attention(self) -> bool:
        """SGLang's DP attention: the DP groups live inside the TP GPUs."""
        return bool(self.launch.get("enable_dp_attention"))

    @property
    def expert_parallel(self) -> bool:
        return bool(self.launch.get("enable_expert_parallel")) or int(self.launch.get("expert_parallel_size", 1) or 1) > 1

    @property
    def attention_tp(self) -> int:
        """How many ways the attention heads are split."""
        return max(1, self.tp // self.dp) if self.dp_attention else self.tp

    @property
    def gpus_needed(self) -> int:
        """GPUs on THIS node (multi-node SGLang splits the world over --nnodes)."""
        world = self.tp * self.pp * (1 if self.dp_attention else self.dp)
        return -(-world // self.nnodes)

    def min_cc(self) -> tuple[int, int] | None:
        ccs = [g.cc for g in self.gpus[: max(self.gpus_needed, 1)] if g.cc]
        return min(ccs) if ccs else None

    # -- versions ------------------------------------------------------------------------------
    @property
    def engine_package(self) -> str | None:
        return self.launch.spec.get("package")

    def version(self, package: str | None) -> Version | None:
        if not package:
            return None
        text = self.machine.package(package)
        if not text:
            return None
        try:
            return Version(text)
        except InvalidVersion:
            return None

    @property
    def engine_version(self) -> Version | None:
        return self.version(self.engine_package)

    # -- numbers -------------------------------------------------------------------------------
    @property
    def compute_dtype(self) -> str:
        config_dtype = self.model.torch_dtype if self.model else "float16"
        return resolve_dtype(self.launch.get("dtype"), config_dtype)

    @property
    def kv_dtype_bytes(self) -> float:
        if self.launch.engine == "llama.cpp":
            k = dtype_bytes(self.launch.get("cache_type_k", "f16"))
            v = dtype_bytes(self.launch.get("cache_type_v", "f16"))
            return (k + v) / 2
        kv = self.launch.get("kv_cache_dtype", "auto")
        if kv in (None, "auto"):
            return dtype_bytes(self.compute_dtype)
        return dtype_bytes(kv)

    def finding(self, check: str, severity: Severity, message: str, **kw: Any) -> Finding:
        return Finding(check=check, severity=severity, message=message,
                       classes=failure_classes(check) if severity in ("warn", "block") else [], **kw)  # fmt: skip


CheckFn = Callable[[Context], list[Finding]]
REGISTRY: list[tuple[str, CheckFn]] = []


def check(check_id: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check; its id must be described in data/checks.yaml."""
    if check_id not in load("checks"):
        raise KeyError(f"check {check_id} is not described in checks.yaml")

    def wrap(fn: CheckFn) -> CheckFn:
        REGISTRY.append((check_id, fn))
        fn.check_id = check_id  # type: ignore[attr-defined]
        return fn

    return wrap
