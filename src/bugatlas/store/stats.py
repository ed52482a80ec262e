"""Store-wide counts for `bugatlas stats` (library function; the CLI only prints it)."""

from __future__ import annotations

from typing import Any

from bugatlas.store.store import Store


def store_stats(store: Store, *, top_labels: int = 15) -> dict[str, Any]:
    q = store.conn.execute

    def counts(sql: str) -> dict[str, int]:
        return {str(k): int(n) for k, n in q(sql)}

    # issues with text; pull requests that a REST dump of /issues carries are counted apart
    text_only = "WHERE is_reference = 0 AND is_pull_request = 0"
    return {
        "db_path": str(store.path),
        "schema": store.schema_version,
        "issues": int(q(f"SELECT COUNT(*) FROM issues {text_only}").fetchone()[0]),
        "references": int(q("SELECT COUNT(*) FROM issues WHERE is_reference = 1").fetchone()[0]),
        "pull_requests_among_issues": int(
            q("SELECT COUNT(*) FROM issues WHERE is_reference = 0 AND is_pull_request = 1").fetchone()[0]),
        "labels": int(q("SELECT COUNT(*) FROM labels").fetchone()[0]),
        "comments": int(q("SELECT COUNT(*) FROM comments").fetchone()[0]),
        "pull_requests": int(q("SELECT COUNT(*) FROM pull_requests").fetchone()[0]),
        "by_repository": counts(
            f"SELECT repo, COUNT(*) FROM issues {text_only} GROUP BY repo ORDER BY COUNT(*) DESC, repo"
        ),
        "references_by_repository": counts(
            "SELECT repo, COUNT(*) FROM issues WHERE is_reference = 1 GROUP BY repo ORDER BY COUNT(*) DESC, repo"
        ),
        "by_state": counts(
            f"SELECT COALESCE(state, 'unknown'), COUNT(*) FROM issues {text_only} GROUP BY 1 ORDER BY 2 DESC"
        ),
        "by_year": counts(
            f"SELECT COALESCE(substr(created_at, 1, 4), 'unknown'), COUNT(*) FROM issues {text_only} "
            "GROUP BY 1 ORDER BY 1"
        ),
        "by_maintainer_label": counts(
            f"SELECT j.value, COUNT(*) FROM issues, json_each(issues.labels) j {text_only} "
            f"GROUP BY j.value ORDER BY 2 DESC, 1 LIMIT {int(top_labels)}"
        ),
        "label_sources": [
            {"taxonomy": t, "source_kind": k, "source": s, "issues": i, "records": r, "labels": n}
            for t, k, s, i, r, n in q(
                """SELECT taxonomy, source_kind, source, COUNT(DISTINCT repo || '#' || issue_number),
                          COUNT(DISTINCT CASE WHEN record != '' THEN record
                                              ELSE repo || '#' || issue_number END),
                          COUNT(*)
                   FROM labels GROUP BY taxonomy, source_kind, source ORDER BY 1, 2, 3"""
            )
        ],
    }
