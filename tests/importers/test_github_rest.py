"""GitHub REST issue objects as the API returns them (a JSON list, gzipped JSONL)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bugatlas import BadInputError, Store, import_paths


def _rest_issue(n: int, *, pr: bool = False) -> dict:
    issue = {
        "url": f"https://api.github.com/repos/NVIDIA/TensorRT-LLM/issues/{n}",
        "repository_url": "https://api.github.com/repos/NVIDIA/TensorRT-LLM",
        "html_url": f"https://github.com/NVIDIA/TensorRT-LLM/issues/{n}",
        "number": n,
        "title": f"[Bug] crash {n}",
        "body": "Traceback (most recent call last):\n  ...\nRuntimeError: CUDA error",
        "state": "open",
        "user": {"login": "alice", "id": 1},
        "labels": [{"id": 7, "name": "bug", "color": "d73a4a"}, {"id": 8, "name": "triaged"}],
        "comments": 3,
        "author_association": "NONE",
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-02T10:00:00Z",
        "closed_at": None,
        "reactions": {"total_count": 0},
    }
    if pr:
        issue["pull_request"] = {"url": f"https://api.github.com/repos/NVIDIA/TensorRT-LLM/pulls/{n}"}
    return issue


def test_rest_json_list_and_gz_jsonl(tmp_path: Path) -> None:
    listing = tmp_path / "issues.json"
    listing.write_text(json.dumps([_rest_issue(1), _rest_issue(2, pr=True)]), encoding="utf-8")
    lines = tmp_path / "more.jsonl.gz"
    with gzip.open(lines, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(_rest_issue(3)) + "\n")
    with Store(tmp_path / "s.db") as store:
        results = import_paths(store, [listing, lines], progress=False)
        assert [r.format for r in results] == ["github", "github"]
        issue = store.get_issue("nvidia/tensorrt-llm", 1)
        assert issue.labels == ["bug", "triaged"] and issue.author == "alice"
        assert issue.comments_count == 3 and not issue.is_pull_request
        assert store.get_issue("nvidia/tensorrt-llm", 2).is_pull_request


def test_unknown_format_and_forced_format(tmp_path: Path) -> None:
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps([{"hello": "world"}]), encoding="utf-8")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(BadInputError, match=r"odd\.json: unknown format"):
            import_paths(store, [odd], progress=False)
        with pytest.raises(BadInputError, match=r"odd\.json: record 1: no repository"):
            import_paths(store, [odd], fmt="github", progress=False)
        with pytest.raises(BadInputError, match="--format: unknown format 'xml'"):
            import_paths(store, [odd], fmt="xml", progress=False)
        with pytest.raises(BadInputError, match="no such file"):
            import_paths(store, [tmp_path / "missing.json"], progress=False)


def test_liu_csv_with_bad_row_and_missing_column(tmp_path: Path) -> None:
    header = "URL,repo,Phase,Symptom(s),Unexpected Tokens,Component,Root Cause(s)\n"
    bad_row = tmp_path / "liu.csv"
    bad_row.write_text(header + "https://example.com/x,vllm,Engine Setup,Crash,,Setup Tools,Misconfiguration\n")
    no_col = tmp_path / "liu2.csv"
    no_col.write_text("URL,repo,Phase,Symptom(s),Component\nx,y,z,w,v\n")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(BadInputError, match=r"liu\.csv: line 2: column URL: not a GitHub issue link"):
            import_paths(store, [bad_row], progress=False)
        with pytest.raises(BadInputError, match=r"liu2\.csv: line 1: missing column\(s\) Root Cause\(s\)"):
            import_paths(store, [no_col], fmt="liu2025", progress=False)
        assert store.count_issues() == 0
