from __future__ import annotations

import math

import pytest

from bugatlas.annotate import assign, cochran_size, draw_sample, get_sample
from bugatlas.annotate.sampling import sample_items
from bugatlas.errors import BadInputError


def test_cochran_known_values():
    # z=1.96, p=.5, e=.05: n0 = 384.16 -> 385 for an infinite population; FPC for finite ones.
    assert cochran_size(10**9) == 385
    assert cochran_size(1000) == 278
    assert cochran_size(500) == 218
    assert cochran_size(100) == 80
    assert cochran_size(10) == 10
    assert cochran_size(0) == 0
    assert cochran_size(1000, 0.99, 0.05) == math.ceil(
        (2.5758293035489 ** 2 * 0.25 / 0.0025) / (1 + ((2.5758293035489 ** 2 * 0.25 / 0.0025) - 1) / 1000))
    with pytest.raises(BadInputError):
        cochran_size(100, confidence=1.5)


def test_sample_per_repo_is_cochran_per_stratum_and_reproducible(small_store, toy_codebook):
    s = draw_sample(small_store, toy_codebook, per="repo", confidence=0.95, margin=0.1, seed=3)
    assert {x["stratum"]: x["population"] for x in s.strata} == {
        "vllm-project/vllm": 20, "ggml-org/llama.cpp": 20, "sgl-project/sglang": 20}
    for x in s.strata:
        assert x["size"] == cochran_size(20, 0.95, 0.1) == 17
    items = sample_items(small_store, s)
    assert len(items) == s.size == 51
    again = draw_sample(small_store, toy_codebook, name="again", per="repo", margin=0.1, seed=3)
    assert [(i["repo"], i["issue_number"]) for i in sample_items(small_store, again)] == \
        [(i["repo"], i["issue_number"]) for i in items]
    other = draw_sample(small_store, toy_codebook, name="other", per="repo", margin=0.1, seed=4)
    assert {(i["repo"], i["issue_number"]) for i in sample_items(small_store, other)} != \
        {(i["repo"], i["issue_number"]) for i in items}
    assert get_sample(small_store, "toy").params["seed"] == 3
    assert small_store.runs("annotate.sample")[0]["summary"]["items"] == 51


def test_fixed_size_allocates_proportionally_and_other_columns(small_store, toy_codebook):
    s = draw_sample(small_store, toy_codebook, per="state", size=10, seed=1)
    assert sorted(x["size"] for x in s.strata) == [5, 5]
    y = draw_sample(small_store, toy_codebook, name="y", per="year", size=7, seed=1)
    assert {x["stratum"] for x in y.strata} == {"2024", "2025"} and y.size == 7
    with pytest.raises(BadInputError, match="--per body"):
        draw_sample(small_store, toy_codebook, name="z", per="body", size=5)
    with pytest.raises(BadInputError, match="exists"):
        draw_sample(small_store, toy_codebook, per="state", size=10)


def test_sample_on_shared_corpus_matches_liu_protocol(corpus_store, toy_codebook):
    s = draw_sample(corpus_store, toy_codebook, per="repo", seed=0)
    for x in s.strata:
        assert x["size"] == cochran_size(x["population"]) < x["population"]
    assert sum(x["population"] for x in s.strata) == 2997 - corpus_store.conn.execute(
        "SELECT COUNT(*) FROM issues WHERE is_reference = 0 AND is_pull_request = 1").fetchone()[0]


def test_assign_is_balanced_with_pilot(small_store, toy_codebook):
    s = draw_sample(small_store, toy_codebook, size=30, seed=2)
    summary = assign(small_store, s, ["ann", "ben", "cy"], k=2, pilot=3, arbitrator=["arb"])
    main = [c["main"] for c in summary["annotators"].values()]
    assert sum(main) == 27 * 2 and max(main) - min(main) <= 1
    assert all(c["pilot"] == 3 for c in summary["annotators"].values())
    assert set(summary["pairs"]) == {"ann+ben", "ann+cy", "ben+cy"}
    assert max(summary["pairs"].values()) - min(summary["pairs"].values()) <= 1
    with pytest.raises(BadInputError, match="annotator cannot also be"):
        assign(small_store, s, ["ann", "arb"], k=2)
    with pytest.raises(BadInputError, match="--k 3"):
        assign(small_store, s, ["ann", "ben"], k=3)


def test_population_filters_label_and_failure_reports(small_store, toy_codebook, tmp_path):
    from typer.testing import CliRunner

    from bugatlas.cli import app
    from bugatlas.store import Label

    small_store.add_labels([Label(repo="vllm-project/vllm", issue_number=n, taxonomy="issue-kind",
                                  dimension="kind", value="failure", source_kind="rule", source="t")
                            for n in (100, 103, 106, 109)])
    s = draw_sample(small_store, toy_codebook, name="lab", size=50, label="issue-kind:kind=failure")
    assert {(i["repo"], i["issue_number"]) for i in sample_items(small_store, s)} == {
        ("vllm-project/vllm", n) for n in (100, 103, 106, 109)}
    with pytest.raises(BadInputError, match="run `bugatlas filter` first"):
        draw_sample(small_store, toy_codebook, name="fr", size=5, failure_reports=True)
    # The real filter stage judges the issues; the sample keeps only its failure reports.
    r = CliRunner().invoke(app, ["filter", "--db", str(small_store.path)])
    assert r.exit_code == 0, r.output
    failures = {(x["repo"], x["number"]) for x in small_store.query("SELECT repo, number FROM failure_reports")}
    s = draw_sample(small_store, toy_codebook, name="fr", size=60, failure_reports=True)
    got = {(i["repo"], i["issue_number"]) for i in sample_items(small_store, s)}
    assert got == failures


def test_reassign_keeps_assignments_with_work(small_store, toy_codebook):
    from bugatlas.annotate import queue_for, save_annotation

    s = draw_sample(small_store, toy_codebook, size=6, seed=2)
    assign(small_store, s, ["ann", "ben"], k=1)
    q = queue_for(small_store, s, "ann")[0]
    save_annotation(small_store, s, q["assignment_id"], "ann", {"symptom": "Crash"}, codebook=toy_codebook)
    assign(small_store, s, ["ann", "ben", "cy"], k=2, seed=99)
    mine = {x["assignment_id"] for x in queue_for(small_store, s, "ann")}
    assert q["assignment_id"] in mine


def test_a_filter_matching_nothing_names_the_option(small_store, toy_codebook):
    """The store has issues; `--repos`/`--label` that match none of them were reported as an
    empty store ("import or collect issues first")."""
    from bugatlas.errors import BadInputError

    with pytest.raises(BadInputError, match="no issue matches --repos no/such"):
        draw_sample(small_store, toy_codebook, size=3, repos=["no/such"])
    with pytest.raises(BadInputError, match="no issue matches --label toy:symptom=Crash"):
        draw_sample(small_store, toy_codebook, size=3, label="toy:symptom=Crash")


def test_replace_refuses_a_sample_holding_annotations(small_store, toy_codebook):
    """`sample --replace` silently deleted the annotators' saved work with the old sample."""
    from bugatlas.annotate import queue_for, save_annotation

    s = draw_sample(small_store, toy_codebook, size=4, seed=1)
    draw_sample(small_store, toy_codebook, size=5, seed=1, replace=True)  # nothing saved yet: fine
    s = get_sample(small_store, s.name)
    assign(small_store, s, ["ann", "ben"], k=2)
    q = queue_for(small_store, s, "ann")[0]
    save_annotation(small_store, s, q["assignment_id"], "ann", {"symptom": "Crash"}, codebook=toy_codebook)
    with pytest.raises(BadInputError, match="--replace: sample 'toy' holds 1 saved annotation"):
        draw_sample(small_store, toy_codebook, size=6, seed=2, replace=True)
    assert small_store.query("SELECT COUNT(*) AS n FROM ann_annotations")[0]["n"] == 1
    assert get_sample(small_store, "toy").size == 5
