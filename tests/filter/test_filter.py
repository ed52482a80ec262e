"""The failure filter on real issues of the shared corpus: rules, text preparation, classifier,
batch interface and store writes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import CORPUS

from bugatlas.errors import BadInputError
from bugatlas.filter import (
    IssueKindModel,
    ModelParams,
    body_headings,
    cross_validate,
    gold_set,
    judge,
    load_model,
    load_rules,
    strip_template_prefix,
)
from bugatlas.filter.pipeline import _labels, filter_file, filter_store


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> list[dict]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        recs = [json.loads(l) for l in f]
    for r in recs:
        r["labels"] = _labels(r["labels"])
    return recs


def test_template_prefixes_are_stripped_from_real_titles(corpus: list[dict]) -> None:
    prefixed = [r["title"] for r in corpus if r["title"].lstrip().startswith(("[Bug]", "[Feature]", "[Usage]", "Bug:", "[Misc]"))]
    assert len(prefixed) > 800
    for t in prefixed:
        s = strip_template_prefix(t)
        assert not s.lower().startswith(("[bug]", "[feature]", "[usage]", "bug:", "[misc]")), t
    assert strip_template_prefix("[Bug]: vLLM crashes with CUDA graphs") == "vLLM crashes with CUDA graphs"
    assert strip_template_prefix("🐛 [BUG] - server hangs") == "server hangs"
    # Error names at the start of a title are content, not a template prefix.
    assert strip_template_prefix("ValueError: bad shape") == "ValueError: bad shape"


def test_llama_cpp_bug_form_prefixes_are_stripped_from_real_titles(corpus: list[dict]) -> None:
    """llama.cpp's bug forms title a report "Eval bug: …", "Compile bug: …", "Misc. bug: …" and
    label it bug-unconfirmed (the gold kind): the prefix is the template, kept it leaked it."""
    forms = ("Eval bug:", "Compile bug:", "Misc. bug:")
    prefixed = [r["title"] for r in corpus if r["repo"] == "ggml-org/llama.cpp" and r["title"].startswith(forms)]
    assert len(prefixed) > 100
    for t in prefixed:
        assert not strip_template_prefix(t).lower().startswith(("eval bug", "compile bug", "misc. bug")), t
    assert strip_template_prefix("Eval bug: Gemma 3 outputs garbage") == "Gemma 3 outputs garbage"
    assert strip_template_prefix("Bug in the sampler") == "Bug in the sampler"  # content, not a form


def test_body_template_headings_are_read(corpus: list[dict]) -> None:
    vllm_bug = next(r for r in corpus if r["repo"] == "vllm-project/vllm" and "bug" in r["labels"]
                    and "Describe the bug" in (r["body"] or ""))  # fmt: skip
    heads = body_headings(vllm_bug["body"])
    assert "describe the bug" in heads and "your current environment" in heads


def test_rules_yu_keywords_and_liu_labels(corpus: list[dict]) -> None:
    yu = load_rules("yu2026")
    assert len(yu.terms) == 14
    r = yu.check("Model fails to load", "It crashed with errors", [], "open")
    assert r.passed and r.keywords == ["fail", "crash", "error"]
    assert not yu.check("Add support for Gemma", "It would be nice", [], "open").passed
    liu = load_rules("liu2025")
    assert liu.check("x", "", ["bug"], "closed").passed
    res = liu.check("x", "", ["bug"], "open")
    assert not res.passed and "state open" in res.reasons[0]
    passed = sum(yu.check(i["title"], i["body"], i["labels"], i["state"]).passed for i in corpus)
    assert 0.5 * len(corpus) < passed < len(corpus)


def test_bad_rules_file_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("keywords: {terms: error}\nlabels: {require_any: [1, 2]}\n")
    with pytest.raises(BadInputError, match="r.yaml.*require_any"):
        load_rules(f)
    with pytest.raises(BadInputError, match="unknown filter rules 'nope'"):
        load_rules("nope")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("keywords: {terms: [défaut]}\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"latin1\.yaml: cannot read the rules file"):
        load_rules(latin1)
    f.write_text("keywords: {terms: [error], required: maybe}\n")
    with pytest.raises(BadInputError, match="keywords.required must be true or false, not 'maybe'"):
        load_rules(f)
    f.write_text("keywords: {terms: [error], required: true}\n")
    assert load_rules(f).keywords_required is True


@pytest.mark.parametrize(("text", "key"), [
    ("keywords: {terms: [error]}\nstate: [closed]\n", "'state'"),
    ("labels: {require: [bug]}\n", "labels.'require'"),
    ("keywords: {term: [error], required: true}\n", "keywords.'term'"),
])  # fmt: skip
def test_misspelt_rules_key_is_an_error_not_ignored(tmp_path: Path, text: str, key: str) -> None:
    """`state: [closed]` for `states:` was silently ignored: every state passed."""
    f = tmp_path / "r.yaml"
    f.write_text(text)
    with pytest.raises(BadInputError, match=f"r.yaml: unknown key {key}"):
        load_rules(f)
    for name in ("default", "yu2026", "liu2025"):  # the shipped rules use only known keys
        load_rules(name)


def _small_gold(corpus: list[dict], per_repo: int = 400):
    seen: dict[str, int] = {}
    picked = []
    for r in corpus:
        if seen.get(r["repo"], 0) < per_repo:
            seen[r["repo"]] = seen.get(r["repo"], 0) + 1
            picked.append(r)
    return gold_set(picked, kinds=["failure", "feature", "question"])


def test_classifier_learns_and_beats_majority_by_cv(corpus: list[dict]) -> None:
    gold = _small_gold(corpus)
    assert len(gold) > 300
    res = cross_validate(gold, grid=[ModelParams(classifier="logreg", C=10.0)], folds=3)
    assert res["model"].macro_f1 > res["majority"].macro_f1 + 0.4
    assert res["model"].per_class["failure"].f1 > 0.85
    assert set(res["model"].confusion) == {"failure", "feature", "question"}


def test_model_round_trip_and_labels_never_used(corpus: list[dict], tmp_path: Path) -> None:
    gold = _small_gold(corpus, 250)
    m = IssueKindModel.train(gold.titles, gold.bodies, gold.kinds, ModelParams(classifier="logreg", C=10.0))
    path = m.save(tmp_path / "m.pkl.gz")
    m2 = IssueKindModel.load(path)
    p1 = m.predict(gold.titles[:20], gold.bodies[:20])
    p2 = m2.predict(gold.titles[:20], gold.bodies[:20])
    assert [p.kind for p in p1] == [p.kind for p in p2]
    issue = dict(corpus[5])
    a = next(judge([{**issue, "labels": ["bug"]}], model=m2))
    b = next(judge([{**issue, "labels": ["enhancement", "question"]}], model=m2))
    assert (a.kind, a.confidence) == (b.kind, b.confidence)  # maintainers' labels are not an input
    assert a.maintainer_kind == "failure" and b.maintainer_kind is None
    (tmp_path / "bad.pkl.gz").write_bytes(b"not a model")
    with pytest.raises(Exception, match="bad.pkl.gz"):
        IssueKindModel.load(tmp_path / "bad.pkl.gz")


def test_shipped_model_judges_real_reports(corpus: list[dict]) -> None:
    model = load_model()
    assert {"failure", "feature", "question", "documentation"} <= set(model.classes)
    crash = {"repo": "x/y", "number": 1, "title": "[Bug]: CUDA error: an illegal memory access was encountered",
             "body": "### Your current environment\n...\n### 🐛 Describe the bug\nTraceback (most recent call last):\nRuntimeError: CUDA error"}  # fmt: skip
    feat = {"repo": "x/y", "number": 2, "title": "[Feature]: support for Gemma 3",
            "body": "### 🚀 The feature, motivation and pitch\nPlease add support for the new model.\n### Alternatives\n"}  # fmt: skip
    got = {k.number: k for k in judge([crash, feat], model=model)}
    assert got[1].kind == "failure" and got[1].confidence > 0.5
    assert got[2].kind == "feature"
    assert 0.99 < sum(got[1].probabilities.values()) < 1.01


def bugatlas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True, text=True, timeout=300)


def test_batch_interface_on_real_issues(corpus: list[dict], tmp_path: Path) -> None:
    inp = tmp_path / "issues.jsonl"
    with inp.open("w") as f:
        for r in corpus[:150]:
            f.write(json.dumps(r) + "\n")
    out = tmp_path / "kinds.jsonl"
    res = bugatlas("filter", "--input", str(inp), "--output", str(out), "--json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(rows) == 150
    assert all(set(r) == {"repo", "number", "kind", "confidence"} for r in rows)
    assert {r["kind"] for r in rows} <= {"failure", "feature", "question", "documentation", "other"}
    assert all(0 < r["confidence"] <= 1 for r in rows)
    assert json.loads(res.stdout)["issues"] == 150
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"repo": "a/b", "number": 1}\n{oops\n')
    res = bugatlas("filter", "--input", str(bad), "--output", str(tmp_path / "o.jsonl"))
    assert res.returncode == 2 and "bad.jsonl: line 2: invalid JSON" in res.stderr


def test_store_filter_writes_kinds_view_and_labels(corpus_store) -> None:
    s1 = filter_store(corpus_store, repos=["sgl-project/sglang"])
    assert s1["judged"] == 813 and sum(s1["kinds"].values()) == 813
    rows = corpus_store.query("SELECT kind, COUNT(*) AS n FROM issue_kinds GROUP BY kind")
    assert sum(r["n"] for r in rows) == 813
    fr = corpus_store.query("SELECT COUNT(*) AS n FROM failure_reports")[0]["n"]
    assert 0 < fr <= s1["kinds"]["failure"]
    # the summary gives the view's count: the rules' count also holds non-failures they keep
    assert s1["failure_reports"] == fr and s1["rule_pass"] >= fr
    labels = list(corpus_store.iter_labels("issue-kind", source_kind="model"))
    assert len(labels) == 813 and all(l.confidence is not None and l.evidence for l in labels)
    # Resumes: a second run judges nothing new; --redo judges again without duplicating labels.
    assert filter_store(corpus_store, repos=["sgl-project/sglang"])["judged"] == 0
    # skipped counts the selected repository's issues, not every issue judged before
    again = filter_store(corpus_store, repos=["vllm-project/vllm"])
    assert (again["judged"], again["skipped_already_judged"]) == (1067, 0)
    assert filter_store(corpus_store, repos=["sgl-project/sglang"])["skipped_already_judged"] == 813
    filter_store(corpus_store, repos=["sgl-project/sglang"], redo=True)
    assert len(list(corpus_store.iter_labels("issue-kind", source_kind="model"))) == 813 + 1067



def test_store_filter_with_edited_rules_of_the_same_name_judges_again(corpus_store, tmp_path: Path) -> None:
    """The rules file says: copy default.yaml, edit it, pass it with --rules. The copy keeps
    `name: default`; its rules must apply, not be skipped as already judged."""
    from bugatlas.filter.rules import STUDIES_DIR

    filter_store(corpus_store, repos=["sgl-project/sglang"])
    mine = tmp_path / "mine.yaml"
    mine.write_text((STUDIES_DIR / "default.yaml").read_text().replace("states: []", "states: [closed]"))
    assert load_rules(mine).name == "default"
    again = filter_store(corpus_store, repos=["sgl-project/sglang"], rules=str(mine))
    assert (again["judged"], again["skipped_already_judged"]) == (813, 0)
    open_reports = corpus_store.query("SELECT COUNT(*) AS n FROM failure_reports WHERE state != 'closed'")[0]["n"]
    assert open_reports == 0 and again["failure_reports"] > 0
    assert filter_store(corpus_store, repos=["sgl-project/sglang"], rules=str(mine))["judged"] == 0


def test_store_filter_with_a_new_model_replaces_the_old_models_labels(corpus_store, tmp_path: Path) -> None:
    import shutil

    from bugatlas.filter.model import DEFAULT_MODEL

    filter_store(corpus_store, repos=["sgl-project/sglang"])
    retrained = tmp_path / ("retrained" + "".join(DEFAULT_MODEL.suffixes))
    shutil.copy(DEFAULT_MODEL, retrained)  # another model file: another model id
    assert filter_store(corpus_store, repos=["sgl-project/sglang"], model_path=retrained)["judged"] == 813
    labels = list(corpus_store.iter_labels("issue-kind", source_kind="model"))
    assert len(labels) == 813 and {lab.source for lab in labels} == {f"filter:retrained@{labels[0].source.split('@')[1]}"}


def test_eval_cli_reports_per_class_and_majority(corpus: list[dict], tmp_path: Path) -> None:
    inp = tmp_path / "issues.jsonl"
    with inp.open("w") as f:
        for r in corpus:
            if r["repo"] == "vllm-project/vllm":
                f.write(json.dumps(r) + "\n")
    res = bugatlas("filter", "eval", "--corpus", str(inp), "--folds", "3", "--kind", "failure",
                   "--kind", "feature", "--kind", "question", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert set(rep["classes"]) == {"failure", "feature", "question"} and rep["strip_prefixes"] is True
    assert rep["model"]["macro_f1"] > rep["majority"]["macro_f1"] + 0.4
    assert set(rep["model"]["per_class"]["question"]) == {"precision", "recall", "f1", "support"}
    assert 0 <= rep["model"]["ece"] < 0.3 and 0 < rep["model"]["brier"] < 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("number", "12a", "field 'number': expected a positive integer, got '12a'"),
    ("title", 5, "field 'title': expected a string, got int"),
    ("labels", 3, "field 'labels': expected a list of names, got int"),
])  # fmt: skip
def test_batch_bad_field_is_one_line_and_leaves_the_previous_output(corpus: list[dict], tmp_path: Path,
                                                                   field: str, value, message: str) -> None:
    out = tmp_path / "kinds.jsonl"
    out.write_text("previous result\n")
    inp = tmp_path / "issues.jsonl"
    recs = [dict(r) for r in corpus[:700]]
    recs[599][field] = value  # after the first batch of 512 was judged and written
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = bugatlas("filter", "--input", str(inp), "--output", str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"--input: {inp}: line 600: {message}" in res.stderr
    assert out.read_text() == "previous result\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "issues.jsonl", "kinds.jsonl"]
    res = bugatlas("filter", "--input", str(inp), "--output", str(tmp_path / "missing" / "k.jsonl"))
    assert res.returncode == 2 and "--output: " in res.stderr and "cannot write" in res.stderr


def test_store_filter_leaves_pull_requests_out_of_failure_reports(corpus: list[dict], tmp_path: Path) -> None:
    from bugatlas import Store, import_paths

    rest = []
    for r in corpus[:40]:  # GitHub's REST /issues answer: issues and pull requests together
        rest.append({"url": f"https://api.github.com/repos/{r['repo']}/issues/{r['number']}",
                     "html_url": r["html_url"], "number": r["number"], "title": r["title"], "body": r["body"],
                     "state": r["state"], "labels": [{"name": n} for n in r["labels"]]})  # fmt: skip
    failures = [r for r in corpus if "bug" in r["labels"] and "error" in (r["body"] or "").lower()][:5]
    for i, r in enumerate(failures):  # the text of real failure reports, posted as pull requests
        rest.append({"url": f"https://api.github.com/repos/{r['repo']}/issues/{900_000 + i}",
                     "html_url": f"https://github.com/{r['repo']}/pull/{900_000 + i}", "number": 900_000 + i,
                     "title": r["title"], "body": r["body"], "state": "closed", "labels": [],
                     "pull_request": {"url": "https://api.github.com/repos/x/y/pulls/1"}})  # fmt: skip
    dump = tmp_path / "rest.json"
    dump.write_text(json.dumps(rest))
    with Store(tmp_path / "s.db") as store:
        import_paths(store, [dump], progress=False)
        summary = filter_store(store)
        assert summary["judged"] == 40
        judged = {r["number"] for r in store.query("SELECT number FROM issue_kinds")}
        assert judged and all(n < 900_000 for n in judged)
        assert not store.query("SELECT 1 FROM failure_reports WHERE is_pull_request = 1")


def test_eval_and_train_on_too_few_or_one_kind_are_one_line(corpus: list[dict], tmp_path: Path) -> None:
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps(r) + "\n" for r in corpus[:5]))
    res = bugatlas("filter", "eval", "--corpus", str(few))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "few.jsonl: cannot cross-validate 3 issues of kinds" in res.stderr
    one_kind = tmp_path / "bugs.jsonl"
    bugs = [r for r in corpus if r["labels"] == ["bug"]][:30]
    one_kind.write_text("".join(json.dumps(r) + "\n" for r in bugs))
    for cmd in (["eval"], ["train", "--output", str(tmp_path / "m.pkl.xz")]):
        res = bugatlas("filter", *cmd, "--corpus", str(one_kind))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert "bugs.jsonl: cannot cross-validate 30 issues of kinds {'failure': 30}" in res.stderr


def test_batch_empty_input_is_one_line_and_leaves_the_previous_output(tmp_path: Path) -> None:
    """An empty file (or empty .gz, or `[]`) wrote an empty output and "0 issues" as if all were well."""
    out = tmp_path / "kinds.jsonl"
    out.write_text("previous result\n")
    for name, data in (("e.jsonl", b""), ("e.jsonl.gz", gzip.compress(b"")), ("e.json", b"[]")):
        inp = tmp_path / name
        inp.write_bytes(data)
        res = bugatlas("filter", "--input", str(inp), "--output", str(out))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert f"--input: {inp}: no issues in the file (empty)" in res.stderr
        assert out.read_text() == "previous result\n"


def test_batch_number_given_as_digits_is_read(tmp_path: Path) -> None:
    from bugatlas.filter.pipeline import read_jsonl

    inp = tmp_path / "issues.jsonl"
    inp.write_text(json.dumps({"repo": "a/b", "number": "12", "title": "crash"}) + "\n")
    assert [r["number"] for r in read_jsonl(inp)] == ["12"]


def test_an_issue_with_no_title_or_body_is_other(tmp_path: Path) -> None:
    """The model's base rate judged an empty issue a feature request (0.48); nothing was reported."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"repo": "a/b", "number": 1, "title": " ", "body": null}\n'
                   '{"repo": "a/b", "number": 2, "title": "Segmentation fault when loading a GGUF model"}\n')
    with (tmp_path / "out.jsonl").open("wb") as out:
        filter_file(src, out)
    empty, titled = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert (empty["kind"], empty["confidence"]) == ("other", 1.0)
    assert titled["kind"] == "failure"
