"""Typed records that cross the store's interface.

Every stage builds these and hands them to :class:`bugatlas.store.Store`; the store never
sees ad-hoc dicts, so a malformed record fails where it is built, with its name.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


def normalize_repo(full_name: str) -> str:
    """GitHub resolves owner/name case-insensitively; the store keys on the lower-case form."""
    full_name = full_name.strip().strip("/")
    if full_name.count("/") != 1 or not all(full_name.split("/")):
        raise ValueError(f"repository must be OWNER/NAME, got {full_name!r}")
    return full_name.lower()


RepoName = Annotated[str, AfterValidator(normalize_repo)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Issue(_Record):
    repo: RepoName
    number: int = Field(gt=0, lt=2**63)  # SQLite's INTEGER is 64-bit signed
    title: str | None = None
    body: str | None = None
    state: str | None = None
    labels: list[str] = Field(default_factory=list)
    author: str | None = None
    author_association: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    closed_at: str | None = None
    comments_count: int | None = None
    reactions: dict[str, Any] | None = None
    is_pull_request: bool = False
    html_url: str | None = None
    is_reference: bool = False
    source: str | None = None
    raw: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.repo, self.number)

    @property
    def text(self) -> str:
        """Title and body, the only input the classifiers may use."""
        return f"{self.title or ''}\n\n{self.body or ''}"


class Comment(_Record):
    repo: RepoName
    issue_number: int
    comment_id: int
    author: str | None = None
    author_association: str | None = None
    body: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    raw: dict[str, Any] | None = None


class PullRequest(_Record):
    repo: RepoName
    number: int
    title: str | None = None
    state: str | None = None
    merged_at: str | None = None
    additions: int | None = None
    deletions: int | None = None
    changed_files: int | None = None
    html_url: str | None = None
    raw: dict[str, Any] | None = None


class Fix(_Record):
    repo: RepoName
    issue_number: int
    pr_repo: RepoName
    pr_number: int
    relation: str = "closes"


SOURCE_KINDS = ("human", "rule", "model", "llm")


class Label(_Record):
    """One value of one dimension of a taxonomy on one issue, from one source."""

    repo: RepoName
    issue_number: int
    taxonomy: str
    dimension: str
    value: str
    source_kind: str
    source: str
    record: str = ""
    confidence: float | None = None
    evidence: list[str] | None = None
    run_id: int | None = None

    @field_validator("source_kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in SOURCE_KINDS:
            raise ValueError(f"source_kind must be one of {', '.join(SOURCE_KINDS)}, got {v!r}")
        return v


class Repository(_Record):
    full_name: RepoName
    display: str | None = None
    kind: str | None = None
    extra: dict[str, Any] | None = None

    @property
    def owner(self) -> str:
        return self.full_name.split("/")[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/")[1]
