"""Preflight: check an LLM deployment before launching it.

>>> from bugatlas.preflight import parse_command, load_machine, run_preflight
>>> launch = parse_command("vllm serve meta-llama/Meta-Llama-3-8B --tensor-parallel-size 2")
>>> report = run_preflight(launch, load_machine("gpu.yaml"))
>>> report.verdict, report.exit_code          # ("block", 20)

Exit codes: 0 pass, 10 warnings, 20 blocking (see :mod:`bugatlas.preflight.findings`).
"""

from bugatlas.preflight.api import resolve_model, run_preflight
from bugatlas.preflight.findings import (
    EXIT_BLOCK,
    EXIT_PASS,
    EXIT_WARN,
    FailureClass,
    Finding,
    Report,
)
from bugatlas.preflight.launch import Launch, load_deployment, load_deployments, parse_command
from bugatlas.preflight.machine import (
    GPU,
    Machine,
    detect_machine,
    load_machine,
    machine_from_mapping,
)
from bugatlas.preflight.model import ModelSpec, known_models, spec_from_known

__all__ = [
    "EXIT_BLOCK", "EXIT_PASS", "EXIT_WARN", "GPU", "FailureClass", "Finding", "Launch", "Machine",
    "ModelSpec", "Report", "detect_machine", "known_models", "load_deployment", "load_deployments", "load_machine",
    "machine_from_mapping", "parse_command", "resolve_model", "run_preflight", "spec_from_known",
]  # fmt: skip
