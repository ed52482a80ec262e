"""Turning GraphQL answers into store records, and writing one group of answers.

A *group* is the answers that together complete a set of issues: an issues page (or a
hydrate batch) and the follow-up comment pages of its issues with more than 100 comments.
The live crawl and ``--replay`` both write groups through :func:`apply_group`, so a replay
rebuilds exactly what the crawl stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from bugatlas.store import Comment, Fix, Issue, Store
from bugatlas.store.records import PullRequest
from bugatlas.store.store import now_iso

SOURCE = "collect:github"
FIX_RELATIONS = ("closes", "cross-reference")
_REACTIONS = (("THUMBS_UP", "+1"), ("THUMBS_DOWN", "-1"), ("LAUGH", "laugh"), ("HOORAY", "hooray"),
              ("CONFUSED", "confused"), ("HEART", "heart"), ("ROCKET", "rocket"), ("EYES", "eyes"))  # fmt: skip


def _login(actor: Any) -> str | None:
    return actor.get("login") if isinstance(actor, dict) else None


def _lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else None


def reactions_rest(repo: str, number: int, url: str | None, groups: Any) -> dict[str, Any] | None:
    """GraphQL reactionGroups in the REST API's shape (what importers and analyses read)."""
    if groups is None:
        return None
    counts = {g["content"]: int((g.get("reactors") or {}).get("totalCount") or 0) for g in groups}
    out: dict[str, Any] = {}
    if url and urlsplit(url).hostname == "github.com":
        out["url"] = f"https://api.github.com/repos/{repo}/issues/{number}/reactions"
    out["total_count"] = sum(counts.values())
    for content, rest in _REACTIONS:
        out[rest] = counts.get(content, 0)
    return out


def comment_record(repo: str, number: int, node: dict[str, Any]) -> Comment:
    return Comment(repo=repo, issue_number=number, comment_id=node["databaseId"],
                   author=_login(node.get("author")), author_association=node.get("authorAssociation"),
                   body=node.get("body"), created_at=node.get("createdAt"),
                   updated_at=node.get("updatedAt"), raw={"url": node["url"]} if node.get("url") else None)  # fmt: skip


def pr_record(node: dict[str, Any]) -> PullRequest:
    return PullRequest(repo=node["repository"]["nameWithOwner"], number=node["number"],
                       title=node.get("title"), state=_lower(node.get("state")),
                       merged_at=node.get("mergedAt"), additions=node.get("additions"),
                       deletions=node.get("deletions"), changed_files=node.get("changedFiles"),
                       html_url=node.get("url"))  # fmt: skip


def issue_records(repo: str, node: dict[str, Any], extra_comments: Sequence[dict[str, Any]] = ()):
    """(Issue, comments, pull requests, fixes) from one GraphQL Issue node."""
    number = node["number"]
    comments_conn = node.get("comments") or {}
    comment_nodes = list(comments_conn.get("nodes") or []) + list(extra_comments)
    seen: set[int] = set()
    comments = []
    for c in comment_nodes:
        if c and c.get("databaseId") is not None and c["databaseId"] not in seen:
            seen.add(c["databaseId"])
            comments.append(comment_record(repo, number, c))
    prs: dict[tuple[str, int], PullRequest] = {}
    relation: dict[tuple[str, int], str] = {}

    def link(pr_node: Any, rel: str) -> None:
        if not isinstance(pr_node, dict) or pr_node.get("number") is None or not pr_node.get("repository"):
            return
        pr = pr_record(pr_node)
        prs[(pr.repo, pr.number)] = pr
        if relation.get((pr.repo, pr.number)) != "closes":
            relation[(pr.repo, pr.number)] = rel

    for pr_node in (node.get("closedByPullRequestsReferences") or {}).get("nodes") or []:
        link(pr_node, "closes")
    for item in (node.get("timelineItems") or {}).get("nodes") or []:
        if not item:
            continue
        if item.get("__typename") == "ClosedEvent":
            closer = item.get("closer")
            if closer and closer.get("__typename") == "PullRequest":
                link(closer, "closes")
        elif item.get("__typename") == "CrossReferencedEvent":
            source = item.get("source")
            if source and source.get("__typename") == "PullRequest":
                link(source, "closes" if item.get("willCloseTarget") else "cross-reference")
    fixes = [Fix(repo=repo, issue_number=number, pr_repo=r, pr_number=n, relation=rel)
             for (r, n), rel in sorted(relation.items())]  # fmt: skip
    raw = {k: v for k, v in node.items() if k not in ("comments", "title", "body")}
    raw["comments"] = {"totalCount": comments_conn.get("totalCount")}
    issue = Issue(
        repo=repo, number=number, title=node.get("title"), body=node.get("body"),
        state=_lower(node.get("state")),
        labels=[l["name"] for l in (node.get("labels") or {}).get("nodes") or [] if l],
        author=_login(node.get("author")), author_association=node.get("authorAssociation"),
        created_at=node.get("createdAt"), updated_at=node.get("updatedAt"),
        closed_at=node.get("closedAt"), comments_count=comments_conn.get("totalCount"),
        reactions=reactions_rest(repo, number, node.get("url"), node.get("reactionGroups")),
        is_pull_request=False, html_url=node.get("url"), is_reference=False, source=SOURCE,
        raw=raw,
    )  # fmt: skip
    return issue, comments, list(prs.values()), fixes


def continuation_comments(responses: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Issue number -> the comment nodes of follow-up pages, from MoreComments answers."""
    out: dict[int, list[dict[str, Any]]] = {}
    for resp in responses:
        variables = (resp["request"] or {}).get("variables") or {}
        repo_data = ((resp["response"] or {}).get("data") or {}).get("repository") or {}
        for alias, value in repo_data.items():
            if not alias.startswith("c") or not value:
                continue
            number = variables.get(f"n{alias[1:]}")
            nodes = (value.get("comments") or {}).get("nodes") or []
            out.setdefault(number, []).extend(n for n in nodes if n)
    return out


def group_issue_nodes(kind: str, head: dict[str, Any]) -> list[dict[str, Any]]:
    data = ((head["response"] or {}).get("data") or {}).get("repository") or {}
    if kind == "issues":
        return [n for n in (data.get("issues") or {}).get("nodes") or [] if n]
    # hydrate: aliases i0..iN; a missing issue comes back null (with an error beside it)
    return [data[k] for k in sorted(data, key=lambda a: int(a[1:])) if k.startswith("i") and data[k]]


def apply_group(store: Store, repo: str, kind: str, context: dict[str, Any],
                responses: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Write one group (``responses``: dicts with ``request`` and ``response``; the first is the
    head) into ``store``. Call inside a transaction. Returns counts written."""
    head, follow = responses[0], responses[1:]
    nodes = group_issue_nodes(kind, head)
    until = context.get("until")
    if until:
        nodes = [n for n in nodes if (n.get("updatedAt") or "") <= until]
    extra = continuation_comments(follow)
    issues, comments, prs, fixes = [], [], [], []
    for node in nodes:
        issue, cs, ps, fs = issue_records(repo, node, extra.get(node["number"], ()))
        issues.append(issue)
        comments += cs
        prs += ps
        fixes += fs
    conn = store.conn
    with store.transaction():
        store.upsert_issues(issues)
        keys = [(repo, i.number) for i in issues]
        # The comment list and fixes fetched are complete: drop what was deleted upstream.
        conn.executemany("DELETE FROM comments WHERE repo = ? AND issue_number = ?", keys)
        conn.executemany(
            f"DELETE FROM issue_fixes WHERE repo = ? AND issue_number = ? AND relation IN "
            f"({', '.join('?' * len(FIX_RELATIONS))})", [k + FIX_RELATIONS for k in keys])  # fmt: skip
        store.upsert_comments(comments)
        store.upsert_pull_requests(prs)
        store.add_fixes(fixes)
        if kind == "issues":
            newest = max((i.updated_at or "" for i in issues), default="") or None
            conn.execute(
                """INSERT INTO collect_state (repo, filter_key, cursor, cursor_since, watermark,
                                              issues, requests, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (repo, filter_key) DO UPDATE SET
                     cursor = excluded.cursor, cursor_since = excluded.cursor_since,
                     watermark = CASE WHEN watermark IS NULL OR excluded.watermark > watermark
                                      THEN excluded.watermark ELSE watermark END,
                     issues = issues + excluded.issues, requests = requests + excluded.requests,
                     updated_at = excluded.updated_at""",
                (repo, context["filter_key"], context.get("cursor"), context.get("since"), newest,
                 len(issues), len(responses), now_iso()),
            )  # fmt: skip
    return {"issues": len(issues), "comments": len(comments), "pull_requests": len(prs),
            "fixes": len(fixes)}  # fmt: skip


def archive_group(store: Store, run_id: int | None, repo: str, kind: str, context: dict[str, Any],
                  responses: Sequence[dict[str, Any]]) -> None:
    """Keep a group's raw answers (query + variables + body; never headers). In a transaction."""
    grp = None
    for i, r in enumerate(responses):
        cur = store.conn.execute(
            """INSERT INTO collect_archive (run_id, grp, repo, kind, context, method, url, request,
                                            status, response, received_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (run_id, grp, repo, kind if i == 0 else "comments",
             orjson.dumps(context).decode() if i == 0 else None, r["method"], r["url"],
             orjson.dumps(r["request"]).decode() if r["request"] is not None else None,
             r["status"], orjson.dumps(r["response"]).decode(), r.get("received_at") or now_iso()),
        )  # fmt: skip
        if grp is None:
            grp = cur.lastrowid
            store.conn.execute("UPDATE collect_archive SET grp = ? WHERE id = ?", (grp, grp))
