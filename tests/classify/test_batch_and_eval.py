"""The batch format (shared with diagnose) and the agreement metrics."""

from __future__ import annotations

import re

import pytest
from sklearn.metrics import cohen_kappa_score

from bugatlas.classify import read_issues, read_label_records, taxonomy_spec, write_label_records
from bugatlas.classify.batch import LabelRecord
from bugatlas.classify.evaluate import (
    ABSTAIN,
    cohen_kappa,
    evaluate,
    learning_curve,
    lowest_threshold,
)
from bugatlas.errors import BadInputError


def test_read_issues_real_corpus_lines(corpus_records, write_jsonl) -> None:
    recs = [corpus_records[("vllm-project/vllm", n)] for n in sorted(
        n for r, n in corpus_records if r == "vllm-project/vllm")[:5]]
    issues = list(read_issues(write_jsonl(recs)))
    assert [i.number for i in issues] == [r["number"] for r in recs]
    assert issues[0].title == recs[0]["title"] and issues[0].labels == recs[0]["labels"]


def test_batch_input_with_a_bom_or_as_one_json_array(corpus_records, tmp_path) -> None:
    """Windows editors save JSON Lines with a byte order mark, and a saved GitHub API response
    is one JSON array: both read as the same issues (both were errors on line 1)."""
    import gzip
    import json

    from bugatlas.filter.pipeline import read_jsonl

    recs = [corpus_records[k] for k in sorted(corpus_records)[:4]]
    bom = tmp_path / "bom.jsonl"
    bom.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8-sig")
    array = tmp_path / "api.json.gz"
    with gzip.open(array, "wt", encoding="utf-8") as fh:
        json.dump(recs, fh, indent=2)
    want = [(r["repo"], r["number"], r["title"]) for r in recs]
    for path in (bom, array):
        assert [(i.repo, i.number, i.title) for i in read_issues(path)] == want
        assert [(r["repo"], r["number"]) for r in read_jsonl(path)] == [w[:2] for w in want]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([recs[0], {"repo": "a/b", "title": "no number"}]))
    with pytest.raises(BadInputError, match=r"bad.json: record 2: missing field 'number'"):
        list(read_issues(bad))
    bad.write_text("[" + json.dumps(recs[0]) + ",")
    with pytest.raises(BadInputError, match=r"bad.json: invalid JSON array"):
        list(read_issues(bad))


def test_read_issues_names_the_bad_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"repo": "a/b", "number": 1, "title": "x"}\n{oops\n')
    with pytest.raises(BadInputError, match=r"bad.jsonl: line 2: invalid JSON"):
        list(read_issues(path))
    path.write_text('{"repo": "a/b", "title": "x"}\n')
    with pytest.raises(BadInputError, match=r"line 1: missing field 'number'"):
        list(read_issues(path))
    path.write_text('{"repo": "a/b", "number": 1, "title": "x"}\n{"repo": "a/b", "number": "x1"}\n')
    with pytest.raises(BadInputError, match=r"line 2: field 'number' is not an integer: 'x1'"):
        list(read_issues(path))


def test_batch_input_labels_of_a_wrong_type_a_boolean_number_or_no_issues_are_one_line(tmp_path) -> None:
    """`"labels": 3` was a TypeError traceback, `"number": true` was read as issue 1, and an
    empty file (or an empty .gz) wrote an empty output as if all were well."""
    import gzip
    import subprocess
    import sys

    path = tmp_path / "in.jsonl"
    path.write_text('{"repo": "a/b", "number": 1, "title": "crash"}\n{"repo": "a/b", "number": 2, "labels": 3}\n')
    with pytest.raises(BadInputError, match=r"in.jsonl: line 2: field 'labels': expected a list of names, got int"):
        list(read_issues(path))
    path.write_text('{"repo": "a/b", "number": true, "title": "crash"}\n')
    with pytest.raises(BadInputError, match=r"in.jsonl: line 1: field 'number' is not an integer: True"):
        list(read_issues(path))
    empty_gz = tmp_path / "empty.jsonl.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    out = tmp_path / "labels.jsonl"
    out.write_text("previous\n")
    for empty in (empty_gz, tmp_path / "empty.jsonl"):
        empty.touch()
        res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "classify", "--taxonomy", "yu2026", "--input",
                              str(empty), "--output", str(out)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert f"{empty}: no issues in the file (empty)" in res.stderr
        assert out.read_text() == "previous\n"


def test_label_records_round_trip_single_and_multi(tmp_path) -> None:
    rec = LabelRecord(repo="vllm-project/vllm", number=7, taxonomy="liu2025",
                      labels={"symptom": ["Crash"], "phase": ["Engine Setup"], "root_cause": []},
                      confidence={"symptom": 0.9, "phase": 0.5})
    path = tmp_path / "labels.jsonl"
    write_label_records(path, [rec], single_valued=["phase"])
    text = path.read_text()
    assert '"phase":"Engine Setup"' in text and '"symptom":["Crash"]' in text
    back = read_label_records(path, taxonomy="liu2025")[0]
    assert back.labels == {"symptom": ["Crash"], "phase": ["Engine Setup"], "root_cause": []}
    assert back.confidence["symptom"] == 0.9
    with pytest.raises(BadInputError, match="taxonomy 'liu2025', expected 'yu2026'"):
        read_label_records(path, taxonomy="yu2026")


@pytest.mark.parametrize("line, message", [
    ('{"repo": "a/b", "number": "abc", "labels": {}}', "field 'number' is not an integer: 'abc'"),
    ('{"repo": "a/b", "number": null, "labels": {}}', "field 'number' is not an integer: None"),
    ('{"repo": 5, "number": 1, "labels": {}}', "field 'repo' is not a string: 5"),
    ('{"repo": "a/b", "number": 1, "labels": {}, "confidence": [0.9]}', "'confidence' must be an object"),
    ('{"repo": "a/b", "number": 1, "labels": {}, "confidence": {"symptom": "high"}}', "'confidence' must be"),
])
def test_label_records_bad_fields_name_file_and_line(tmp_path, line, message) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text('{"repo": "a/b", "number": 2, "labels": {"symptom": "Crash"}}\n' + line + "\n")
    with pytest.raises(BadInputError, match=rf"gold.jsonl: line 2: {re.escape(message)}"):
        read_label_records(path)


def test_kappa_matches_sklearn() -> None:
    a = ["Crash", "Crash", "Hang", "Crash", "Slow", "Hang", "Crash", "Slow"]
    b = ["Crash", "Hang", "Hang", "Crash", "Slow", "Crash", "Crash", ABSTAIN]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_evaluate_levels_multilabel_abstention_and_majority() -> None:
    spec = taxonomy_spec("liu2025")
    gold = {
        ("r/x", 1): {"symptom": ["Crash"], "root_cause": ["Incompatible Version", "Misconfiguration"]},
        ("r/x", 2): {"symptom": ["Crash"], "root_cause": ["Incorrect Algorithm Implementation"]},
        ("r/x", 3): {"symptom": ["System Hang"], "root_cause": ["Concurrency Issue"]},
        ("r/x", 4): {"symptom": ["Unexpected Output"], "root_cause_group": ["Functionality"]},
    }
    pred = {
        ("r/x", 1): {"symptom": ["Crash"], "root_cause": ["Misconfiguration"]},  # either gold cause is right
        ("r/x", 2): {"symptom": ["Crash"], "root_cause": ["Misused API"]},       # wrong leaf, right group
        ("r/x", 3): {"symptom": [], "root_cause": ["Concurrency Issue"]},         # abstained on symptom
        ("r/x", 4): {"symptom": ["Unexpected Output"], "root_cause": ["Numerical Issue"]},
    }
    rep = evaluate(spec, gold, pred)
    sym, leaf, grp = (rep.dimensions[d] for d in ("symptom", "root_cause", "root_cause_group"))
    assert sym.accuracy == 0.75 and sym.coverage == 0.75 and sym.accuracy_covered == 1.0
    assert sym.majority_label == "Crash" and sym.majority_accuracy == 0.5
    assert leaf.n == 3 and leaf.accuracy == pytest.approx(2 / 3, abs=1e-3)
    # groups come from the leaves on both sides: Environment|Configuration vs Configuration, ...
    assert grp.n == 4 and grp.accuracy == 1.0 and grp.kappa == 1.0
    cm = dict(zip(sym.labels, sym.confusion, strict=True))
    assert cm["System Hang"][-1] == 1  # the abstention is in the (none) column


def test_learning_curve_improves_with_labels() -> None:
    spec = taxonomy_spec("liu2025")
    items = list(range(60))
    gold = [{"symptom": ["Crash" if i % 3 else "System Hang"]} for i in items]

    def fit_predict(train, train_gold, test):  # a learner that memorises the rule once it saw both classes
        seen = {g["symptom"][0] for g in train_gold}
        return [{"symptom": ["Crash" if (i % 3 or len(seen) < 2) else "System Hang"]} for i in test]

    rows = learning_curve(spec, items, gold, fit_predict, sizes=[1, 40], folds=3)
    assert [r["n"] for r in rows] == [1, 40]
    assert rows[0]["symptom"] == 0.0 and rows[1]["symptom"] == 1.0


def test_agreement_by_confidence_hand_computed() -> None:
    """Four issues, confidences 0.95/0.85/0.55/0.35: the two most confident are right, the
    others wrong, so raising the threshold trades coverage for agreement."""
    spec = taxonomy_spec("liu2025")
    gold = {("r/x", i): {"symptom": [s]} for i, s in enumerate(
        ["Crash", "System Hang", "Crash", "Abnormal Performance"], start=1)}
    pred = {("r/x", 1): {"symptom": ["Crash"]}, ("r/x", 2): {"symptom": ["System Hang"]},
            ("r/x", 3): {"symptom": ["System Hang"]}, ("r/x", 4): {"symptom": ["Crash"]}}
    conf = {("r/x", 1): {"symptom": 0.95}, ("r/x", 2): {"symptom": 0.85},
            ("r/x", 3): {"symptom": 0.55}, ("r/x", 4): {"symptom": 0.35}}
    report = evaluate(spec, gold, pred, confidence=conf)
    rows = {r["threshold"]: r for r in report.by_confidence["symptom"]}
    assert (rows[0.0]["coverage"], rows[0.0]["accuracy"]) == (1.0, 0.5)
    assert (rows[0.5]["n"], rows[0.5]["coverage"], rows[0.5]["accuracy"]) == (3, 0.75, pytest.approx(2 / 3, abs=1e-4))
    assert (rows[0.8]["n"], rows[0.8]["accuracy"], rows[0.8]["kappa"]) == (2, 1.0, 1.0)
    assert rows[0.9]["n"] == 1 and rows[0.9]["coverage"] == 0.25
    assert lowest_threshold(report.by_confidence["symptom"], "kappa", 0.8)["threshold"] == 0.6  # 0.55 falls below it
    assert evaluate(spec, gold, pred).by_confidence == {}  # no confidences given: no table


def test_eval_cli_confusion_of_an_unknown_dimension_is_an_error(tmp_path) -> None:
    """A typo in --confusion printed nothing and exited 0; it names the option and the
    codebook's dimensions. A known dimension without gold labels says so."""
    import subprocess
    import sys

    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold.write_text('{"repo": "a/b", "number": 1, "labels": {"symptom": ["Crash"]}}\n')
    pred.write_text('{"repo": "a/b", "number": 1, "labels": {"symptom": ["Crash"]}, "confidence": {"symptom": 0.9}}\n')

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bugatlas.cli", "eval", "-t", "liu2025", "--gold", str(gold),
                               "--pred", str(pred), *args], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)

    res = cli("--confusion", "symptm")
    assert res.returncode == 2 and "--confusion: liu2025 has no dimension 'symptm'" in res.stderr, res.stderr
    res = cli("--confusion", "component")
    assert res.returncode == 0 and "--confusion component: no issue has gold labels" in res.stderr, res.stderr
    res = cli("--confusion", "symptom")
    assert res.returncode == 0 and "symptom: gold \\ predicted" in res.stdout


def test_label_writer_replaces_the_output_only_when_complete(tmp_path) -> None:
    from bugatlas.classify.batch import LabelWriter

    rec = LabelRecord(repo="a/b", number=1, taxonomy="liu2025", labels={"symptom": ["Crash"]})
    for name in ("labels.jsonl", "labels.jsonl.gz"):
        out = tmp_path / name
        write_label_records(out, [rec])
        before = out.read_bytes()
        with pytest.raises(KeyboardInterrupt), LabelWriter(out) as w:
            w.write(rec)
            raise KeyboardInterrupt  # an interrupt halfway: the previous output stays whole
        assert out.read_bytes() == before
        assert [r.number for r in read_label_records(out)] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.jsonl", "labels.jsonl.gz"]


def test_an_issue_with_no_title_or_body_is_abstained_on(tmp_path) -> None:
    """The models' priors (Crash, 0.64) are no evidence about an empty issue: every dimension
    abstains, with confidence 0 and evidence that says why."""
    from bugatlas.classify import classify_file

    src = tmp_path / "in.jsonl"
    src.write_text('{"repo": "a/b", "number": 1, "title": "", "body": "  "}\n'
                   '{"repo": "a/b", "number": 2, "title": "CUDA out of memory when loading the model"}\n')
    classify_file("liu2025", src, tmp_path / "out.jsonl", threshold=0.0)
    empty, titled = read_label_records(tmp_path / "out.jsonl")
    assert all(v == [] for v in empty.labels.values()) and set(empty.confidence.values()) == {0.0}
    assert empty.evidence["symptom"] == ["no title or body: nothing to judge"]
    assert titled.labels["symptom"]  # a title alone is text: answered at threshold 0


def test_model_evidence_leaves_out_stop_words(corpus_records, write_jsonl, tmp_path) -> None:
    """Evidence is for a reader: "title:on" or "prose:we" moved the model but explain nothing.
    Such terms are left out of the evidence; the labels and confidences do not change."""
    from bugatlas.classify import classify_file
    from bugatlas.classify.base import explains

    assert not explains("title:on") and not explains("with to") and not explains("prose:we")
    assert explains("title:support for") and explains("log:ggml") and explains("out of memory")
    recs = [corpus_records[k] for k in sorted(corpus_records)[::25]]
    classify_file("liu2025", write_jsonl(recs), tmp_path / "out.jsonl", threshold=0.0)
    terms = [t.strip() for r in read_label_records(tmp_path / "out.jsonl") for ev in r.evidence.values()
             for e in ev if e.startswith("model terms:") for t in e[len("model terms:"):].split(",")]
    assert len(terms) > 100 and all(explains(t) for t in terms)
