"""A local stand-in for GitHub's GraphQL and REST APIs, for tests, benchmarks and dry runs.

``FakeGitHub`` serves a set of issues (e.g. the shared corpus) over real HTTP on 127.0.0.1:
GraphQL is executed for real by ``graphql-core`` against a subset of GitHub's schema, and the
REST endpoints a per-issue crawler uses are served too. Like GitHub it paginates, charges
GraphQL points by GitHub's cost formula, answers ``X-RateLimit-*`` headers, refuses requests
once a token's budget is spent, and can inject secondary-limit answers (403/429 with
``Retry-After``), 502/503/504 errors and timeouts. It counts what clients did wrong (requests
beyond the announced limit, retries before ``Retry-After``), so a test can assert a collector
behaves. Comments and fixing pull requests the data lacks are generated deterministically.

    from bugatlas.collect.testing import FakeGitHub, load_corpus
    with FakeGitHub(load_corpus(path), tokens=["t1"]) as gh:
        collect_repos(store, ["vllm-project/vllm"], base_url=gh.url, tokens=["t1"])

Needs the ``graphql-core`` package (in the ``test`` extra).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson

SDL = """
scalar DateTime
scalar URI

type Query {
  repository(owner: String!, name: String!): Repository
  rateLimit: RateLimit
  viewer: User!
}

type RateLimit { limit: Int!  cost: Int!  remaining: Int!  resetAt: DateTime!  used: Int! }

type Repository {
  nameWithOwner: String!
  issues(first: Int, after: String, last: Int, before: String, orderBy: IssueOrder,
         filterBy: IssueFilters, states: [IssueState!], labels: [String!]): IssueConnection!
  issue(number: Int!): Issue
  pullRequest(number: Int!): PullRequest
}

input IssueOrder { field: IssueOrderField!  direction: OrderDirection! }
enum IssueOrderField { CREATED_AT UPDATED_AT COMMENTS }
enum OrderDirection { ASC DESC }
input IssueFilters { since: DateTime  states: [IssueState!]  labels: [String!] }
enum IssueState { OPEN CLOSED }
enum IssueStateReason { COMPLETED NOT_PLANNED REOPENED DUPLICATE }
enum CommentAuthorAssociation {
  COLLABORATOR CONTRIBUTOR FIRST_TIMER FIRST_TIME_CONTRIBUTOR MANNEQUIN MEMBER NONE OWNER
}
enum ReactionContent { THUMBS_UP THUMBS_DOWN LAUGH HOORAY CONFUSED HEART ROCKET EYES }
enum PullRequestState { OPEN CLOSED MERGED }
enum IssueTimelineItemsItemType { CROSS_REFERENCED_EVENT CLOSED_EVENT }

type PageInfo { hasNextPage: Boolean!  endCursor: String  hasPreviousPage: Boolean!  startCursor: String }

interface Actor { login: String! }
type User implements Actor { login: String! }
type Bot implements Actor { login: String! }

type Issue {
  id: ID!
  number: Int!
  title: String!
  body: String
  state: IssueState!
  stateReason: IssueStateReason
  url: URI!
  createdAt: DateTime!
  updatedAt: DateTime!
  closedAt: DateTime
  author: Actor
  authorAssociation: CommentAuthorAssociation!
  labels(first: Int, after: String): LabelConnection
  reactionGroups: [ReactionGroup!]
  comments(first: Int, after: String): IssueCommentConnection!
  closedByPullRequestsReferences(first: Int, after: String, includeClosedPrs: Boolean): PullRequestConnection
  timelineItems(first: Int, after: String, itemTypes: [IssueTimelineItemsItemType!]): IssueTimelineItemsConnection!
}

type Label { name: String! }
type IssueConnection { totalCount: Int!  pageInfo: PageInfo!  nodes: [Issue] }
type LabelConnection { totalCount: Int!  pageInfo: PageInfo!  nodes: [Label] }
type ReactionGroup { content: ReactionContent!  reactors: ReactorConnection! }
type ReactorConnection { totalCount: Int! }

type IssueComment {
  id: ID!
  databaseId: Int
  author: Actor
  authorAssociation: CommentAuthorAssociation!
  body: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  url: URI!
}
type IssueCommentConnection { totalCount: Int!  pageInfo: PageInfo!  nodes: [IssueComment] }

type PullRequest {
  id: ID!
  number: Int!
  title: String!
  state: PullRequestState!
  url: URI!
  merged: Boolean!
  mergedAt: DateTime
  createdAt: DateTime!
  additions: Int!
  deletions: Int!
  changedFiles: Int!
  repository: Repository!
}
type PullRequestConnection { totalCount: Int!  pageInfo: PageInfo!  nodes: [PullRequest] }

type Commit { oid: String! }
union ReferencedSubject = Issue | PullRequest
union Closer = Commit | PullRequest
type CrossReferencedEvent { createdAt: DateTime!  willCloseTarget: Boolean!  source: ReferencedSubject! }
type ClosedEvent { createdAt: DateTime!  closer: Closer }
union IssueTimelineItems = CrossReferencedEvent | ClosedEvent
type IssueTimelineItemsConnection { totalCount: Int!  pageInfo: PageInfo!  nodes: [IssueTimelineItems] }
"""

_REACTION_REST = {"THUMBS_UP": "+1", "THUMBS_DOWN": "-1", "LAUGH": "laugh", "HOORAY": "hooray",
                  "CONFUSED": "confused", "HEART": "heart", "ROCKET": "rocket", "EYES": "eyes"}  # fmt: skip
_WORDS = ("cuda kernel tokenizer batch memory model quantization cache scheduler sampling gpu "
          "server request latency config error crash output fix patch build version driver "
          "works tried reproduce logs thanks same here update please merged").split()  # fmt: skip
_LOGINS = [f"user{i}" for i in range(40)] + ["github-actions"]
_ASSOCIATIONS = ["NONE", "NONE", "NONE", "CONTRIBUTOR", "MEMBER", "COLLABORATOR"]


# -- data ------------------------------------------------------------------------------------
def iso_z(value: str | None) -> str | None:
    """'2023-03-10T21:33:07+00:00' -> '2023-03-10T21:33:07Z' (GitHub's own form)."""
    if value is None:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _fmt(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Data:
    """What the fake GitHub holds: repo -> number -> issue dict, and pull requests."""

    issues: dict[str, dict[int, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    prs: dict[str, dict[int, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    lock: threading.RLock = field(default_factory=threading.RLock)
    _clock: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def repo_names(self) -> list[str]:
        return sorted(self.issues)

    def find_repo(self, owner: str, name: str) -> str | None:
        wanted = f"{owner}/{name}".lower()
        return wanted if wanted in self.issues else None

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return _fmt(self._clock)

    def touch(self, repo: str, number: int, *, title: str | None = None, comment: str | None = None,
              state: str | None = None) -> dict[str, Any]:
        """Change an issue as a user would (new title, comment or state); bumps updatedAt."""
        with self.lock:
            issue = self.issues[repo][number]
            now = self._tick()
            if title is not None:
                issue["title"] = title
            if state is not None:
                issue["state"] = state.upper()
                issue["closedAt"] = now if state.upper() == "CLOSED" else None
            if comment is not None:
                cid = max((c["databaseId"] for c in issue["comments"]), default=number * 1000) + 1
                issue["comments"].append(_comment(repo, number, cid, "user1", "NONE", comment, now))
            issue["updatedAt"] = now
            return issue

    def add_issue(self, repo: str, number: int, title: str, body: str = "") -> dict[str, Any]:
        with self.lock:
            now = self._tick()
            issue = _issue(repo, number, title, body, "OPEN", [], None, now, None, "NONE", None)
            issue["updatedAt"] = now
            self.issues[repo][number] = issue
            return issue

    def count(self) -> tuple[int, int]:
        issues = sum(len(v) for v in self.issues.values())
        comments = sum(len(i["comments"]) for v in self.issues.values() for i in v.values())
        return issues, comments


def _issue(repo, number, title, body, state, labels, author, created, closed, assoc, reactions):
    return {
        "id": f"I_{hashlib.sha1(f'{repo}#{number}'.encode()).hexdigest()[:16]}", "repo": repo,
        "number": number, "title": title, "body": body, "state": state, "labels": labels,
        "author": author, "createdAt": created, "updatedAt": created, "closedAt": closed,
        "authorAssociation": assoc, "reactions": reactions or {}, "comments": [],
        "closers": [], "crossrefs": [],
        "url": f"https://github.com/{repo}/issues/{number}",
    }  # fmt: skip


def _comment(repo, number, cid, login, assoc, body, created):
    return {"id": f"IC_{cid}", "databaseId": cid, "author": {"__typename": "User", "login": login},
            "authorAssociation": assoc, "body": body, "createdAt": created, "updatedAt": created,
            "url": f"https://github.com/{repo}/issues/{number}#issuecomment-{cid}"}  # fmt: skip


def load_corpus(
    records: str | Path | Iterable[dict[str, Any]],
    *,
    repos: Iterable[str] | None = None,
    limit_per_repo: int | None = None,
    max_comments: int | None = None,
    fix_rate: float = 0.45,
    crossref_rate: float = 0.2,
    seed: int = 7,
) -> Data:
    """Build server data from flattened corpus records (a path to JSONL[.gz] or dicts).

    Each issue gets exactly its ``comments`` count of generated comments (capped by
    ``max_comments``), and closed issues get fixing pull requests (``fix_rate``) and
    cross-referencing ones (``crossref_rate``), all derived from ``seed`` so runs repeat.
    """
    if isinstance(records, str | Path):
        opener = gzip.open if str(records).endswith(".gz") else open
        with opener(records, "rb") as fh:
            records = [orjson.loads(line) for line in fh if line.strip()]
    wanted = {r.lower() for r in repos} if repos else None
    data = Data()
    per_repo: dict[str, int] = defaultdict(int)
    for rec in records:
        repo = rec["repo"].lower()
        if wanted is not None and repo not in wanted:
            continue
        if limit_per_repo is not None and per_repo[repo] >= limit_per_repo:
            continue
        per_repo[repo] += 1
        rng = random.Random(f"{seed}:{repo}#{rec['number']}")
        created, closed = iso_z(rec["created_at"]), iso_z(rec.get("closed_at"))
        state = (rec.get("state") or "open").upper()
        issue = _issue(repo, rec["number"], rec.get("title") or "", rec.get("body"), state,
                       list(rec.get("labels") or []), None, created, closed,
                       rec.get("author_association") or "NONE", rec.get("reactions"))  # fmt: skip
        n_comments = rec.get("comments") or 0
        if max_comments is not None:
            n_comments = min(n_comments, max_comments)
        start = _parse(created)
        end = _parse(closed) if closed else start + timedelta(days=30)
        step = (end - start) / (n_comments + 1)
        for j in range(n_comments):
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 40)))
            issue["comments"].append(_comment(
                repo, rec["number"], rec["number"] * 1000 + j + 1, rng.choice(_LOGINS),
                rng.choice(_ASSOCIATIONS), f"{words} (comment {j + 1})",
                _fmt(start + step * (j + 1))))  # fmt: skip
        last = max([created, closed or created] + [c["createdAt"] for c in issue["comments"]])
        issue["updatedAt"] = last
        if state == "CLOSED" and rng.random() < fix_rate:
            pr = _pr(repo, 200_000 + rec["number"], f"Fix #{rec['number']}: {issue['title'][:60]}",
                     closed, rng, merged=True)
            data.prs[repo][pr["number"]] = pr
            issue["closers"].append(pr["number"])
        if rng.random() < crossref_rate:
            pr = _pr(repo, 300_000 + rec["number"], f"Related to #{rec['number']}", created, rng,
                     merged=rng.random() < 0.5)
            data.prs[repo][pr["number"]] = pr
            issue["crossrefs"].append(pr["number"])
        data.issues[repo][rec["number"]] = issue
    return data


def _pr(repo, number, title, when, rng, *, merged):
    return {"id": f"PR_{repo}#{number}", "repo": repo, "number": number, "title": title,
            "state": "MERGED" if merged else "OPEN", "merged": merged,
            "mergedAt": when if merged else None, "createdAt": when,
            "additions": rng.randint(1, 400), "deletions": rng.randint(0, 200),
            "changedFiles": rng.randint(1, 12), "url": f"https://github.com/{repo}/pull/{number}"}  # fmt: skip


# -- GraphQL resolvers -----------------------------------------------------------------------
def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    try:
        return base64.b64decode(text.encode(), validate=True).decode()
    except Exception as exc:
        raise ValueError(f"`{text}` does not appear to be a valid cursor.") from exc


def _page(items: list[Any], first: int | None, after: str | None, *, prefix: str = "idx") -> dict:
    _check_first(first)
    start = 0
    if after:
        decoded = _unb64(after)
        if not decoded.startswith(prefix + ":"):
            raise ValueError(f"`{after}` does not appear to be a valid cursor.")
        start = int(decoded.split(":", 1)[1]) + 1
    chunk = items[start:start + first]
    end = start + len(chunk) - 1
    return {"totalCount": len(items), "nodes": chunk,
            "pageInfo": {"hasNextPage": start + len(chunk) < len(items),
                         "endCursor": _b64(f"{prefix}:{end}") if chunk else after,
                         "hasPreviousPage": start > 0,
                         "startCursor": _b64(f"{prefix}:{start}") if chunk else None}}  # fmt: skip


def _check_first(first: int | None) -> None:
    if first is None:
        raise ValueError("You must provide a `first` or `last` value to properly paginate the connection.")
    if not 1 <= first <= 100:
        raise ValueError(f"Requesting {first} records on the connection exceeds the `first` limit of 100 records.")


def _build_schema(server: FakeGitHub):
    import graphql

    schema = graphql.build_schema(SDL)
    data = server.data

    def field(type_name: str, name: str):
        def deco(fn):
            schema.get_type(type_name).fields[name].resolve = fn
            return fn
        return deco

    @field("Query", "repository")
    def _repository(_root, info, owner, name):
        repo = data.find_repo(owner, name)
        if repo is None:
            raise graphql.GraphQLError(
                f"Could not resolve to a Repository with the name '{owner}/{name}'.",
                extensions={"type": "NOT_FOUND"})  # fmt: skip
        return {"nameWithOwner": repo, "_repo": repo}

    @field("Query", "rateLimit")
    def _rate_limit(_root, info):
        return info.context["rate"]

    @field("Query", "viewer")
    def _viewer(_root, info):
        return {"login": "tester"}

    @field("Repository", "issues")
    def _issues(repo, info, first=None, after=None, orderBy=None, filterBy=None, states=None,
                labels=None, last=None, before=None):
        filterBy = filterBy or {}
        since = filterBy.get("since")
        states = states or filterBy.get("states")
        labels = labels or filterBy.get("labels")
        with data.lock:
            items = list(data.issues[repo["_repo"]].values())
        if since:
            since_s = iso_z(since)
            items = [i for i in items if i["updatedAt"] >= since_s]
        if states:
            items = [i for i in items if i["state"] in states]
        if labels:
            items = [i for i in items if set(labels) & set(i["labels"])]
        order = (orderBy or {}).get("field", "CREATED_AT")
        key = {"UPDATED_AT": lambda i: (i["updatedAt"], i["number"]),
               "CREATED_AT": lambda i: (i["createdAt"], i["number"]),
               "COMMENTS": lambda i: (len(i["comments"]), i["number"])}[order]  # fmt: skip
        desc = (orderBy or {}).get("direction") == "DESC"
        items.sort(key=key, reverse=desc)
        total = len(items)
        _check_first(first)
        if after:
            # Like GitHub's, the cursor holds the sort key, so it stays valid when issues change.
            decoded = _unb64(after)
            if not decoded.startswith(f"{order}:"):
                raise ValueError(f"`{after}` does not appear to be a valid cursor.")
            k0, n0 = decoded.split(":", 1)[1].rsplit("|", 1)
            cur = (int(k0) if order == "COMMENTS" else k0, int(n0))
            items = [i for i in items if (key(i) < cur if desc else key(i) > cur)]
        chunk = items[:first]
        end = _b64(f"{order}:{key(chunk[-1])[0]}|{chunk[-1]['number']}") if chunk else after
        return {"totalCount": total, "nodes": chunk,
                "pageInfo": {"hasNextPage": len(items) > len(chunk), "endCursor": end,
                             "hasPreviousPage": bool(after), "startCursor": None}}  # fmt: skip

    @field("Repository", "issue")
    def _issue_(repo, info, number):
        with data.lock:
            issue = data.issues[repo["_repo"]].get(number)
        if issue is None:
            raise graphql.GraphQLError(
                f"Could not resolve to an Issue with the number of {number}.",
                extensions={"type": "NOT_FOUND"})  # fmt: skip
        return issue

    @field("Repository", "pullRequest")
    def _pull(repo, info, number):
        return data.prs[repo["_repo"]].get(number)

    @field("Issue", "author")
    def _author(issue, info):
        return {"__typename": "User", "login": issue["author"]} if issue.get("author") else None

    @field("Issue", "labels")
    def _labels(issue, info, first=None, after=None):
        return _page([{"name": n} for n in issue["labels"]], first, after)

    @field("Issue", "reactionGroups")
    def _reactions(issue, info):
        counts = issue.get("reactions") or {}
        return [{"content": g, "reactors": {"totalCount": int(counts.get(rest) or 0)}}
                for g, rest in _REACTION_REST.items()]  # fmt: skip

    @field("Issue", "comments")
    def _comments(issue, info, first=None, after=None):
        with data.lock:
            comments = list(issue["comments"])
        return _page(comments, first, after)

    def pr_node(repo, number):
        pr = dict(data.prs[repo][number])
        pr["__typename"] = "PullRequest"
        pr["repository"] = {"nameWithOwner": repo, "_repo": repo}
        return pr

    @field("Issue", "closedByPullRequestsReferences")
    def _closed_by(issue, info, first=None, after=None, includeClosedPrs=False):
        return _page([pr_node(issue["repo"], n) for n in issue["closers"]], first, after)

    @field("Issue", "stateReason")
    def _state_reason(issue, info):
        return "COMPLETED" if issue["state"] == "CLOSED" else None

    @field("Issue", "timelineItems")
    def _timeline(issue, info, first=None, after=None, itemTypes=None):
        events = []
        for n in issue["crossrefs"] + issue["closers"]:
            pr = pr_node(issue["repo"], n)
            events.append({"__typename": "CrossReferencedEvent", "createdAt": pr["createdAt"],
                           "willCloseTarget": n in issue["closers"], "source": pr})  # fmt: skip
        if issue["state"] == "CLOSED" and issue["closedAt"]:
            closer = pr_node(issue["repo"], issue["closers"][0]) if issue["closers"] else None
            events.append({"__typename": "ClosedEvent", "createdAt": issue["closedAt"],
                           "closer": closer})  # fmt: skip
        wanted = set(itemTypes or ["CROSS_REFERENCED_EVENT", "CLOSED_EVENT"])
        names = {"CrossReferencedEvent": "CROSS_REFERENCED_EVENT", "ClosedEvent": "CLOSED_EVENT"}
        events = [e for e in events if names[e["__typename"]] in wanted]
        events.sort(key=lambda e: e["createdAt"])
        return _page(events, first, after)

    return schema


def query_cost(document, variables: dict[str, Any]) -> int:
    """GitHub's GraphQL cost: requests needed for every connection (assuming each ``first`` is
    hit), divided by 100, rounded, at least 1."""
    from graphql.language import (
        FieldNode,
        FragmentDefinitionNode,
        FragmentSpreadNode,
        InlineFragmentNode,
    )
    from graphql.utilities import value_from_ast_untyped

    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    total = 0

    def walk(selection_set, multiplier: int) -> None:
        nonlocal total
        if selection_set is None:
            return
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                first = None
                for arg in sel.arguments or ():
                    if arg.name.value in ("first", "last"):
                        first = value_from_ast_untyped(arg.value, variables)
                if first:
                    total += multiplier
                    walk(sel.selection_set, multiplier * int(first))
                else:
                    walk(sel.selection_set, multiplier)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set, multiplier)
            elif isinstance(sel, FragmentSpreadNode):
                walk(fragments[sel.name.value].selection_set, multiplier)

    for definition in document.definitions:
        if not isinstance(definition, FragmentDefinitionNode):
            walk(definition.selection_set, 1)
    return max(1, round(total / 100))


# -- the server ------------------------------------------------------------------------------
@dataclass
class Faults:
    """Faults injected into answers, drawn from ``seed`` so a run repeats.

    ``rate`` is the chance that a request (after the first ``skip``) gets one of ``kinds``:
    502, 503, 504, timeout (no answer for ``timeout_seconds``), graphql-timeout (a 200 whose
    body is GitHub's timeout error), secondary-403, secondary-429 (with ``Retry-After``),
    secondary-200 (a 200 whose GraphQL error names the secondary limit, no header).
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ("502", "503", "504", "timeout", "graphql-timeout", "secondary-403",
                              "secondary-429", "secondary-200")  # fmt: skip
    seed: int = 1
    skip: int = 0
    sequence: tuple[str | None, ...] = ()   # scripted: the k-th request (after skip) gets sequence[k]
    timeout_seconds: float = 2.0
    retry_after: int = 1


@dataclass
class Stats:
    requests: int = 0                 # every HTTP request received
    graphql: int = 0
    rest: int = 0
    free: int = 0                     # /rate_limit (free on GitHub too)
    points: int = 0                   # GraphQL points charged
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    over_limit: int = 0               # requests refused because the token's budget was spent
    early_retries: int = 0            # requests sent before a Retry-After had passed
    bad_auth: int = 0
    authorizations: list[str] = field(default_factory=list)  # token of each request, in order

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "graphql": self.graphql, "rest": self.rest,
                "free": self.free, "points": self.points, "faults": dict(self.faults),
                "over_limit": self.over_limit, "early_retries": self.early_retries,
                "bad_auth": self.bad_auth}  # fmt: skip


class _Budget:
    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.used = 0
        self.reset_at = time.time() + window

    def refresh(self) -> None:
        now = time.time()
        if now >= self.reset_at:
            self.used = 0
            self.reset_at = now + self.window

    @property
    def remaining(self) -> int:
        return self.limit - self.used


class FakeGitHub:
    """A threaded HTTP server on 127.0.0.1 (an ephemeral port) that behaves like GitHub.

    ``tokens``: accepted tokens (others get 401). ``limit``/``window``: each token's primary
    budget in points per window seconds (GraphQL) and requests per window (REST).
    ``latency``: seconds added to every answer (spreads a crawl out in time).
    """

    def __init__(self, data: Data, *, tokens: Iterable[str] = ("test-token",), limit: int = 5000,
                 window: float = 3600.0, faults: Faults | None = None, latency: float = 0.0):
        self.data = data
        self.tokens = list(tokens)
        self.limit, self.window = limit, window
        self.faults = faults or Faults()
        self.latency = latency
        self.stats = Stats()
        self._rng = random.Random(self.faults.seed)
        self._served = 0  # requests that could be faulted (all but /rate_limit and bad auth)
        self._lock = threading.Lock()
        self._budgets: dict[tuple[str, str], _Budget] = {}
        self._retry_after_until: dict[str, float] = {}
        self._schema = _build_schema(self)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeGitHub:
        handler = type("Handler", (_Handler,), {"gh": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def budget(self, token: str, resource: str = "graphql") -> _Budget:
        with self._lock:
            b = self._budgets.setdefault((token, resource), _Budget(self.limit, self.window))
            b.refresh()
            return b

    def reset_stats(self) -> None:
        self.stats = Stats()

    # request handling (called from handler threads)
    def _fault(self) -> str | None:
        with self._lock:
            self._served += 1
            k = self._served - 1 - self.faults.skip
            if 0 <= k < len(self.faults.sequence):
                return self.faults.sequence[k]
            if k < 0 or self.faults.rate <= 0:
                return None
            if self._rng.random() >= self.faults.rate:
                return None
            return self._rng.choice(self.faults.kinds)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes):
        """Returns (status, headers, body bytes, delay seconds)."""
        with self._lock:
            self.stats.requests += 1
        auth = headers.get("authorization", "")
        token = auth.split(" ", 1)[1].strip() if " " in auth else ""
        with self._lock:
            self.stats.authorizations.append(token)
        if token not in self.tokens:
            with self._lock:
                self.stats.bad_auth += 1
            return 401, {}, {"message": "Bad credentials",
                             "documentation_url": "https://docs.github.com/rest"}, 0  # fmt: skip
        url = urlsplit(path)
        if url.path.startswith("/api/v3/"):  # GitHub Enterprise layout
            url = url._replace(path=url.path.removeprefix("/api/v3"))
        if url.path == "/rate_limit":
            with self._lock:
                self.stats.free += 1
            g, c = self.budget(token), self.budget(token, "core")
            res = {k: {"limit": b.limit, "remaining": b.remaining, "used": b.used,
                       "reset": int(b.reset_at)} for k, b in (("graphql", g), ("core", c))}  # fmt: skip
            return 200, {}, {"resources": res, "rate": res["core"]}, 0
        with self._lock:
            until = self._retry_after_until.get(token, 0)
        if time.time() < until:
            with self._lock:
                self.stats.early_retries += 1
        fault = self._fault()
        if fault:
            with self._lock:
                self.stats.faults[fault] += 1
            if fault in ("502", "503", "504"):
                return int(fault), {}, {"message": "Server Error"}, 0
            if fault == "timeout":
                return 504, {}, {"message": "timeout"}, self.faults.timeout_seconds
            if fault == "secondary-200":
                # GitHub's advice without Retry-After: wait at least a minute. Not policed here.
                return 200, {}, {"data": None, "errors": [{"type": "RATE_LIMITED", "message":
                                 "You have exceeded a secondary rate limit. Please wait a few "
                                 "minutes before you try again."}]}, 0  # fmt: skip
            if fault.startswith("secondary"):
                with self._lock:
                    self._retry_after_until[token] = time.time() + self.faults.retry_after
                status = 403 if fault.endswith("403") else 429
                return status, {"Retry-After": str(self.faults.retry_after)}, {
                    "message": "You have exceeded a secondary rate limit. Please wait a few "
                               "minutes before you try again.",
                    "documentation_url": "https://docs.github.com/graphql/overview/rate-limits"}, 0  # fmt: skip
            if fault == "graphql-timeout" and url.path.endswith("graphql"):
                return 200, {}, {"data": None, "errors": [{"message": "Something went wrong while "
                                 "executing your query. This may be the result of a timeout, or it "
                                 "could be a GitHub bug."}]}, 0  # fmt: skip
        if url.path in ("/graphql", "/api/graphql") and method == "POST":
            with self._lock:
                self.stats.graphql += 1
            return self._graphql(token, body)
        if method == "GET" and url.path.startswith("/repos/"):
            with self._lock:
                self.stats.rest += 1
            return self._rest(token, url.path, parse_qs(url.query))
        return 404, {}, {"message": "Not Found"}, 0

    def _limit_headers(self, b: _Budget, resource: str) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(b.limit), "X-RateLimit-Remaining": str(max(0, b.remaining)),
                "X-RateLimit-Used": str(b.used), "X-RateLimit-Reset": str(int(b.reset_at)),
                "X-RateLimit-Resource": resource}  # fmt: skip

    def _graphql(self, token: str, body: bytes):
        import graphql

        try:
            payload = orjson.loads(body)
            document = graphql.parse(payload["query"])
        except Exception as exc:
            return 400, {}, {"message": f"Problems parsing JSON or query: {exc}"}, 0
        variables = payload.get("variables") or {}
        errors = graphql.validate(self._schema, document)
        b = self.budget(token)
        if errors:
            return 200, self._limit_headers(b, "graphql"), {
                "errors": [{"message": e.message} for e in errors]}, 0
        cost = query_cost(document, variables)
        with self._lock:
            if b.remaining < cost:
                self.stats.over_limit += 1
                return 200, self._limit_headers(b, "graphql"), {"errors": [{
                    "type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}]}, 0
            b.used += cost
            self.stats.points += cost
        rate = {"limit": b.limit, "cost": cost, "remaining": b.remaining, "used": b.used,
                "resetAt": datetime.fromtimestamp(int(b.reset_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
        result = graphql.execute(self._schema, document, variable_values=variables,
                                 context_value={"rate": rate})  # fmt: skip
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [_gql_error(e) for e in result.errors]
        return 200, self._limit_headers(b, "graphql"), out, self.latency

    # REST: what a per-issue crawler (Perceval-style) asks for
    def _rest(self, token: str, path: str, query: dict[str, list[str]]):
        b = self.budget(token, "core")
        with self._lock:
            if b.remaining < 1:
                self.stats.over_limit += 1
                return 403, self._limit_headers(b, "core"), {"message": "API rate limit exceeded"}, 0
            b.used += 1
        headers = self._limit_headers(b, "core")
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        repo = self.data.find_repo(m.group(1), m.group(2)) if m else None
        if repo is None:
            return 404, headers, {"message": "Not Found"}, 0
        rest = m.group(3) or ""
        per_page = min(100, int(query.get("per_page", ["30"])[0]))
        page = int(query.get("page", ["1"])[0])

        def paged(items):
            chunk = items[(page - 1) * per_page: page * per_page]
            if page * per_page < len(items):
                nxt = {k: v[0] for k, v in query.items()} | {"page": str(page + 1)}
                headers["Link"] = f'<{self.url}{path}?{urlencode(nxt)}>; rel="next"'
            return 200, headers, chunk, self.latency

        with self.data.lock:
            issues = self.data.issues[repo]
            if rest == "/issues":
                items = sorted(issues.values(), key=lambda i: (i["updatedAt"], i["number"]))
                since = query.get("since", [None])[0]
                if since:
                    items = [i for i in items if i["updatedAt"] >= iso_z(since)]
                state = query.get("state", ["open"])[0]
                if state != "all":
                    items = [i for i in items if i["state"] == state.upper()]
                return paged([_rest_issue(i) for i in items])
            if mm := re.fullmatch(r"/issues/(\d+)/(comments|timeline)", rest):
                issue = issues.get(int(mm.group(1)))
                if issue is None:
                    return 404, headers, {"message": "Not Found"}, 0
                if mm.group(2) == "comments":
                    return paged([_rest_comment(c) for c in issue["comments"]])
                return paged(_rest_timeline(issue, self.data.prs[repo]))
            if mm := re.fullmatch(r"/pulls/(\d+)", rest):
                pr = self.data.prs[repo].get(int(mm.group(1)))
                if pr is None:
                    return 404, headers, {"message": "Not Found"}, 0
                return 200, headers, _rest_pr(pr), self.latency
        return 404, headers, {"message": "Not Found"}, 0


def _gql_error(e) -> dict[str, Any]:
    out: dict[str, Any] = {"message": e.message, "path": e.path}
    if e.extensions and "type" in e.extensions:
        out["type"] = e.extensions["type"]
    return out


def _rest_issue(i: dict[str, Any]) -> dict[str, Any]:
    repo = i["repo"]
    return {"url": f"https://api.github.com/repos/{repo}/issues/{i['number']}",
            "html_url": i["url"], "number": i["number"], "title": i["title"], "body": i["body"],
            "state": i["state"].lower(), "labels": [{"name": n} for n in i["labels"]],
            "user": {"login": i["author"]} if i["author"] else None,
            "author_association": i["authorAssociation"], "comments": len(i["comments"]),
            "created_at": i["createdAt"], "updated_at": i["updatedAt"], "closed_at": i["closedAt"],
            "reactions": i["reactions"]}  # fmt: skip


def _rest_comment(c: dict[str, Any]) -> dict[str, Any]:
    return {"id": c["databaseId"], "user": {"login": c["author"]["login"]},
            "author_association": c["authorAssociation"], "body": c["body"],
            "created_at": c["createdAt"], "updated_at": c["updatedAt"], "html_url": c["url"]}  # fmt: skip


def _rest_timeline(issue: dict[str, Any], prs: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for n in issue["crossrefs"] + issue["closers"]:
        pr = prs[n]
        events.append({"event": "cross-referenced", "created_at": pr["createdAt"], "source": {
            "type": "issue", "issue": {"number": n, "title": pr["title"], "html_url": pr["url"],
                                       "pull_request": {"url": pr["url"]},
                                       "repository": {"full_name": issue["repo"]}}}})  # fmt: skip
    if issue["state"] == "CLOSED":
        events.append({"event": "closed", "created_at": issue["closedAt"], "commit_id": None})
    return sorted(events, key=lambda e: e["created_at"])


def _rest_pr(pr: dict[str, Any]) -> dict[str, Any]:
    return {"number": pr["number"], "title": pr["title"], "state": "closed" if pr["merged"] else "open",
            "merged_at": pr["mergedAt"], "additions": pr["additions"], "deletions": pr["deletions"],
            "changed_files": pr["changedFiles"], "html_url": pr["url"]}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    gh: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet: tests read stats, not logs
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload, delay = self.gh.handle(method, self.path, headers, body)
        if delay:
            time.sleep(delay)
        data = orjson.dumps(payload)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


def main(argv: list[str] | None = None) -> None:
    """Serve a corpus as a local GitHub: ``python -m bugatlas.collect.testing CORPUS``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bugatlas.collect.testing",
                                 description="Serve issues (flattened corpus JSONL[.gz]) as a local GitHub API.")  # fmt: skip
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--token", action="append", help="accepted token (repeatable); default: test-token")
    ap.add_argument("--limit", type=int, default=5000, help="points (GraphQL) per window per token")
    ap.add_argument("--window", type=float, default=3600.0, help="rate-limit window, seconds")
    ap.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered with a fault")
    ap.add_argument("--repo", action="append", help="serve only this repository (repeatable)")
    args = ap.parse_args(argv)
    data = load_corpus(args.corpus, repos=args.repo)
    gh = FakeGitHub(data, tokens=args.token or ["test-token"], limit=args.limit, window=args.window,
                    faults=Faults(rate=args.fault_rate)).start()  # fmt: skip
    issues, comments = data.count()
    print(f"serving {issues} issues, {comments} comments of {', '.join(data.repo_names())} at {gh.url}",
          flush=True)  # fmt: skip
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        gh.stop()


if __name__ == "__main__":
    main()
