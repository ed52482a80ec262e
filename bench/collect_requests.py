"""HTTP requests per 1,000 issues: bugatlas's bulk GraphQL crawl vs a per-issue REST crawler.

Both crawl the same local GitHub stand-in (bugatlas.collect.testing.FakeGitHub) serving the
shared corpus (2,997 issues of vLLM, llama.cpp, SGLang) with generated comments (each issue's
real comment count) and fixing / cross-referencing pull requests.

- bugatlas: ``collect_repos`` (issues pages of 100 with labels, reactions, comments, closing
  and cross-referencing PRs; follow-up comment pages only for issues with more than 100).
- baseline (Perceval / vllm-exp style REST): issues pages of 100, then for every issue its
  comments pages (only when it has comments: the baseline's best case) and its timeline page,
  then each linked pull request once (additions, deletions, changed files).

Run A caps comments at 100 per issue (the issue's target case); run B serves the corpus as is
(7 issues have 103-504 comments).

Re-run: .venv/bin/python bench/collect_requests.py [--corpus PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from bugatlas.collect import collect_repos
from bugatlas.collect.testing import FakeGitHub, load_corpus
from bugatlas.store import Store

REPOS = ["vllm-project/vllm", "ggml-org/llama.cpp", "sgl-project/sglang"]
TOKEN = "bench-token"
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "serving-issues-2025.jsonl.gz"


def rest_crawl(base_url: str) -> dict[str, int]:
    """A per-issue REST crawler: what Perceval and the vllm-exp scraper do."""
    http = httpx.Client(base_url=base_url, headers={"Authorization": f"token {TOKEN}"}, timeout=60)
    issues = comments = prs = 0

    def pages(path: str, params: dict) -> list:
        out, url, p = [], path, dict(params)
        while url:
            r = http.get(url, params=p)
            r.raise_for_status()
            out += r.json()
            nxt = r.links.get("next", {}).get("url")
            url, p = (nxt, None) if nxt else (None, None)
        return out

    for repo in REPOS:
        seen_prs: set[int] = set()
        for issue in pages(f"/repos/{repo}/issues", {"state": "all", "per_page": 100,
                                                      "sort": "updated", "direction": "asc"}):
            issues += 1
            if issue["comments"]:
                comments += len(pages(f"/repos/{repo}/issues/{issue['number']}/comments", {"per_page": 100}))
            for event in pages(f"/repos/{repo}/issues/{issue['number']}/timeline", {"per_page": 100}):
                src = (event.get("source") or {}).get("issue") or {}
                if event.get("event") == "cross-referenced" and src.get("pull_request"):
                    n = src["number"]
                    if n not in seen_prs:
                        seen_prs.add(n)
                        http.get(f"/repos/{repo}/pulls/{n}").raise_for_status()
                        prs += 1
    http.close()
    return {"issues": issues, "comments": comments, "pull_requests": prs}


def run(corpus: Path, max_comments: int | None, label: str) -> dict:
    data = load_corpus(corpus, max_comments=max_comments)
    n_issues, n_comments = data.count()
    # a budget no crawl exhausts: this counts requests; waiting out resets is not measured
    with FakeGitHub(data, tokens=[TOKEN], limit=10**7) as gh, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = Store(Path(tmp) / "bench.db")
        res = collect_repos(store, REPOS, base_url=gh.url, tokens=[TOKEN])
        t_gql = time.perf_counter() - t0
        gql = gh.stats.as_dict()
        stored_comments = store.conn.execute("SELECT COUNT(*) FROM comments").fetchone()[0]
        stored_fixes = store.conn.execute("SELECT COUNT(*) FROM issue_fixes").fetchone()[0]
        store.close()
        gh.reset_stats()
        t0 = time.perf_counter()
        rest = rest_crawl(gh.url)
        t_rest = time.perf_counter() - t0
        rst = gh.stats.as_dict()
    assert res.issues == rest["issues"] == n_issues
    assert stored_comments == rest["comments"] == n_comments
    per_k = lambda n: 1000 * n / n_issues  # noqa: E731
    return {"label": label, "issues": n_issues, "comments": n_comments, "fixes": stored_fixes,
            "gql_requests": gql["requests"], "gql_points": gql["points"], "gql_seconds": t_gql,
            "rest_requests": rst["requests"], "rest_seconds": t_rest,
            "gql_per_1000": per_k(gql["requests"]), "rest_per_1000": per_k(rst["requests"])}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = ap.parse_args()
    rows = [run(args.corpus, 100, "A: each issue <=100 comments"), run(args.corpus, None, "B: corpus as is")]
    print("| run | issues | comments | bugatlas requests | per 1,000 issues | GraphQL points | "
          "REST baseline requests | per 1,000 issues | ratio (REST / bugatlas) | time bugatlas / REST (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['issues']:,} | {r['comments']:,} | {r['gql_requests']} | "
              f"{r['gql_per_1000']:.1f} | {r['gql_points']} | {r['rest_requests']:,} | "
              f"{r['rest_per_1000']:,.0f} | {r['rest_requests'] / r['gql_requests']:.0f}x | "
              f"{r['gql_seconds']:.1f} / {r['rest_seconds']:.1f} |")


if __name__ == "__main__":
    main()
