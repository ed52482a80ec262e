"""GitHub issues as the REST API returns them, and the flattened variant of the shared
corpus (labels as plain names, a ``repo`` field). Both may come as a JSON array, JSON
Lines, or either gzipped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bugatlas.importers.base import (
    CHUNK,
    BadRecord,
    Parsed,
    Progress,
    dataset_facts,
    first_json_record,
    one_line,
    read_json_records,
)
from bugatlas.store import Issue, Repository

_REPO_FROM_URL = re.compile(r"(?:api\.github\.com/repos/|github\.com/)([^/\s]+/[^/\s]+?)(?:/|$)")


def sniff(path: Path) -> bool:
    rec = first_json_record(path)
    return bool(rec) and "number" in rec and ("title" in rec or "html_url" in rec) and "SYMPTOM" not in rec


def _repo_of(obj: dict[str, Any]) -> str:
    if isinstance(obj.get("repo"), str):
        return obj["repo"]
    for key in ("repository_url", "html_url", "url"):
        m = _REPO_FROM_URL.search(obj.get(key) or "")
        if m:
            return m.group(1)
    if isinstance(obj.get("repository"), dict) and obj["repository"].get("full_name"):
        return obj["repository"]["full_name"]
    raise ValueError("no repository: needs 'repo', 'repository_url' or 'html_url'")


def _label_names(labels: Any) -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, list):
        raise ValueError("field 'labels': expected a list")
    names = []
    for label in labels:
        name = label.get("name") if isinstance(label, dict) else label
        if not isinstance(name, str):
            raise ValueError("field 'labels': each label must be a name or an object with 'name'")
        names.append(name)
    return names


def parse_github_issue(obj: dict[str, Any], *, source: str = "import:github") -> Issue:
    """One GitHub issue object (REST shape or the flattened corpus shape) as a store Issue."""
    user = obj.get("user")
    author = user.get("login") if isinstance(user, dict) else obj.get("author")
    comments = obj.get("comments")
    return Issue(
        repo=_repo_of(obj),
        number=obj["number"] if "number" in obj else _missing("number"),
        title=obj.get("title"),
        body=obj.get("body"),
        state=obj.get("state"),
        labels=_label_names(obj.get("labels")),
        author=author,
        author_association=obj.get("author_association"),
        created_at=obj.get("created_at"),
        updated_at=obj.get("updated_at"),
        closed_at=obj.get("closed_at"),
        comments_count=comments if isinstance(comments, int) else None,
        reactions=obj.get("reactions"),
        is_pull_request=bool(obj.get("pull_request")),
        html_url=obj.get("html_url"),
        source=source,
        raw=obj,
    )


def _missing(name: str):
    raise ValueError(f"missing field {name!r}")


def parse_file(path: Path, progress: Progress | None = None) -> Iterator[Parsed]:
    facts = dataset_facts()["serving-issues"]
    chunk = Parsed()
    seen_repos: set[str] = set()
    for loc, rec in read_json_records(path, progress):
        chunk.records += 1  # every record read, bad ones too: records = imported + skipped
        if isinstance(rec, BadRecord):
            chunk.bad.append(rec)
        else:
            try:
                issue = parse_github_issue(rec)
            except (ValueError, TypeError, ValidationError) as exc:
                chunk.bad.append(BadRecord(str(path), loc, one_line(exc)))
            else:
                chunk.issues.append(issue)
                if issue.repo not in seen_repos:
                    seen_repos.add(issue.repo)
                    display = facts["repositories"].get(issue.repo)
                    chunk.repositories.append(Repository(
                        full_name=issue.repo, display=display, kind=facts["kind"] if display else None))
        if len(chunk.issues) + len(chunk.bad) >= CHUNK:
            yield chunk
            chunk = Parsed()
    yield chunk
