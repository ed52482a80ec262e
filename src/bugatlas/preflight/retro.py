"""Retrospective preflight over reported issues: would a dry run have caught them?

Issue reports often paste the launch command (``vllm serve …``, ``python -m
sglang.launch_server …``, ``llama-server …``) and name the GPU. This module extracts those
commands, parses them with the same flag tables, and runs the checks that need no access to the
reporter's machine: flag typos and rejected combinations, parallel sizes against the model's
heads, context against the model's trained length (for known model shapes) and, when the issue
names a GPU, memory, kernels and quantization against that GPU (assuming as many of them as the
parallel size asks for). Findings can be stored as labels (taxonomy ``preflight``, dimension =
severity, value = check id, source ``preflight-retro``) so the analysis stage can cross them
with the failure labels.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bugatlas.errors import BadInputError
from bugatlas.preflight._data import load
from bugatlas.preflight.launch import Launch, parse_command
from bugatlas.preflight.machine import Machine, machine_from_mapping

_LAUNCHER = re.compile(
    r"(vllm\s+serve\b|vllm\.entrypoints\.(openai\.)?api_server|sglang\.launch_server|(^|[\s/`])llama-server\b)"
)
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_STOP_TOKENS = {"&&", "||", "|", ";", ">", ">>", "2>&1", "&", "2>", "1>"}
# Checks that need no access to the reporter's machine; the GPU-bound ones run only when the
# issue names a GPU.
MACHINE_FREE = ["cfg.flags", "res.parallel_heads", "res.context"]
GPU_BOUND = ["res.gpu_memory", "env.kernels", "assets.quantization"]


def _lines(text: str) -> list[str]:
    """Lines with shell continuations (``\\`` at the end) joined."""
    out: list[str] = []
    buf = ""
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return out


def extract_commands(text: str, *, limit: int = 5) -> list[list[str]]:
    """Launch commands in an issue's text, as argv lists (at most ``limit``)."""
    commands: list[list[str]] = []
    seen: set[str] = set()
    for line in _lines(text or ""):
        match = _LAUNCHER.search(line)
        if not match or "--version" in line or "--help" in line:
            continue
        cleaned = line.replace("`", " ").strip().lstrip("$>#").strip()
        try:
            tokens = shlex.split(cleaned, comments=False)
        except ValueError:
            tokens = cleaned.split()
        start = None
        for i, tok in enumerate(tokens):
            if (tok == "vllm" and i + 1 < len(tokens) and tokens[i + 1] == "serve") or "api_server" in tok \
                    or "sglang.launch_server" in tok or tok.endswith("llama-server"):  # fmt: skip
                start = i
                break
        if start is None:
            continue
        while start > 0 and (tokens[start - 1] == "-m" or re.match(r"^(.*/)?python[\d.]*$", tokens[start - 1])
                             or _ASSIGN.match(tokens[start - 1])):  # fmt: skip
            start -= 1
        argv = []
        for tok in tokens[start:]:
            if tok in _STOP_TOKENS:
                break
            argv.append(tok)
        key = " ".join(argv)
        if len(argv) >= 2 and key not in seen:
            seen.add(key)
            commands.append(argv)
        if len(commands) >= limit:
            break
    return commands


_AMD = re.compile(r"\b(rocm|hip|mi[123]\d\dx?|radeon|amd gpu|gfx9\d\d)\b", re.IGNORECASE)


def guess_machine(text: str, launch: Launch) -> Machine | None:
    """The NVIDIA GPU an issue names first (data/gpus.yaml), as many as the launch needs; None
    when no catalogued GPU is named or the issue is about AMD/ROCm (other memory and kernels)."""
    if not text or _AMD.search(text):
        return None
    hits = []
    for n, row in enumerate(load("gpus")):
        m = re.search(row["match"], text, re.IGNORECASE)
        if m:
            hits.append((m.start(), n, row))
    if not hits:
        return None
    row = min(hits, key=lambda h: (h[0], h[1]))[2]
    tp = int(launch.get("tensor_parallel_size", 1) or 1)
    pp = int(launch.get("pipeline_parallel_size", 1) or 1)
    dp = int(launch.get("data_parallel_size", 1) or 1)
    return machine_from_mapping(
        {"gpus": [{"name": row["name"], "memory_gib": row["memory_gib"],
                   "compute_capability": row["compute_capability"], "count": tp * pp * dp}]},
        where=f"named in the issue ({row['name']})",
    )  # fmt: skip


@dataclass
class IssueScan:
    repo: str
    number: int
    title: str | None
    commands: list[str] = field(default_factory=list)
    parsed: int = 0
    engine: str | None = None
    model: str | None = None
    gpu: str | None = None
    sized: bool = False              # a known model shape was found for the command
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def worst(self) -> str:
        sev = {f["severity"] for f in self.findings}
        return "block" if "block" in sev else "warn" if "warn" in sev else "pass"


@dataclass
class RetroResult:
    issues_scanned: int = 0
    with_command: int = 0
    parsed: int = 0
    sized: int = 0                   # with a known model shape
    with_gpu: int = 0
    scans: list[IssueScan] = field(default_factory=list)
    # the issues a scan restricted to some repositories covered (None: the whole store)
    covered: list[tuple[str, int]] | None = None

    def counts(self) -> dict[str, Counter]:
        by: dict[str, Counter] = {"block": Counter(), "warn": Counter()}
        for s in self.scans:
            for check in {(f["severity"], f["check"]) for f in s.findings}:
                by[check[0]][check[1]] += 1
        return by

    def to_dict(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "issues_scanned": self.issues_scanned, "with_command": self.with_command,
            "parsed": self.parsed, "with_known_model": self.sized, "with_gpu_named": self.with_gpu,
            "issues_with_block": sum(1 for s in self.scans if s.worst == "block"),
            "issues_with_warn_only": sum(1 for s in self.scans if s.worst == "warn"),
            "block_by_check": dict(counts["block"]), "warn_by_check": dict(counts["warn"]),
            "issues": [s.__dict__ | {"worst": s.worst} for s in self.scans if s.findings],
        }  # fmt: skip


def scan_issue(repo: str, number: int, title: str | None, body: str | None, *, guess_gpu: bool = False) -> IssueScan | None:
    from bugatlas.preflight.api import run_preflight

    commands = extract_commands(body or "")
    if not commands:
        return None
    scan = IssueScan(repo=repo, number=number, title=title, commands=[" ".join(c) for c in commands])
    for argv in commands:
        try:
            launch = parse_command(argv, source=f"{repo}#{number}")
        except BadInputError:
            continue
        if launch.model and launch.model.startswith(("/", "./", "~", "../")):
            # a path on the reporter's machine: keep only its name for shape matching
            launch.settings["model"] = launch.model.rstrip("/").split("/")[-1]
            launch.model = launch.settings["model"]
        scan.parsed += 1
        scan.engine, scan.model = launch.engine, launch.model
        machine = guess_machine(f"{title or ''}\n{body or ''}", launch) if guess_gpu else None
        only = MACHINE_FREE + (GPU_BOUND if machine is not None else [])
        report = run_preflight(launch, machine or Machine(source="unknown"), only=only)
        scan.gpu = machine.gpus[0].name if machine and machine.gpus else None
        known = {(x["check"], x["message"]) for x in scan.findings}
        for f in report.findings:
            if f.severity in ("warn", "block") and (f.check, f.message) not in known:
                scan.findings.append({"check": f.check, "severity": f.severity, "message": f.message,
                                      "command": " ".join(argv)})  # fmt: skip
        scan.sized = scan.sized or report.model is not None
    return scan


def scan_store(store: Any, *, repos: Iterable[str] | None = None, progress: bool = False,
               guess_gpu: bool = False) -> RetroResult:
    """Scan every issue with text in the store (optionally only ``repos``). ``guess_gpu`` also
    runs the GPU-bound checks against the GPU the issue text names (noisy: see docs)."""
    result = RetroResult()
    issues = list(store.iter_issues(repos=list(repos) if repos else None))
    if repos:
        result.covered = [(i.repo, i.number) for i in issues]
    iterator: Iterable[Any] = issues
    if progress:
        from rich.progress import track

        iterator = track(issues, description="scanning issues")
    for issue in iterator:
        result.issues_scanned += 1
        scan = scan_issue(issue.repo, issue.number, issue.title, issue.body, guess_gpu=guess_gpu)
        if scan is None:
            continue
        result.with_command += 1
        if scan.parsed:
            result.parsed += 1
            result.sized += int(scan.sized)
            result.with_gpu += int(scan.gpu is not None)
        result.scans.append(scan)
    return result


def store_labels(store: Any, result: RetroResult, run_id: int | None = None) -> int:
    """Replace the ``preflight-retro`` labels with this scan's findings (a scan of some
    repositories replaces only their issues' labels)."""
    from bugatlas.store.records import Label

    labels = []
    for s in result.scans:
        for severity, check in sorted({(f["severity"], f["check"]) for f in s.findings}):
            evidence = [f["message"] for f in s.findings if f["check"] == check][:3]
            labels.append(Label(repo=s.repo, issue_number=s.number, taxonomy="preflight", dimension=severity,
                                value=check, source_kind="rule", source="preflight-retro",
                                evidence=evidence, run_id=run_id))  # fmt: skip
    return store.replace_labels("preflight", "rule", "preflight-retro", labels, issues=result.covered)
