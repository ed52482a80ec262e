"""The Liu et al. 2025 dataset: 929 engine bugs known by URL, with human labels.

Each row becomes a reference issue (no text until collection hydrates it) and human labels
in the ``liu2025`` taxonomy; the row's URL is the label record."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from bugatlas.importers.base import (
    BadRecord,
    Parsed,
    Progress,
    dataset_facts,
    one_line,
    read_csv_rows,
)
from bugatlas.store import Issue, Label, Repository

ISSUE_URL = re.compile(r"^https?://github\.com/([^/\s]+/[^/\s]+)/(?:issues|pull)/(\d+)/?$")


def sniff(path: Path) -> bool:
    if not path.name.endswith((".csv", ".csv.gz")):
        return False
    try:
        header, _ = read_csv_rows(path)
    except Exception:
        return False
    return set(dataset_facts()["liu2025"]["required_columns"]) <= set(header)


def parse_file(path: Path, progress: Progress | None = None) -> Iterator[Parsed]:
    facts = dataset_facts()["liu2025"]
    header, rows = read_csv_rows(path)
    missing = [c for c in facts["required_columns"] if c not in header]
    out = Parsed()
    if missing:
        out.bad.append(BadRecord(str(path), "line 1", f"missing column(s) {', '.join(missing)}"))
        yield out
        return
    sep = facts["multi_value_separator"]
    displays = {k.lower(): v for k, v in facts["repositories"].items()}
    seen_repos: dict[str, str] = {}
    for i, (loc, row) in enumerate(rows, 1):
        if progress:
            progress(i, len(rows))
        out.records += 1
        if None in row or None in row.values():  # csv.DictReader's marks of too many / too few fields
            fields = len(header) + len(row.get(None) or []) - sum(v is None for v in row.values())
            out.bad.append(BadRecord(str(path), loc, f"expected {len(header)} fields, got {fields}"))
            continue
        url = (row.get("URL") or "").strip()
        m = ISSUE_URL.match(url)
        if not m:
            shown = url if len(url) <= 100 else url[:100] + "…"
            out.bad.append(BadRecord(str(path), loc, f"column URL: not a GitHub issue link: {shown!r}"))
            continue
        repo, number = m.group(1).lower(), int(m.group(2))
        empty = [c for c in ("Symptom(s)", "Root Cause(s)") if not (row.get(c) or "").strip()]
        if empty:
            out.bad.append(BadRecord(str(path), loc, f"column {empty[0]!r} is empty"))
            continue
        try:
            issue = Issue(repo=repo, number=number, html_url=url, is_reference=True, source="import:liu2025")
        except ValidationError as exc:
            out.bad.append(BadRecord(str(path), loc, f"column URL: {one_line(exc)}"))
            continue
        out.issues.append(issue)
        seen_repos[repo] = displays.get(repo) or row["repo"].strip()
        for column, dimension in facts["columns"].items():
            values = []
            for v in (row.get(column) or "").split(sep):
                if v.strip() and v.strip() not in values:  # "Operators@@Operators" is one component
                    values.append(v.strip())
            out.labels.extend(
                Label(repo=repo, issue_number=number, taxonomy=facts["taxonomy"], dimension=dimension,
                      value=v, source_kind="human", source=facts["source"], record=url)
                for v in values
            )  # fmt: skip
    out.repositories = [Repository(full_name=r, display=d, kind=facts["kind"]) for r, d in seen_repos.items()]
    yield out
