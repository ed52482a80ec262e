"""Collect issues from GitHub: bulk GraphQL, incremental, resumable, rate-limit-aware,
archived and replayable offline. See docs/collect.md.

    from bugatlas import Store
    from bugatlas.collect import collect_repos, hydrate_references, replay_archive
    store = Store("study.db")
    collect_repos(store, ["vllm-project/vllm"], since="2025-01-01", archive=True)
"""

from bugatlas.collect.archive import (
    ReplayResult,
    canonical_dump,
    dump_digest,
    export_archive,
    replay_archive,
)
from bugatlas.collect.client import GitHubClient, GitHubError, NotFoundError, tokens_from_env
from bugatlas.collect.collector import (
    CollectResult,
    RepoResult,
    collect_repos,
    collect_status,
    hydrate_references,
    reference_numbers,
)

__all__ = ["CollectResult", "GitHubClient", "GitHubError", "NotFoundError", "RepoResult",
           "ReplayResult", "canonical_dump", "collect_repos", "collect_status", "dump_digest", "export_archive", "hydrate_references",
           "reference_numbers", "replay_archive", "tokens_from_env"]  # fmt: skip
