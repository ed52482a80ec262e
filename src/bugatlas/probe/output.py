"""Render a probe report: a rich table for people, JSON and JUnit XML for CI pipelines."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bugatlas.probe.runner import CheckResult, ProbeReport

STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "error": "magenta"}


def evidence_line(r: CheckResult, width: int = 110) -> str:
    if r.status == "pass" and r.metrics:
        m = r.metrics
        keys = ("latency_p50_s", "latency_p95_s", "ttft_p50_s", "ttft_p95_s", "tokens_per_s")
        return r.message.replace("\n", "\\n") + " | " + ", ".join(f"{k}={m.get(k)}" for k in keys if k in m)
    extra = ""
    for key in ("text", "found", "problems", "expected", "got", "first", "other", "status", "error_message",
                "afterwards", "failures"):  # fmt: skip
        if key in r.evidence and r.evidence[key] not in (None, "", []):
            val = r.evidence[key]
            s = val if isinstance(val, str) else orjson.dumps(val, default=str).decode()
            if s.rstrip("…")[:60] in r.message or (key == "status" and f"HTTP {s}" in r.message):
                continue  # the message already says it
            extra += f" | {key}: {s}"
            if len(extra) > width:
                break
    line = (r.message + extra).replace("\r", "\\r").replace("\n", "\\n")  # one row per check
    return line if len(line) <= 2 * width else line[: 2 * width - 1] + "…"


def render_table(report: ProbeReport, console: Console) -> None:
    title = (f"probe {report.suite} · {report.base_url} · model {report.model} · "
             f"{report.server.get('engine') or 'engine unknown'}")  # fmt: skip
    table = Table(title=title, title_justify="left", show_lines=False, expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("liu2025 symptom")
    table.add_column("s", justify="right", no_wrap=True)
    table.add_column("evidence / reason", ratio=1)
    for r in report.results:
        symptom = (r.symptom or "") + (f" / {r.unexpected_output}" if r.unexpected_output else "")
        table.add_row(r.id, f"[{STYLE[r.status]}]{r.status.upper()}[/]", symptom, f"{r.duration_s:.2f}",
                      evidence_line(r))  # fmt: skip
    console.print(table)
    c = report.counts()
    console.print(f"{c['pass']} passed, [red]{c['fail']} failed[/], [yellow]{c['skip']} skipped[/]"
                  + (f", [magenta]{c['error']} probe errors[/]" if c["error"] else "")
                  + f" · {report.requests} requests in {report.duration_s:.1f}s")  # fmt: skip


def report_json(report: ProbeReport) -> dict[str, Any]:
    return report.to_dict()


def write_junit(report: ProbeReport, path: str | Path) -> Path:
    """JUnit XML: one testcase per check; failures carry the symptom, message and evidence."""
    c = report.counts()
    suite = ET.Element("testsuite", {
        "name": f"bugatlas-probe.{report.suite}", "tests": str(len(report.results)),
        "failures": str(c["fail"]), "errors": str(c["error"]), "skipped": str(c["skip"]),
        "time": f"{report.duration_s:.3f}", "timestamp": report.started_at,
    })  # fmt: skip
    props = ET.SubElement(suite, "properties")
    for k, v in (("base_url", report.base_url), ("model", report.model or ""),
                 ("engine", str(report.server.get("engine") or "")), ("taxonomy", report.taxonomy)):  # fmt: skip
        ET.SubElement(props, "property", {"name": k, "value": v})
    for r in report.results:
        case = ET.SubElement(suite, "testcase", {"classname": f"probe.{r.oracle}", "name": r.id,
                                                 "time": f"{r.duration_s:.3f}"})  # fmt: skip
        detail = orjson.dumps(r.evidence, option=orjson.OPT_INDENT_2, default=str).decode()
        if r.status == "fail":
            el = ET.SubElement(case, "failure", {
                "message": r.message,
                "type": r.symptom + (f" / {r.unexpected_output}" if r.unexpected_output else ""),
            })  # fmt: skip
            el.text = detail
        elif r.status == "error":
            el = ET.SubElement(case, "error", {"message": r.message})
        elif r.status == "skip":
            ET.SubElement(case, "skipped", {"message": r.message})
        else:
            out = ET.SubElement(case, "system-out")
            out.text = r.message + "\n" + detail
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path = Path(path)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
