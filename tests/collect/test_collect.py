"""Collect against a real local HTTP server that speaks GitHub's GraphQL (graphql-core)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from bugatlas.collect import (
    canonical_dump,
    collect_repos,
    export_archive,
    hydrate_references,
    replay_archive,
)
from bugatlas.collect.client import GitHubError
from bugatlas.collect.testing import FakeGitHub, Faults, load_corpus
from bugatlas.errors import BadInputError
from bugatlas.store import Issue, Store

from .conftest import TOKEN, TOKEN2

SGL = "sgl-project/sglang"
REPOS = ["vllm-project/vllm", "ggml-org/llama.cpp", "sgl-project/sglang"]


def _instant(value: str | None):
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _collect(store, gh, repos=(SGL,), **kw):
    kw.setdefault("tokens", [TOKEN])
    return collect_repos(store, list(repos), base_url=gh.url, **kw)


def test_full_corpus_reproduces_the_imported_store(corpus_path, corpus_store, tmp_path):
    """Done-when: the 2,997-issue corpus collected from the server equals the import."""
    with FakeGitHub(load_corpus(corpus_path), tokens=[TOKEN]) as gh:
        store = Store(tmp_path / "collected.db")
        result = _collect(store, gh, REPOS)
    assert result.issues == 2997
    imported = {i.key: i for i in corpus_store.iter_issues(repos=REPOS)}
    collected = {i.key: i for i in store.iter_issues()}
    assert collected.keys() == imported.keys()
    for key, want in imported.items():
        got = collected[key]
        for f in ("title", "body", "state", "labels", "author", "author_association",
                  "comments_count", "reactions", "html_url", "is_pull_request"):
            assert getattr(got, f) == getattr(want, f), (key, f)
        for f in ("created_at", "closed_at"):
            assert _instant(getattr(got, f)) == _instant(getattr(want, f)), (key, f)
        assert got.source == "collect:github" and not got.is_reference
    # every comment arrived, including the seven issues with more than 100 (nested pages)
    n_comments = store.conn.execute("SELECT COUNT(*) FROM comments").fetchone()[0]
    assert n_comments == 19128
    big = store.conn.execute(
        "SELECT i.number, i.comments_count, COUNT(c.comment_id) FROM issues i JOIN comments c "
        "ON c.repo = i.repo AND c.issue_number = i.number GROUP BY i.repo, i.number "
        "HAVING i.comments_count > 100").fetchall()  # fmt: skip
    assert len(big) == 7 and all(total == got for _, total, got in big)
    # bulk: 30 pages of 100 + a few follow-up comment pages + one free /rate_limit
    # (30 pages, 14 follow-ups for the 7 long threads: under 15 requests per 1,000 issues)
    assert gh.stats.graphql <= 45, gh.stats.as_dict()
    assert gh.stats.over_limit == 0


def test_fixing_pull_requests_and_comments_match_the_server(server, tmp_path):
    store = Store(tmp_path / "s.db")
    _collect(store, server)
    issues = server.data.issues[SGL]
    fixed = [i for i in issues.values() if i["closers"]]
    crossref = [i for i in issues.values() if i["crossrefs"]]
    assert fixed and crossref
    for issue in fixed[:20] + crossref[:20]:
        fixes = {(f["number"], f["relation"]) for f in store.fixes_for(SGL, issue["number"])}
        want = {(n, "closes") for n in issue["closers"]} | {(n, "cross-reference") for n in issue["crossrefs"]}
        assert fixes == want
        for f in store.fixes_for(SGL, issue["number"]):
            pr = server.data.prs[SGL][f["number"]]
            assert (f["title"], f["additions"], f["deletions"], f["changed_files"], f["merged_at"]) == (
                pr["title"], pr["additions"], pr["deletions"], pr["changedFiles"], pr["mergedAt"])
    for issue in list(issues.values())[:30]:
        stored = store.comments_for(SGL, issue["number"])
        assert [c["body"] for c in stored] == [c["body"] for c in issue["comments"]]
        assert [c["comment_id"] for c in stored] == [c["databaseId"] for c in issue["comments"]]


def test_incremental_run_fetches_only_what_changed(server, tmp_path):
    store = Store(tmp_path / "s.db")
    first = _collect(store, server, page_size=50)
    assert first.issues == 300 and first.repos[0].complete
    numbers = sorted(server.data.issues[SGL])
    server.data.touch(SGL, numbers[0], title="renamed upstream")
    server.data.touch(SGL, numbers[1], comment="a new comment")
    server.data.touch(SGL, numbers[2], state="closed")
    server.data.add_issue(SGL, 999_999, "brand new issue", "body")
    server.reset_stats()
    second = _collect(store, server, page_size=50)
    # the issue at the old watermark (since is inclusive) plus the four changed ones
    assert second.issues <= 6 and second.repos[0].pages == 1
    assert server.stats.graphql <= 2
    assert store.get_issue(SGL, numbers[0]).title == "renamed upstream"
    assert store.comments_for(SGL, numbers[1])[-1]["body"] == "a new comment"
    assert store.get_issue(SGL, numbers[2]).state == "closed"
    assert store.get_issue(SGL, 999_999).title == "brand new issue"
    assert store.count_issues() == 301


def test_filters_limit_and_continue(server, tmp_path):
    store = Store(tmp_path / "s.db")
    closed = _collect(store, server, state="closed")
    want_closed = sum(1 for i in server.data.issues[SGL].values() if i["state"] == "CLOSED")
    assert closed.issues == want_closed
    assert {i.state for i in store.iter_issues()} == {"closed"}

    store2 = Store(tmp_path / "s2.db")
    label = "bug"
    r = _collect(store2, server, labels=[label])
    assert r.issues == sum(1 for i in server.data.issues[SGL].values() if label in i["labels"]) > 0
    assert all(label in i.labels for i in store2.iter_issues())

    store3 = Store(tmp_path / "s3.db")
    r = _collect(store3, server, since="2025-01-01", until="2025-03-31")
    ups = [i["updatedAt"] for i in server.data.issues[SGL].values()]
    assert r.issues == sum(1 for u in ups if "2025-01-01" <= u <= "2025-03-31T23:59:59Z") > 0

    store4 = Store(tmp_path / "s4.db")
    r1 = _collect(store4, server, limit=120, page_size=50)
    assert r1.issues == 120 and not r1.repos[0].complete
    r2 = _collect(store4, server, limit=1000, page_size=50)
    assert r2.issues == 180 and r2.repos[0].complete
    assert store4.count_issues() == 300
    assert canonical_dump(store4) == canonical_dump(_fresh(server, tmp_path / "s5.db"))


def _fresh(gh, path, **kw) -> Store:
    store = Store(path)
    _collect(store, gh, **kw)
    return store


def test_rate_limits_and_faults_complete_within_the_announced_limit(small_data, tmp_path):
    """Done-when: under injected limits and 5xx the crawl completes, waits as told (never
    before Retry-After) and never asks beyond the announced limit."""
    with FakeGitHub(small_data, tokens=[TOKEN]) as clean:
        want = canonical_dump(_fresh(clean, tmp_path / "clean.db", page_size=25))
    kinds = ("502", "503", "504", "timeout", "graphql-timeout", "secondary-403", "secondary-429",
             "secondary-200")  # fmt: skip
    # each kind once, scripted (the first two twice in a row), then 15% drawn at random
    script = ("502", "502", None, "secondary-403", "secondary-403", None) + tuple(
        k for kind in kinds[1:] for k in (kind, None))  # fmt: skip
    faults = Faults(rate=0.15, seed=3, timeout_seconds=1.0, retry_after=1, kinds=kinds, sequence=script)
    # 8 points per 2 s: a page of 25 costs 1, so the crawl must sleep for resets several times
    with FakeGitHub(small_data, tokens=[TOKEN], limit=8, window=2.0, faults=faults) as gh:
        store = Store(tmp_path / "faulty.db")
        result = _collect(store, gh, page_size=25, client_options={
            "timeout": 0.5, "backoff": 0.05, "max_retries": 8, "secondary_wait": 0.2})  # fmt: skip
    assert result.issues == 300
    assert canonical_dump(store) == want
    assert gh.stats.over_limit == 0, "asked beyond the announced limit"
    assert gh.stats.early_retries == 0, "retried before Retry-After"
    assert set(gh.stats.faults) == set(kinds)
    assert result.stats["waits"] >= 2 and result.stats["retries"] >= 1


def test_token_pool_spreads_the_load(small_data, tmp_path):
    with FakeGitHub(small_data, tokens=[TOKEN, TOKEN2], limit=7, window=3600.0) as gh:
        store = Store(tmp_path / "s.db")
        # 12 pages of 25 cost 12 points: one token (7 points an hour) cannot, two can
        result = _collect(store, gh, page_size=25, tokens=[TOKEN, TOKEN2])
    used = set(gh.stats.authorizations)
    assert used == {TOKEN, TOKEN2}
    assert gh.stats.over_limit == 0 and result.stats["waits"] == 0
    assert result.issues == 300


def test_bad_token_and_missing_repository_are_one_clear_line(server, tmp_path):
    store = Store(tmp_path / "s.db")
    with pytest.raises(GitHubError) as exc:
        _collect(store, server, tokens=["ghp_WRONGtoken_SECRET"])
    msg = str(exc.value)
    assert "rejected" in msg and "401" in msg and "SECRET" not in msg and "\n" not in msg
    with pytest.raises(GitHubError) as exc:
        _collect(store, server, repos=["nobody/nothing"])
    assert str(exc.value) == "nobody/nothing: repository not found on 127.0.0.1 (or the token cannot see it)"
    with pytest.raises(BadInputError, match="OWNER/NAME"):
        _collect(store, server, repos=["not-a-repo"])
    with pytest.raises(BadInputError, match="--since"):
        _collect(store, server, since="yesterday")
    with pytest.raises(BadInputError, match="GITHUB_TOKEN"):
        collect_repos(store, [SGL], base_url=server.url, tokens=[])


def test_replay_without_a_server_rebuilds_an_identical_store(small_data, tmp_path):
    """Done-when: replay from the archive with no server running yields an identical store."""
    src = Store(tmp_path / "archived.db")
    faults = Faults(rate=0.15, seed=5, kinds=("502", "secondary-429"), retry_after=0)
    with FakeGitHub(small_data, tokens=[TOKEN], faults=faults) as gh:
        _collect(src, gh, archive=True, page_size=40, client_options={"backoff": 0.01})
        gh.data.touch(SGL, sorted(gh.data.issues[SGL])[5], title="changed later")
        _collect(src, gh, archive=True, page_size=40, client_options={"backoff": 0.01})
    # the server is gone now
    kinds = dict(src.conn.execute("SELECT kind, COUNT(*) FROM collect_archive GROUP BY kind").fetchall())
    assert kinds.get("issues", 0) >= 9 and kinds.get("fault", 0) >= 1
    dst = Store(tmp_path / "replayed.db")
    result = replay_archive(dst, tmp_path / "archived.db")
    assert result.issues > 300  # both runs replayed in order
    assert canonical_dump(dst) == canonical_dump(src)
    assert dst.get_issue(SGL, sorted(small_data.issues[SGL])[5]).title == "changed later"
    # the rebuilt store carries the archive and the crawl state: it replays and continues too
    again = Store(tmp_path / "again.db")
    replay_archive(again, dst)
    assert canonical_dump(again) == canonical_dump(src)
    state = lambda s: s.query("SELECT repo, filter_key, cursor, watermark FROM collect_state")  # noqa: E731
    assert state(dst) == state(src)


def test_tokens_never_reach_files_logs_or_errors(small_data, tmp_path, capfd):
    faults = Faults(rate=0.3, seed=11, kinds=("502", "secondary-403"), retry_after=0)
    path = tmp_path / "s.db"
    with FakeGitHub(small_data, tokens=[TOKEN, TOKEN2], faults=faults) as gh:
        store = Store(path)
        _collect(store, gh, archive=True, tokens=[TOKEN, TOKEN2], progress=True,
                 client_options={"backoff": 0.01})  # fmt: skip
        with pytest.raises(GitHubError) as exc:
            _collect(store, gh, repos=["nobody/nothing"], tokens=[TOKEN, TOKEN2])
        with pytest.raises(GitHubError) as exc2:
            _collect(store, gh, tokens=[TOKEN, "bad" + TOKEN])
        store.close()
    assert "token 2 of 2" in str(exc2.value)
    out = capfd.readouterr()
    for secret in (TOKEN, TOKEN2, "SECRET"):
        assert secret not in str(exc.value) + str(exc2.value)
        assert secret not in out.out + out.err
        for f in tmp_path.iterdir():
            assert secret.encode() not in f.read_bytes(), f


def test_hydrate_fetches_references_in_batches(corpus_store, corpus_path):
    refs = corpus_store.query(
        "SELECT repo, number FROM issues WHERE is_reference = 1 AND repo = 'vllm-project/vllm' "
        "ORDER BY number")  # fmt: skip
    assert len(refs) > 200
    numbers = [r["number"] for r in refs]
    # the server knows all but two of them (deleted upstream)
    records = [{"repo": "vllm-project/vllm", "number": n, "title": f"issue {n}", "body": f"text of {n}",
                "labels": ["bug"], "state": "closed", "created_at": "2024-01-01T00:00:00Z",
                "closed_at": "2024-02-01T00:00:00Z", "comments": 3 if n != numbers[7] else 150,
                "author_association": "NONE"} for n in numbers[2:]]  # fmt: skip
    with FakeGitHub(load_corpus(records), tokens=[TOKEN]) as gh:
        result = hydrate_references(corpus_store, ["vllm-project/vllm"], base_url=gh.url, tokens=[TOKEN])
        # batches of 50 and one follow-up comment page for the 150-comment issue
        assert gh.stats.graphql == -(-len(numbers) // 50) + 1
        again = hydrate_references(corpus_store, ["vllm-project/vllm"], base_url=gh.url, tokens=[TOKEN])
    r = result.repos[0]
    assert (r.issues, r.missing) == (len(numbers) - 2, 2)
    issue = corpus_store.get_issue("vllm-project/vllm", numbers[7])
    assert issue.body == f"text of {numbers[7]}" and not issue.is_reference
    assert len(corpus_store.comments_for("vllm-project/vllm", numbers[7])) == 150
    # labels imported with the references stay attached
    assert list(corpus_store.iter_labels("liu2025", repo="vllm-project/vllm", issue_number=numbers[7]))
    assert again.repos[0].issues == 0 and again.repos[0].missing == 2
    # all references: repositories the server lacks are skipped with a note, not fatal
    with FakeGitHub(load_corpus(records), tokens=[TOKEN]) as gh:
        everything = hydrate_references(corpus_store, base_url=gh.url, tokens=[TOKEN])
    skipped = [r for r in everything.repos if r.error]
    assert {r.repo for r in skipped} == {r.repo for r in everything.repos} - {"vllm-project/vllm"}
    assert all(r.error == "repository not found" and r.missing == r.total for r in skipped)


def test_cli_collect_and_replay(server, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bugatlas.cli import app

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    runner = CliRunner()
    db = tmp_path / "cli.db"
    res = runner.invoke(app, ["collect", SGL, "--base-url", server.url, "--db", str(db), "--archive",
                              "--limit", "150", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert '"issues": 150' in res.output
    res = runner.invoke(app, ["collect", SGL, "--base-url", server.url, "--db", str(db)])
    assert res.exit_code == 0 and "sgl-project/sglang: 150 issues" in res.output
    res = runner.invoke(app, ["collect", "--status", "--db", str(db)])
    assert res.exit_code == 0 and "sgl-project/sglang (state=all): 300 issues stored" in res.output
    assert "complete; 2 archived answers" in res.output
    res = runner.invoke(app, ["collect", "--replay", str(db), "--db", str(tmp_path / "r.db")])
    assert res.exit_code == 0 and "150 issues" in res.output  # only the archived run
    monkeypatch.setenv("GITHUB_TOKEN", "wrong")
    res = runner.invoke(app, ["collect", SGL, "--base-url", server.url, "--db", str(db)])
    assert res.exit_code == 1 and "rejected" in str(res.exception)
    res = runner.invoke(app, ["collect", "--db", str(db)])
    assert isinstance(res.exception, BadInputError)


def test_replay_of_an_empty_archive_is_a_clear_error(tmp_path):
    Store(tmp_path / "empty.db").close()
    with pytest.raises(BadInputError, match="archive is empty"):
        replay_archive(Store(tmp_path / "t.db"), tmp_path / "empty.db")
    with pytest.raises(BadInputError, match="no such store"):
        replay_archive(Store(tmp_path / "t.db"), Path(tmp_path / "missing.db"))


def test_github_enterprise_layout(server, tmp_path):
    """https://HOST/api/v3 for REST means https://HOST/api/graphql for GraphQL."""
    store = Store(tmp_path / "s.db")
    result = collect_repos(store, [SGL], base_url=server.url + "/api/v3", tokens=[TOKEN], limit=10)
    assert result.issues == 10 and server.stats.graphql == 1 and server.stats.free == 1


def test_replay_in_place_and_refusal_to_mix_archives(server, tmp_path):
    src = Store(tmp_path / "a.db")
    _collect(src, server, archive=True, limit=50)
    before = canonical_dump(src)
    src.conn.execute("DELETE FROM comments")  # damage, then rebuild in place from the archive
    replay_archive(src)
    assert canonical_dump(src) == before
    dst = Store(tmp_path / "b.db")
    replay_archive(dst, src)
    with pytest.raises(BadInputError, match="already holds an archive"):
        replay_archive(dst, src)
    # an exported archive file (what a study ships) replays the same
    assert export_archive(src, tmp_path / "archive.jsonl.gz") >= 1
    from_file = Store(tmp_path / "c.db")
    replay_archive(from_file, tmp_path / "archive.jsonl.gz")
    assert canonical_dump(from_file) == before
    assert TOKEN.encode() not in (tmp_path / "archive.jsonl.gz").read_bytes()


def test_unreachable_server_and_bad_base_url_are_one_clear_line(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = Store(tmp_path / "s.db")
    with pytest.raises(GitHubError) as exc:
        collect_repos(store, [SGL], base_url=f"http://127.0.0.1:{port}", tokens=[TOKEN],
                      client_options={"max_retries": 1, "backoff": 0.01})  # fmt: skip
    msg = str(exc.value)
    assert f"cannot reach http://127.0.0.1:{port}" in msg and "--base-url" in msg and "\n" not in msg
    assert "SECRET" not in msg
    with pytest.raises(BadInputError, match="--base-url: '127.0.0.1:8000' is not an http"):
        collect_repos(store, [SGL], base_url="127.0.0.1:8000", tokens=[TOKEN])
    store.upsert_issues([Issue(repo=SGL, number=1, is_reference=True)])
    with pytest.raises(GitHubError, match="cannot reach"):
        hydrate_references(store, base_url=f"http://127.0.0.1:{port}", tokens=[TOKEN],
                           client_options={"max_retries": 0})  # fmt: skip


def test_export_to_an_unwritable_path_and_replay_of_a_truncated_archive_are_one_line(server, tmp_path):
    store = Store(tmp_path / "s.db")
    _collect(store, server, archive=True, limit=20)
    with pytest.raises(BadInputError, match=r"--export-archive: .*no-such-folder/a\.jsonl: cannot write"):
        export_archive(store, tmp_path / "no-such-folder" / "a.jsonl")
    whole = tmp_path / "a.jsonl.gz"
    assert export_archive(store, whole) == 1
    truncated = tmp_path / "t.jsonl.gz"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    target = Store(tmp_path / "r.db")
    with pytest.raises(BadInputError, match=r"t\.jsonl\.gz: cannot read"):
        replay_archive(target, truncated)
    assert target.count_issues() == 0


def test_replay_of_an_exported_archive_leaves_no_temporary_copy(server, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    store = Store(tmp_path / "s.db")
    _collect(store, server, archive=True, limit=20)
    exported = tmp_path / "a.jsonl.gz"
    export_archive(store, exported)
    assert replay_archive(Store(tmp_path / "r.db"), exported).issues == 20
    broken = tmp_path / "b.jsonl"
    broken.write_text("{oops\n")
    with pytest.raises(BadInputError, match="not an archive record"):
        replay_archive(Store(tmp_path / "r2.db"), broken)
    assert list(scratch.iterdir()) == []  # each replay's scratch copy of the archive is gone


def test_a_failed_archive_export_leaves_the_previous_export_whole(server, tmp_path):
    """`--export-archive` from a store with no archive deleted the study's previous export at
    that path (it was opened for writing, then unlinked); an interrupt left half of it."""
    store = Store(tmp_path / "s.db")
    _collect(store, server, archive=True, limit=20)
    shipped = tmp_path / "study-archive.jsonl"
    assert export_archive(store, shipped) == 1
    before = shipped.read_bytes()
    with pytest.raises(BadInputError, match="the archive is empty"):
        export_archive(Store(tmp_path / "empty.db"), shipped)  # the wrong --db
    assert shipped.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if "study-archive" in p.name) == ["study-archive.jsonl"]


class _Scripted(FakeGitHub):
    """The stand-in, with the next GraphQL answers scripted (status, headers, body)."""

    def __init__(self, *a, script=(), **kw):
        super().__init__(*a, **kw)
        self.script, self.times = list(script), []

    def handle(self, method, path, headers, body):
        if "rate_limit" in path:
            return super().handle(method, path, headers, body)
        self.times.append(time.monotonic())
        if self.script:
            status, extra, payload = self.script.pop(0)
            return status, extra, payload, 0
        return super().handle(method, path, headers, body)


def test_http_500_is_retried_and_a_retry_after_on_5xx_is_honoured(small_data, tmp_path):
    """README: "retries 5xx", "honours Retry-After". A 500 ended the crawl at once, and a 503
    saying Retry-After: 1 was asked again after the 0.05 s backoff."""
    with FakeGitHub(small_data, tokens=[TOKEN]) as clean:
        want = canonical_dump(_fresh(clean, tmp_path / "clean.db"))
    script = [(500, {}, {"message": "Server Error"}), (503, {"Retry-After": "1"}, {"message": "busy"})]
    with _Scripted(small_data, tokens=[TOKEN], script=script) as gh:
        store = Store(tmp_path / "s.db")
        result = _collect(store, gh, client_options={"backoff": 0.05, "max_retries": 3})
    assert result.issues == 300 and canonical_dump(store) == want
    assert result.stats["faults"] == {"http-500": 1, "http-503": 1}
    assert gh.times[2] - gh.times[1] >= 0.95, "asked again before the 503's Retry-After"


def test_one_repository_given_as_a_string(server, tmp_path):
    """collect_repos(store, "owner/name") failed with "'s': not a repository" (its letters)."""
    result = collect_repos(Store(tmp_path / "s.db"), SGL, base_url=server.url, tokens=[TOKEN], limit=10)
    assert [r.repo for r in result.repos] == [SGL] and result.issues == 10


def test_retry_after_as_an_http_date_is_honoured(small_data, tmp_path):
    """RFC 9110 lets Retry-After be an HTTP-date; only seconds were read, so a 429 saying
    `Retry-After: <date 2 s ahead>` ended the crawl as "HTTP 429 forbidden"."""
    from email.utils import formatdate

    with FakeGitHub(small_data, tokens=[TOKEN]) as clean:
        want = canonical_dump(_fresh(clean, tmp_path / "clean.db"))
    when = formatdate(time.time() + 3, usegmt=True)  # whole seconds: 2-3 s ahead
    script = [(429, {"Retry-After": when}, {"message": "Too Many Requests"})]
    with _Scripted(small_data, tokens=[TOKEN], script=script) as gh:
        store = Store(tmp_path / "s.db")
        result = _collect(store, gh, client_options={"backoff": 0.05, "max_retries": 3,
                                                     "secondary_wait": 0.05})  # fmt: skip
    assert result.issues == 300 and canonical_dump(store) == want
    assert gh.times[1] - gh.times[0] >= 1.5, "asked again before the Retry-After date"


def test_a_429_without_retry_after_is_a_rate_limit_not_forbidden(small_data, tmp_path):
    """A 429 (Too Many Requests) with no Retry-After and no "rate limit" wording was reported
    as "HTTP 429 forbidden" and ended the crawl; it is waited out like a secondary limit, and
    when it never ends the message says rate-limited."""
    with FakeGitHub(small_data, tokens=[TOKEN]) as clean:
        want = canonical_dump(_fresh(clean, tmp_path / "clean.db"))
    script = [(429, {}, {"message": "Too Many Requests"}), (429, {}, None)]
    opts = {"backoff": 0.05, "max_retries": 3, "secondary_wait": 0.3}
    with _Scripted(small_data, tokens=[TOKEN], script=script) as gh:
        store = Store(tmp_path / "s.db")
        result = _collect(store, gh, client_options=opts)
    assert result.issues == 300 and canonical_dump(store) == want
    assert gh.times[1] - gh.times[0] >= 0.25 and gh.times[2] - gh.times[1] >= 0.55, "no back-off"
    with _Scripted(small_data, tokens=[TOKEN], script=[(429, {}, None)] * 5) as gh:
        with pytest.raises(GitHubError, match="rate-limited") as err:
            _collect(Store(tmp_path / "t.db"), gh, client_options={**opts, "secondary_wait": 0.01})
    assert "forbidden" not in str(err.value)
