"""The crawl: bulk GraphQL pages of issues, incremental and resumable, into the study store.

    from bugatlas import Store
    from bugatlas.collect import collect_repos
    result = collect_repos(Store("study.db"), ["vllm-project/vllm"], since="2025-01-01")

Each page of up to 100 issues (with labels, reactions, the first 100 comments, closing and
cross-referencing pull requests) is fetched, completed with follow-up comment pages for the
issues that have more, then written in ONE transaction together with the crawl cursor (and the
raw answers when archiving). A crawl killed at any moment therefore resumes at the first page
not yet stored: no duplicates, no gaps. A finished crawl leaves a watermark (the newest
``updatedAt`` stored); the next run asks only for issues updated since.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from bugatlas.collect import queries
from bugatlas.collect.apply import apply_group, archive_group
from bugatlas.collect.client import (
    DEFAULT_BASE_URL,
    GitHubClient,
    GitHubError,
    NotFoundError,
    Response,
)
from bugatlas.errors import BadInputError
from bugatlas.store import Repository, Store
from bugatlas.store.records import normalize_repo
from bugatlas.store.store import now_iso

STATES = ("all", "open", "closed")
COMMENT_BATCH = 10   # issues whose next comment page is asked for in one request
HYDRATE_BATCH = 50   # issues fetched by number in one request


@dataclass
class RepoResult:
    repo: str
    issues: int = 0
    comments: int = 0
    pull_requests: int = 0
    requests: int = 0
    pages: int = 0
    total: int | None = None         # issues matching the filters (the server's totalCount)
    complete: bool = False           # False: stopped by --limit (the next run continues)
    watermark: str | None = None
    missing: int = 0                 # hydrate: issues the server no longer has
    error: str | None = None         # hydrate: why a repository was skipped

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CollectResult:
    repos: list[RepoResult] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def issues(self) -> int:
        return sum(r.issues for r in self.repos)

    def as_dict(self) -> dict[str, Any]:
        return {"issues": self.issues, "repos": [r.as_dict() for r in self.repos], **self.stats}


# -- options ---------------------------------------------------------------------------------
def parse_when(value: str | None, option: str, *, end_of_day: bool = False) -> str | None:
    """A date or date-time as GitHub's ISO form (UTC, seconds, 'Z')."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            dt = datetime.fromisoformat(text).replace(tzinfo=UTC)
            if end_of_day:
                dt = dt.replace(hour=23, minute=59, second=59)
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except ValueError:
        raise BadInputError(f"{option}: {value!r} is not a date (use YYYY-MM-DD or an ISO-8601 time)") from None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def filter_key(state: str, labels: Sequence[str] | None, since: str | None) -> str:
    """Crawls with different filters keep separate cursors and watermarks."""
    return orjson.dumps({"labels": sorted(labels or []), "since": since, "state": state},
                        option=orjson.OPT_SORT_KEYS).decode()  # fmt: skip


def _repos(repos: Sequence[str]) -> list[str]:
    if isinstance(repos, str):  # one name, not its letters
        repos = [repos]
    out = []
    for r in repos:
        try:
            out.append(normalize_repo(r))
        except ValueError:
            raise BadInputError(f"{r!r}: not a repository (use OWNER/NAME, e.g. vllm-project/vllm)") from None
    if not out:
        raise BadInputError("no repositories given (e.g. bugatlas collect vllm-project/vllm)")
    return list(dict.fromkeys(out))


def estimate_cost(issues: int) -> int:
    """GitHub's points for an issues page of ``issues`` (1 + 4 nested connections each)."""
    return max(1, round((1 + 4 * issues) / 100))


# -- progress --------------------------------------------------------------------------------
ProgressFn = Callable[[dict[str, Any]], None]


class _Bar:
    """Rich progress bar: issues fetched, requests spent, rate-limit remaining, ETA."""

    def __init__(self, enabled: bool, client: GitHubClient, label: str):
        self.client, self.enabled, self.label = client, enabled, label
        self.bar, self.task, self.total = None, None, None

    def _start(self) -> None:
        # Started on first news, so a crawl refused at once (bad token) draws no empty bar.
        from rich import progress as rp

        self.bar = rp.Progress(
            rp.TextColumn("[bold]{task.description}"), rp.BarColumn(),
            rp.TextColumn("{task.completed}/{task.fields[total_text]} issues"),
            rp.TextColumn("{task.fields[requests]} requests"),
            rp.TextColumn("rate {task.fields[remaining]}"),
            rp.TextColumn("{task.fields[note]}"),
            rp.TimeRemainingColumn())  # fmt: skip
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=None, requests=0, remaining="?", note="",
                                      total_text="?")  # fmt: skip
        self.client.on_wait = lambda s, why: self.update(note=f"waiting {s:.0f}s ({why})")

    def update(self, *, advance: int = 0, add_total: int | None = None, description: str | None = None,
               note: str = "") -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self._start()
        if add_total is not None:
            self.total = (self.total or 0) + add_total
        rem = self.client.stats.remaining
        self.bar.update(self.task, advance=advance, total=self.total,
                        total_text="?" if self.total is None else self.total,
                        requests=self.client.stats.requests,
                        remaining="?" if rem is None else rem, note=note,
                        **({"description": description} if description else {}))  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- the crawl -------------------------------------------------------------------------------
class Collector:
    """One crawl session over a store and a client (shared by collect and hydrate)."""

    def __init__(self, store: Store, client: GitHubClient, *, archive: bool = False,
                 run_id: int | None = None, bar: _Bar | None = None):
        self.store, self.client, self.archive, self.run_id = store, client, archive, run_id
        self.bar = bar
        self.repo = ""
        if archive:
            client.on_fault = self._archive_fault

    def _archive_fault(self, kind: str, resp: Response | None) -> None:
        record = {"method": resp.method if resp else "POST", "url": resp.path if resp else "",
                  "request": None, "status": resp.status if resp else 0,
                  "response": {"fault": kind, "body": resp.body if resp else None}}  # fmt: skip
        with self.store.transaction():
            archive_group(self.store, self.run_id, self.repo or "-", "fault", {"fault": kind}, [record])

    @staticmethod
    def _record(resp: Response) -> dict[str, Any]:
        return {"method": resp.method, "url": resp.path, "request": resp.request,
                "status": resp.status, "response": resp.body, "received_at": now_iso()}  # fmt: skip

    def _commit(self, repo: str, kind: str, context: dict[str, Any], responses: list[Response]) -> dict[str, int]:
        records = [self._record(r) for r in responses]
        with self.store.transaction():
            if self.archive:
                archive_group(self.store, self.run_id, repo, kind, context, records)
            return apply_group(self.store, repo, kind, context, records)

    def _more_comments(self, owner: str, name: str, pending: dict[int, str]) -> list[Response]:
        """Follow the comment pages of issues with more than one page, several per request."""
        out = []
        while pending:
            batch = list(pending.items())[:COMMENT_BATCH]
            variables: dict[str, Any] = {"owner": owner, "name": name}
            for i, (number, cursor) in enumerate(batch):
                variables[f"n{i}"], variables[f"a{i}"] = number, cursor
            resp = self.client.graphql(queries.comments_query(len(batch)), variables,
                                       cost=max(1, round(len(batch) / 100)))  # fmt: skip
            out.append(resp)
            repo_data = (resp.body.get("data") or {}).get("repository") or {}
            for i, (number, _) in enumerate(batch):
                conn = (repo_data.get(f"c{i}") or {}).get("comments") or {}
                info = conn.get("pageInfo") or {}
                if info.get("hasNextPage") and info.get("endCursor"):
                    pending[number] = info["endCursor"]
                else:
                    del pending[number]
        return out

    @staticmethod
    def _pending(nodes: list[dict[str, Any]]) -> dict[int, str]:
        pending = {}
        for n in nodes:
            info = ((n.get("comments") or {}).get("pageInfo")) or {}
            if info.get("hasNextPage") and info.get("endCursor"):
                pending[n["number"]] = info["endCursor"]
        return pending

    def crawl(self, repo: str, *, since: str | None, until: str | None, state: str,
              labels: Sequence[str] | None, limit: int | None, page_size: int) -> RepoResult:
        self.repo = repo
        owner, name = repo.split("/")
        key = filter_key(state, labels, since)
        row = self.store.conn.execute(
            "SELECT cursor, cursor_since, watermark FROM collect_state WHERE repo = ? AND filter_key = ?",
            (repo, key)).fetchone()  # fmt: skip
        cursor, cursor_since, watermark = row if row else (None, None, None)
        result = RepoResult(repo, watermark=watermark)
        if cursor:  # an interrupted crawl: continue exactly where its last stored page ended
            after, page_since = cursor, cursor_since
        else:
            after, page_since = None, max(filter(None, (since, watermark)), default=None)
        states = None if state == "all" else [state.upper()]
        size, requests0 = page_size, self.client.stats.requests
        left = limit
        while left is None or left > 0:
            first = min(size, left) if left is not None else size
            variables = {"owner": owner, "name": name, "first": first, "after": after,
                         "since": page_since, "states": states, "labels": list(labels) if labels else None}  # fmt: skip
            try:
                resp = self.client.graphql(queries.ISSUES_PAGE, variables, cost=estimate_cost(first),
                                           shrink="first")  # fmt: skip
            except NotFoundError:
                raise GitHubError(f"{repo}: repository not found on {self.client._where()} "
                                  f"(or the token cannot see it)") from None  # fmt: skip
            except GitHubError as exc:
                if after and after == cursor and "cursor" in str(exc).lower():
                    # A stored cursor the server no longer accepts: fall back to the
                    # watermark, which pages committed in updatedAt order make safe.
                    after, cursor = None, None
                    page_since = max(filter(None, (page_since, watermark)), default=None)
                    continue
                raise
            size = min(page_size, max(variables["first"] * 2, 1))  # grow back after a shrink
            repo_data = (resp.body.get("data") or {}).get("repository")
            if repo_data is None:
                raise GitHubError(f"{repo}: repository not found on {self.client._where()} "
                                  f"(or the token cannot see it)")  # fmt: skip
            conn = repo_data["issues"]
            nodes = [n for n in conn.get("nodes") or [] if n]
            if result.total is None:
                result.total = conn.get("totalCount")
                if self.bar:
                    total = result.total if limit is None else min(result.total or 0, limit)
                    self.bar.update(add_total=total, description=repo)
            follow = self._more_comments(owner, name, self._pending(nodes))
            info = conn.get("pageInfo") or {}
            past_until = bool(until) and any((n.get("updatedAt") or "") > until for n in nodes)
            done = not info.get("hasNextPage") or past_until
            context = {"filter_key": key, "since": page_since, "until": until,
                       "cursor": None if done else info.get("endCursor")}  # fmt: skip
            counts = self._commit(repo, "issues", context, [resp, *follow])
            result.pages += 1
            result.issues += counts["issues"]
            result.comments += counts["comments"]
            result.pull_requests += counts["pull_requests"]
            if left is not None:
                left -= len(nodes)
            if self.bar:
                self.bar.update(advance=counts["issues"])
            if done:
                result.complete = True
                break
            after = info.get("endCursor")
        result.requests = self.client.stats.requests - requests0
        row = self.store.conn.execute(
            "SELECT watermark FROM collect_state WHERE repo = ? AND filter_key = ?", (repo, key)).fetchone()
        result.watermark = row[0] if row else watermark
        return result

    def hydrate(self, repo: str, numbers: Sequence[int], *, batch: int = HYDRATE_BATCH) -> RepoResult:
        """Fetch the text (and comments, fixes) of issues known only by reference."""
        self.repo = repo
        owner, name = repo.split("/")
        result = RepoResult(repo, total=len(numbers))
        requests0 = self.client.stats.requests
        for start in range(0, len(numbers), batch):
            chunk = list(numbers[start:start + batch])
            variables: dict[str, Any] = {"owner": owner, "name": name}
            for i, n in enumerate(chunk):
                variables[f"n{i}"] = n
            try:
                resp = self.client.graphql(queries.issues_by_number_query(len(chunk)), variables,
                                           cost=estimate_cost(len(chunk)))  # fmt: skip
            except NotFoundError:  # every issue of the batch is gone, or the repository is
                resp = None
            if resp is None or (resp.body.get("data") or {}).get("repository") is None:
                if resp is not None and not _only_issue_errors(resp.body):
                    # References may point at repositories since deleted or made private:
                    # note it and go on with the other repositories.
                    result.missing, result.error = len(numbers), "repository not found"
                    if self.bar:
                        self.bar.update(advance=len(numbers) - start)
                    break
                result.missing += len(chunk)
                if self.bar:
                    self.bar.update(advance=len(chunk))
                continue
            repo_data = resp.body["data"]["repository"]
            nodes = [repo_data.get(f"i{i}") for i in range(len(chunk))]
            result.missing += sum(1 for n in nodes if not n)
            present = [n for n in nodes if n]
            follow = self._more_comments(owner, name, self._pending(present))
            counts = self._commit(repo, "hydrate", {}, [resp, *follow])
            result.pages += 1
            result.issues += counts["issues"]
            result.comments += counts["comments"]
            result.pull_requests += counts["pull_requests"]
            if self.bar:
                self.bar.update(advance=len(chunk))
        result.complete = True
        result.requests = self.client.stats.requests - requests0
        return result


def _only_issue_errors(body: dict[str, Any]) -> bool:
    errors = body.get("errors") or []
    return bool(errors) and all(len(e.get("path") or []) >= 2 for e in errors)


def _client(base_url: str, tokens: list[str] | None, client: GitHubClient | None, **kw: Any) -> GitHubClient:
    return client if client is not None else GitHubClient(base_url, tokens, **kw)


@contextmanager
def _session(
    store: Store, gh: GitHubClient, command: str, params: dict[str, Any], *, archive: bool,
    progress: bool, label: str, owns_client: bool,
) -> Iterator[tuple[Collector, _Bar, CollectResult]]:
    """One recorded run of the collector with its progress bar. On the way out: the request
    stats and summary go into the run, tokens are redacted from GitHub errors, and a client
    made here is closed."""
    result = CollectResult()
    try:
        with store.run(command, params) as run:
            bar = _Bar(progress, gh, label)
            try:
                yield Collector(store, gh, archive=archive, run_id=run.id, bar=bar), bar, result
            finally:
                bar.close()
            result.stats = gh.stats.as_dict()
            run.summary = result.as_dict()
    except GitHubError as exc:
        raise type(exc)(gh.redact(str(exc))) from None
    finally:
        if owns_client:
            gh.close()


def collect_repos(
    store: Store,
    repos: Sequence[str],
    *,
    since: str | None = None,
    until: str | None = None,
    state: str = "all",
    labels: Sequence[str] | None = None,
    limit: int | None = None,
    base_url: str = DEFAULT_BASE_URL,
    tokens: list[str] | None = None,
    archive: bool = False,
    page_size: int = 100,
    progress: bool = False,
    client: GitHubClient | None = None,
    client_options: dict[str, Any] | None = None,
) -> CollectResult:
    """Collect issues (with comments, labels, reactions and fixing pull requests) of ``repos``
    into ``store``. Incremental and resumable per repository and filter set; see module doc.

    ``since``/``until``: dates bounding the issues' ``updatedAt``; ``state``: all|open|closed;
    ``labels``: only issues with any of these labels; ``limit``: at most this many issues per
    repository this run (the next run continues); ``archive``: keep every raw answer for
    :func:`bugatlas.collect.replay_archive`. Tokens: ``tokens`` or GITHUB_TOKEN(S).
    """
    repo_names = _repos(repos)
    if state not in STATES:
        raise BadInputError(f"--state: {state!r} is not one of {', '.join(STATES)}")
    if not 1 <= page_size <= 100:
        raise BadInputError(f"--page-size: {page_size} is not between 1 and 100")
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit: {limit} must be at least 1")
    since_iso = parse_when(since, "--since")
    until_iso = parse_when(until, "--until", end_of_day=True)
    labels = [l.strip() for l in labels or [] if l.strip()] or None
    gh = _client(base_url, tokens, client, **(client_options or {}))
    params = {"repos": repo_names, "since": since_iso, "until": until_iso, "state": state,
              "labels": labels, "limit": limit, "base_url": base_url, "archive": archive}  # fmt: skip
    with _session(store, gh, "collect", params, archive=archive, progress=progress,
                  label="collecting", owns_client=client is None) as (collector, _, result):
        for repo in repo_names:
            store.upsert_repository(_repository(repo))
            result.repos.append(collector.crawl(
                repo, since=since_iso, until=until_iso, state=state, labels=labels,
                limit=limit, page_size=page_size))  # fmt: skip
    return result


def collect_status(store: Store) -> list[dict[str, Any]]:
    """One row per crawl (repository and filter set): how far it got, and what is archived."""
    rows = store.query(
        """SELECT s.repo, s.filter_key, s.watermark, s.cursor IS NOT NULL AS interrupted,
                  s.issues AS issues_written, s.requests AS answers, s.updated_at AS last_page_at,
                  (SELECT COUNT(*) FROM issues i WHERE i.repo = s.repo AND i.source = 'collect:github')
                      AS issues_stored,
                  (SELECT COUNT(*) FROM collect_archive a WHERE a.repo = s.repo) AS archived
           FROM collect_state s ORDER BY s.repo, s.filter_key""")  # fmt: skip
    for row in rows:
        row["filters"] = {k: v for k, v in orjson.loads(row.pop("filter_key")).items() if v}
        row["interrupted"] = bool(row["interrupted"])
    return rows


def reference_numbers(store: Store, repos: Sequence[str] | None = None) -> dict[str, list[int]]:
    """Issues stored as references only (no text), by repository."""
    sql = "SELECT repo, number FROM issues WHERE is_reference = 1"
    args: list[Any] = []
    if repos:
        sql += f" AND repo IN ({', '.join('?' * len(repos))})"
        args = list(repos)
    out: dict[str, list[int]] = {}
    for repo, number in store.conn.execute(sql + " ORDER BY repo, number", args):
        out.setdefault(repo, []).append(number)
    return out


def hydrate_references(
    store: Store,
    repos: Sequence[str] | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    tokens: list[str] | None = None,
    archive: bool = False,
    batch: int = HYDRATE_BATCH,
    progress: bool = False,
    client: GitHubClient | None = None,
    client_options: dict[str, Any] | None = None,
) -> CollectResult:
    """Fetch the text of issues imported as references (Liu et al., Open-LLM-Failures),
    ``batch`` issues per GraphQL request. Already hydrated issues are skipped, so a stopped
    run continues where it was."""
    if not 1 <= batch <= 100:
        raise BadInputError(f"--batch: {batch} is not between 1 and 100")
    todo = reference_numbers(store, _repos(repos) if repos else None)
    gh = _client(base_url, tokens, client, **(client_options or {}))
    params = {"repos": list(todo), "base_url": base_url, "archive": archive}
    with _session(store, gh, "collect --hydrate", params, archive=archive, progress=progress,
                  label="hydrating", owns_client=client is None) as (collector, bar, result):
        if todo:
            bar.update(add_total=sum(len(v) for v in todo.values()))
        for repo, numbers in todo.items():
            bar.update(description=repo)
            result.repos.append(collector.hydrate(repo, numbers, batch=batch))
    return result


def _repository(repo: str) -> Repository:
    from bugatlas.importers.base import dataset_facts

    display = None
    for facts in dataset_facts().values():
        display = display or (facts.get("repositories") or {}).get(repo)
    return Repository(full_name=repo, display=display)
