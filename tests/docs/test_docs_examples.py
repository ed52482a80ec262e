"""The documentation as a new user meets it: the example outputs README.md and docs/ print as
real runs on the shared data are what the code prints, and the library names they give import."""

from __future__ import annotations

import gzip
import importlib
import io
import re
from pathlib import Path

import orjson
import pytest
from tests.conftest import CORPUS, REPO_ROOT

from bugatlas import Store
from bugatlas.store.records import Issue

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
DOCS = REPO_ROOT / "docs"


def _corpus(keys: set[tuple[str, int]]) -> list[dict]:
    with gzip.open(CORPUS, "rb") as fh:
        return [r for r in map(orjson.loads, fh) if (r["repo"], r["number"]) in keys]


def _json_lines(text: str, marker: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith(marker)]


def test_readme_filter_batch_example_is_what_filter_prints(shared_data: Path, tmp_path: Path) -> None:
    from bugatlas.filter import filter_file

    shown = _json_lines(README, '{"repo":"ggml-org/llama.cpp","number":8')
    assert len(shown) == 3
    path = tmp_path / "three.jsonl"
    records = _corpus({(r["repo"], r["number"]) for r in shown})
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    out = io.BytesIO()
    filter_file(path, out)
    assert [orjson.loads(line) for line in out.getvalue().splitlines()] == shown


def _classify_example(text: str) -> dict:
    block = text.split('{"repo":"ggml-org/llama.cpp","number":5023', 1)[1] if '"number":5023' in text \
        else text.split('{"repo": "ggml-org/llama.cpp", "number": 5023', 1)[1]
    block = block.split("```", 1)[0]
    labels = orjson.loads(re.search(r'"labels": ?(\{[^}]*\})', block).group(1))
    confidence = orjson.loads(re.search(r'"confidence": ?(\{[^}]*\})', block).group(1))
    source = orjson.loads(re.search(r'"source": ?(\{[^}]*\})', block).group(1))
    return {"labels": labels, "confidence": confidence,
            "source": {k: v for k, v in source.items() if k != "..."}}


@pytest.mark.parametrize("doc", ["README.md", "docs/classify.md"])
def test_classify_batch_example_is_what_classify_prints(shared_data: Path, tmp_path: Path, doc: str) -> None:
    """The documented line of `classify --input three.jsonl --background corpus` for llama.cpp#5023."""
    from typer.testing import CliRunner

    from bugatlas.cli import app

    shown = _classify_example((REPO_ROOT / doc).read_text(encoding="utf-8"))
    path = tmp_path / "three.jsonl"
    keys = {("ggml-org/llama.cpp", n) for n in (82, 84, 85, 5023)}
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in _corpus(keys)))
    out = tmp_path / "labels.jsonl"
    res = CliRunner().invoke(app, ["classify", "--taxonomy", "liu2025", "--input", str(path), "--output",
                                   str(out), "--background", str(CORPUS)])
    assert res.exit_code == 0, res.output
    got = [orjson.loads(line) for line in out.read_bytes().splitlines()][-1]
    assert got["number"] == 5023
    assert got["labels"] == shown["labels"]
    assert got["confidence"] == pytest.approx(shown["confidence"], abs=0.02)
    assert {k: got["source"][k] for k in shown["source"]} == shown["source"]


def test_diagnose_batch_record_has_the_documented_keys(tmp_path: Path) -> None:
    doc = (DOCS / "diagnose.md").read_text(encoding="utf-8")
    assert '"source": {"classifier": "diagnose-log"' in doc
    log = (REPO_ROOT / "tests" / "diagnose" / "logs" / "undefined_symbol.log").read_text()
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(orjson.dumps({"repo": "vllm-project/vllm", "number": 1,
                                  "body": f"```\n{log}\n```"}) + b"\n")
    from typer.testing import CliRunner

    from bugatlas.cli import app

    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["diagnose", "--batch", "--input", str(inp), "--output", str(out)])
    assert res.exit_code == 0, res.output
    rec = orjson.loads(out.read_bytes().splitlines()[0])
    assert set(rec) == {"repo", "number", "taxonomy", "labels", "confidence", "evidence", "source",
                        "has_log", "signature"}
    assert rec["source"]["classifier"] == "diagnose-log"
    assert set(rec["labels"]) == {"symptom", "unexpected_output", "root_cause_group", "root_cause"}
    assert rec["labels"]["root_cause"] == ["Incompatible Version"]


def test_readme_library_names_import() -> None:
    """Names README gives as library entry points exist where it says they are."""
    m = re.search(r"Library: `bugatlas\.annotate` \(([^)]*)\)", README)
    assert m
    for name in re.findall(r"`([\w.]+)`", m.group(1)):
        module, _, attr = name.rpartition(".")
        assert hasattr(importlib.import_module(module or "bugatlas.annotate"), attr), name


def test_preflight_retro_counts_quoted_in_docs(shared_data: Path, tmp_path: Path) -> None:
    from bugatlas.preflight.retro import scan_store

    doc = (DOCS / "preflight.md").read_text(encoding="utf-8")
    quoted = re.search(r"(\d[\d,]*) issues · (\d+) paste a launch command · (\d+) parsed · (\d+) with a "
                       r"known model shape", doc)
    with Store(tmp_path / "s.db") as store:
        with gzip.open(CORPUS, "rb") as fh:
            store.upsert_issues(Issue(repo=r["repo"], number=r["number"], title=r["title"], body=r["body"],
                                      labels=r["labels"], state=r["state"]) for r in map(orjson.loads, fh))
        d = scan_store(store).to_dict()
    got = (d["issues_scanned"], d["with_command"], d["parsed"], d["with_known_model"])
    assert tuple(int(x.replace(",", "")) for x in quoted.groups()) == got


def test_analyze_doc_study_file_options_are_accepted_by_the_stages() -> None:
    """Every option of the study-file example in docs/analyze.md is one its stage function takes
    (the runner refuses unknown ones: `classify: {classifier: rules}` stopped the run)."""
    import inspect

    import yaml

    from bugatlas.classify import classify_store
    from bugatlas.collect import collect_repos
    from bugatlas.filter import filter_store

    doc = (DOCS / "analyze.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\nname: liu2025-engines", 1)[1].split("```", 1)[0]
    study = yaml.safe_load("name: liu2025-engines" + block.replace("${shared_data}", "x"))
    for fn, opts in ((classify_store, study["classify"]), (filter_store, study["filter"]),
                     (collect_repos, {k: v for k, v in study["sources"]["collect"].items() if k != "repos"})):
        params = inspect.signature(fn).parameters
        assert set(opts) <= set(params), (fn.__name__, set(opts) - set(params))
