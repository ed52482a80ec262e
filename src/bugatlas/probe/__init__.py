"""Probe a running OpenAI-compatible inference server (vLLM, SGLang, llama.cpp, TGI, Ollama)
with oracles that work although LLM output is not fixed, and classify each failure as a
liu2025 symptom::

    from bugatlas.probe import run_probe, probe_findings_frame, save_probe_report
    report = run_probe("http://127.0.0.1:8000/v1", suite="quick")
    for r in report.failures():
        print(r.id, r.symptom, r.message)
    save_probe_report(store, report)
    probe_findings_frame(store)          # findings beside the mined issues
"""

from bugatlas.probe.oracles import ORACLES, Context, Fail, Outcome, Skip, oracle
from bugatlas.probe.runner import CheckResult, ProbeReport, parse_overrides, run_probe
from bugatlas.probe.storage import (
    probe_findings_frame,
    probe_run_results,
    probe_runs_frame,
    save_probe_report,
)
from bugatlas.probe.suite import Check, Suite, builtin_suites, load_suite

__all__ = [
    "ORACLES", "Check", "CheckResult", "Context", "Fail", "Outcome", "ProbeReport", "Skip", "Suite",
    "builtin_suites", "load_suite", "oracle", "parse_overrides", "probe_findings_frame",
    "probe_run_results", "probe_runs_frame", "run_probe", "save_probe_report",
]  # fmt: skip
