"""Yu et al.'s Open-LLM-Failures records: one JSON file per model repository, each record an
issue link with SYMPTOM / ROOT CAUSE ("Category - Subcategory - Leaf"), STAGE and model.

Labels go into the ``yu2026-artifact`` taxonomy (the files' own vocabulary); the record id is
``<folder>/<file>#<number>`` because a few links appear in more than one record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from bugatlas.importers.base import (
    BadRecord,
    Parsed,
    Progress,
    dataset_facts,
    first_json_record,
    one_line,
    read_json_records,
)
from bugatlas.importers.liu2025 import ISSUE_URL
from bugatlas.store import Issue, Label, Repository


def sniff(path: Path) -> bool:
    rec = first_json_record(path)
    return bool(rec) and "SYMPTOM" in rec and "link" in rec


def parse_file(path: Path, progress: Progress | None = None) -> Iterator[Parsed]:
    facts = dataset_facts()["open-llm-failures"]
    series = facts["series_by_owner"]
    out = Parsed()
    records = list(read_json_records(path))
    seen_repos: set[str] = set()
    for i, (loc, rec) in enumerate(records, 1):
        if progress:
            progress(i, len(records))
        out.records += 1  # every record read, bad ones too
        if isinstance(rec, BadRecord):
            out.bad.append(rec)
            continue
        missing = [f for f in facts["required_fields"] if not str(rec.get(f) or "").strip()]
        if missing:
            out.bad.append(BadRecord(str(path), loc, f"missing field {missing[0]!r}"))
            continue
        m = ISSUE_URL.match(str(rec["link"]).strip())
        if not m:
            out.bad.append(BadRecord(str(path), loc, f"field 'link': not a GitHub issue link: {rec['link']!r}"))
            continue
        repo, number = m.group(1).lower(), int(m.group(2))
        record_id = f"{path.parent.name}/{path.stem}#{rec.get('number', i)}"
        state = rec.get("status") if rec.get("status") in ("open", "closed") else None
        try:
            issue = Issue(repo=repo, number=number, html_url=rec["link"], state=state,
                          is_reference=True, source="import:open-llm-failures")  # fmt: skip
        except ValidationError as exc:
            out.bad.append(BadRecord(str(path), loc, f"field 'link': {one_line(exc)}"))
            continue
        out.issues.append(issue)
        seen_repos.add(repo)
        out.labels.extend(
            Label(repo=repo, issue_number=number, taxonomy=facts["taxonomy"], dimension=dim,
                  value=str(rec[field]).strip(), source_kind="human", source=facts["source"],
                  record=record_id)
            for field, dim in facts["columns"].items()
            if str(rec.get(field) or "").strip()
        )  # fmt: skip
    out.repositories = [
        Repository(full_name=r, display=series.get(r.split("/")[0]), kind=facts["kind"]) for r in sorted(seen_repos)
    ]
    yield out
