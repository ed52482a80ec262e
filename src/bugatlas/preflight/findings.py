"""Findings, the report, exit codes, and the link from a finding to the failure taxonomies.

Exit codes (chosen apart from the CLI's own 1 = error and 2 = bad input, so a CI step can tell
"the deployment will fail" from "preflight could not run"):

    0   every check passed (or did not apply)
    10  warnings only
    20  at least one blocking finding
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from bugatlas.preflight._data import load

Severity = Literal["pass", "warn", "block", "skip"]
SEVERITY_ORDER = {"skip": 0, "pass": 1, "warn": 2, "block": 3}
EXIT_PASS, EXIT_WARN, EXIT_BLOCK = 0, 10, 20


@dataclass
class FailureClass:
    taxonomy: str
    dimension: str
    value: str
    definition: str | None = None
    group: str | None = None          # the top-level category, when the codebook has one
    in_codebook: bool | None = None   # None: that codebook is not installed
    artifact: str | None = None       # the same class as its published dataset spells it

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def label(self) -> str:
        return f"{self.taxonomy}: {self.value}"


@dataclass
class Finding:
    check: str
    severity: Severity
    message: str                                   # what was found, with the numbers
    numbers: dict[str, Any] = field(default_factory=dict)
    why: str = ""                                  # why the launch fails (or degrades)
    fix: str = ""
    classes: list[FailureClass] = field(default_factory=list)
    example: dict[str, Any] | None = None          # an issue in the store showing this failure

    @property
    def title(self) -> str:
        return load("checks")[self.check]["title"]

    @property
    def group(self) -> str:
        return load("checks")[self.check]["group"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check, "group": self.group, "title": self.title,
            "severity": self.severity, "message": self.message, "numbers": self.numbers,
            "why": self.why, "fix": self.fix,
            "failure_classes": [c.to_dict() for c in self.classes], "example_issue": self.example,
        }  # fmt: skip


@dataclass
class Report:
    findings: list[Finding]
    launch: dict[str, Any]
    machine: dict[str, Any]
    model: dict[str, Any] | None

    @property
    def verdict(self) -> Severity:
        worst = max((SEVERITY_ORDER[f.severity] for f in self.findings), default=1)
        return "block" if worst == 3 else "warn" if worst == 2 else "pass"

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_PASS, "warn": EXIT_WARN, "block": EXIT_BLOCK}[self.verdict]

    def by_severity(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def to_dict(self) -> dict[str, Any]:
        counts = {s: len(self.by_severity(s)) for s in ("block", "warn", "pass", "skip")}  # type: ignore[arg-type]
        return {
            "verdict": self.verdict, "exit_code": self.exit_code, "counts": counts,
            "launch": self.launch, "machine": self.machine, "model": self.model,
            "findings": [f.to_dict() for f in self.findings],
        }  # fmt: skip


# -- taxonomy ------------------------------------------------------------------------------------
def failure_classes(check: str) -> list[FailureClass]:
    """The check's failure classes, resolved against the installed codebooks (definition and
    group) when that codebook exists."""
    out = []
    for spec in load("checks")[check].get("classes", []):
        fc = FailureClass(spec["taxonomy"], spec["dimension"], spec["value"], artifact=spec.get("artifact"))
        _resolve(fc)
        out.append(fc)
    return out


@cache
def _codebook(name: str) -> Any:
    """The installed codebook, or None; cached here because loading one parses and validates
    its YAML (about half a second) and every finding asks."""
    try:
        from bugatlas.taxonomy import load_codebook
    except ImportError:
        return None
    try:
        return load_codebook(name)
    except Exception:  # noqa: BLE001 - a codebook not (yet) installed: keep the published name
        return None


def _resolve(fc: FailureClass) -> None:
    cb = _codebook(fc.taxonomy)
    if cb is None:
        return
    try:
        category = cb.category(fc.dimension, fc.value)
    except KeyError:
        category = None
    fc.in_codebook = category is not None
    if category is None:
        return
    fc.definition = category.definition
    if category.parent:
        try:
            fc.group = cb.path(fc.dimension, category.id)[0].name
        except Exception:  # noqa: BLE001
            fc.group = None


# -- example issues ----------------------------------------------------------------------------
_TEXT_CACHE: dict[tuple[str, int], list[tuple[str, int, str, str | None, str, str]]] = {}


def _issue_texts(store: Any) -> list[tuple[str, int, str, str | None, str, str]]:
    """(repo, number, title, url, lower title, lower body) of the store's issues with text,
    read once per store (a few MB for thousands of issues): phrase search then runs in memory
    instead of one SQL scan per phrase."""
    key = (str(store.path), store.count_issues())
    if key not in _TEXT_CACHE:
        rows = store.conn.execute(
            "SELECT repo, number, coalesce(title, ''), html_url, coalesce(body, '') FROM issues "
            "WHERE is_reference = 0 AND is_pull_request = 0"
        ).fetchall()
        _TEXT_CACHE.clear()
        _TEXT_CACHE[key] = [(r[0], r[1], r[2], r[3], r[2].lower(), r[4].lower()) for r in rows]
    return _TEXT_CACHE[key]


def find_example(store: Any, check: str, classes: list[FailureClass]) -> dict[str, Any] | None:
    """An issue from the study store that shows this failure.

    First choice: an issue with text whose title or body contains the error phrases this
    failure prints (``checks.yaml``), scored 3 per phrase in the title and 1 per phrase in the
    body, plus 2 when the issue carries one of the check's failure-class labels (from the
    classify or annotate stages). Fallback: an issue the published datasets label with the
    failure class (a reference, known by its link).
    """
    phrases = [p.lower() for p in load("checks")[check].get("phrases", [])]
    conn = store.conn
    if phrases:
        scored = []
        for repo, number, title, url, low_title, low_body in _issue_texts(store):
            score = sum(3 * (p in low_title) + (p in low_body) for p in phrases)
            if score:
                scored.append((score, number, repo, title, url))
        if scored:
            scored.sort(reverse=True)
            top = scored[:40]
            labelled = _labelled_keys(conn, classes, [(r[2], r[1]) for r in top])
            best = max(top, key=lambda r: (r[0] + (2 if (r[2], r[1]) in labelled else 0), r[1]))
            score, number, repo, title, url = best
            return {
                "repo": repo, "number": number, "title": title,
                "url": url or f"https://github.com/{repo}/issues/{number}",
                "via": "error phrases" + (" and label" if (repo, number) in labelled else ""),
            }  # fmt: skip
    for fc in classes:
        for taxonomy, dimension, value in _label_keys(fc):
            row = conn.execute(
                "SELECT l.repo, l.issue_number, i.title, i.html_url FROM labels l "
                "LEFT JOIN issues i ON i.repo = l.repo AND i.number = l.issue_number "
                "WHERE l.taxonomy = ? AND l.dimension = ? AND l.value = ? "
                "ORDER BY (i.is_reference = 0) DESC, l.issue_number DESC LIMIT 1",
                (taxonomy, dimension, value),
            ).fetchone()
            if row:
                return {
                    "repo": row[0], "number": row[1], "title": row[2],
                    "url": row[3] or f"https://github.com/{row[0]}/issues/{row[1]}",
                    "via": f"label {taxonomy}/{dimension} = {value}",
                }  # fmt: skip
    return None


def _label_keys(fc: FailureClass) -> list[tuple[str, str, str]]:
    """(taxonomy, dimension, value) under which the store may hold this class: the codebook's
    own name, and the published dataset's spelling (yu2026 classes as yu2026-artifact labels)."""
    keys = [(fc.taxonomy, fc.dimension, fc.value)]
    if fc.artifact:
        keys.append((f"{fc.taxonomy}-artifact", fc.dimension, fc.artifact))
    return keys


def _labelled_keys(conn: Any, classes: list[FailureClass], keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
    if not keys or not classes:
        return set()
    found = set()
    for fc in classes:
        for key in _label_keys(fc):
            for repo, number in conn.execute(
                "SELECT repo, issue_number FROM labels WHERE taxonomy = ? AND dimension = ? AND value = ?", key
            ):
                found.add((repo, number))
    return found & set(keys)
