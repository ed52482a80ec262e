"""The study store (embedded SQLite) and the records that cross its interface."""

from bugatlas.store.records import (
    Comment,
    Fix,
    Issue,
    Label,
    PullRequest,
    Repository,
    normalize_repo,
)
from bugatlas.store.store import Store, default_db_path, now_iso

__all__ = [
    "Comment", "Fix", "Issue", "Label", "PullRequest", "Repository", "Store",
    "default_db_path", "normalize_repo", "now_iso",
]  # fmt: skip
