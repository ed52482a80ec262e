"""Terminal output of a preflight report (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bugatlas.preflight._data import gib
from bugatlas.preflight.findings import Report

STYLE = {"pass": "green", "warn": "yellow", "block": "bold red", "skip": "dim"}
LABEL = {"pass": "PASS", "warn": "WARN", "block": "BLOCK", "skip": "skip"}


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:,}"


def render_report(report: Report, console: Console) -> None:
    launch, machine, model = report.launch, report.machine, report.model
    gpus = machine.get("gpus") or []
    gpu_text = ", ".join(sorted({f"{sum(1 for x in gpus if x['name'] == g['name'])}× {g['name']} "
                                 f"({gib(g['memory_bytes'])}, cc {g.get('compute_capability') or '?'})" for g in gpus})) or "no GPU"
    console.print(f"[bold]preflight[/bold] {launch['engine']} · model {launch.get('model') or '?'}"
                  + (f" (shape: {model['source']}, {_count(model['params'])} params)" if model else ""))
    console.print(f"machine: {machine.get('source')} · {gpu_text}"
                  + (f" · driver {machine['driver']}" if machine.get("driver") else "")
                  + (f" · RAM {gib(machine['cpu_ram_bytes'])}" if machine.get("cpu_ram_bytes") else ""))
    table = Table(show_lines=False, expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("finding", ratio=1)
    for f in report.findings:
        table.add_row(f.check, Text(LABEL[f.severity], style=STYLE[f.severity]), f.message)
    console.print(table)
    for f in report.findings:
        if f.severity not in ("warn", "block"):
            continue
        console.print(Text(f"{LABEL[f.severity]} {f.check} — {f.title}", style=STYLE[f.severity]))
        if f.why:
            console.print(f"  why:   {f.why}")
        if f.classes:
            console.print("  class: " + "; ".join(
                c.label() + (f" (group {c.group})" if c.group else "") for c in f.classes))
        if f.example:
            e = f.example
            console.print(f"  e.g.:  {e['repo']}#{e['number']} {e.get('title') or ''} <{e['url']}>")
        if f.fix:
            console.print(f"  fix:   {f.fix}")
    counts = {s: len(report.by_severity(s)) for s in ("block", "warn", "pass", "skip")}
    console.print(Text(
        f"verdict: {report.verdict.upper()} ({counts['block']} blocking, {counts['warn']} warnings, "
        f"{counts['pass']} passed, {counts['skip']} not applicable) · exit code {report.exit_code}",
        style=STYLE[report.verdict]))


def write_junit(reports: list[tuple[str, Report]], path) -> None:
    """JUnit XML for CI dashboards: one test suite per deployment, one test case per finding;
    blocking findings are failures, checks that did not apply are skipped, warnings pass with
    the warning in system-out (JUnit has no warning state)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="bugatlas preflight")
    for name, report in reports:
        findings = report.findings
        suite = ET.SubElement(
            root, "testsuite", name=name, tests=str(len(findings)),
            failures=str(len(report.by_severity("block"))), skipped=str(len(report.by_severity("skip"))),
        )  # fmt: skip
        seen: dict[str, int] = {}
        for f in findings:
            seen[f.check] = seen.get(f.check, 0) + 1
            case = ET.SubElement(suite, "testcase", classname=f"preflight.{f.group}",
                                 name=f.check + (f"[{seen[f.check]}]" if seen[f.check] > 1 else ""))  # fmt: skip
            detail = "\n".join(x for x in (f.message, f"why: {f.why}" if f.why else "", f"fix: {f.fix}" if f.fix else "",
                                           "classes: " + "; ".join(c.label() for c in f.classes) if f.classes else "",
                                           f"example: {f.example['url']}" if f.example else "") if x)  # fmt: skip
            if f.severity == "block":
                ET.SubElement(case, "failure", message=f.message, type="blocking").text = detail
            elif f.severity == "skip":
                ET.SubElement(case, "skipped", message=f.message)
            elif f.severity == "warn":
                ET.SubElement(case, "system-out").text = "WARNING: " + detail
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
