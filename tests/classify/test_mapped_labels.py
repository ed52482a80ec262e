"""Human labels mapped from another codebook (`taxonomy map`) as gold and training labels.

A mapped label that stops above the leaves (liu2025 Crash -> yu2026 Runtime Crash, Liu's root-cause
groups -> Yu's categories, yu2026-artifact's Tokenizer File Error -> Tokenizer and Text Processing
Defect) is stored at every level of its path, the leaf dimension included. eval and train refused
every such store and file: "symptom: not in the yu2026 codebook: 'Runtime Crash'"."""

from __future__ import annotations

import orjson
import pytest

from bugatlas import Store
from bugatlas.classify.api import SOURCE, eval_labels, human_labels
from bugatlas.classify.base import fit_inputs
from bugatlas.classify.schema import taxonomy_spec
from bugatlas.classify.supervised import read_training_labels
from bugatlas.store import Issue, Label
from bugatlas.taxonomy.mapping import map_records, map_store_labels

LIU = [  # (number, liu2025 symptom, liu2025 root cause)
    (1, "Crash", "Incompatible Version"),  # -> Runtime Crash; Environment and Infrastructure Fault
    (2, "System Hang", "Misconfiguration"),  # -> Process Hang; Software Implementation Defect
    (3, "Abnormal Performance", "Incorrect Resource Allocation"),
]


@pytest.fixture()
def mapped_store(tmp_path):
    store = Store(tmp_path / "s.db")
    store.upsert_issues([Issue(repo="o/r", number=n, title=f"{s} after upgrade", body="details")
                         for n, s, _ in LIU])
    store.add_labels([Label(repo="o/r", issue_number=n, taxonomy="liu2025", dimension=dim, value=v,
                            source_kind="human", source="study")
                      for n, s, r in LIU for dim, v in (("symptom", s), ("root_cause", r))])
    map_store_labels(store, "liu2025", "yu2026")
    yield store
    store.close()


def test_mapped_categories_are_read_at_their_own_level(mapped_store) -> None:
    gold = human_labels(mapped_store, "yu2026")
    assert gold[("o/r", 1)]["symptom_category"] == ["Runtime Crash"]
    assert gold[("o/r", 1)]["root_cause_category"] == ["Environment and Infrastructure Fault"]
    # no leaf was given: the leaf dimension holds none (it held the category itself)
    assert not gold[("o/r", 1)].get("symptom") and not gold[("o/r", 1)].get("root_cause")
    issues = [mapped_store.get_issue("o/r", n) for n, _, _ in LIU]
    _, labels = fit_inputs(taxonomy_spec("yu2026"), "model:yu2026", issues, [gold[i.key] for i in issues])
    assert labels[1]["symptom_category"] == ["Process Hang"]


def test_eval_scores_machine_labels_against_mapped_gold(mapped_store, tmp_path) -> None:
    pred = {1: ("Runtime Crash", "Other Runtime Crash"), 2: ("Process Hang", None), 3: ("Runtime Crash", None)}
    mapped_store.add_labels([Label(repo="o/r", issue_number=n, taxonomy="yu2026", dimension=d, value=v,
                                   source_kind="model", source=SOURCE)
                             for n, (cat, leaf) in pred.items()
                             for d, v in (("symptom_category", cat), ("symptom", leaf)) if v])
    report, _ = eval_labels("yu2026", store=mapped_store, curve=False)
    cat = report.dimensions["symptom_category"]
    assert (cat.n, cat.accuracy) == (3, pytest.approx(2 / 3, abs=1e-3))
    assert "symptom" not in report.dimensions  # no gold leaf: not scored as three misses

    # the same with files: `taxonomy map --output` as --gold
    liu = [{"repo": "o/r", "number": n, "taxonomy": "liu2025", "labels": {"symptom": s, "root_cause": r}}
           for n, s, r in LIU]
    gold_file = tmp_path / "gold.jsonl"
    gold_file.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in map_records(liu, "liu2025", "yu2026")))
    assert b'"symptom":"Runtime Crash"' in gold_file.read_bytes()  # as the store: every level written
    pred_file = tmp_path / "pred.jsonl"
    pred_file.write_bytes(b"".join(orjson.dumps({"repo": "o/r", "number": n, "taxonomy": "yu2026",
                                                  "labels": {"symptom_category": cat}}) + b"\n"
                                   for n, (cat, _) in pred.items()))
    report, _ = eval_labels("yu2026", gold_file=gold_file, pred_file=pred_file, curve=False)
    assert report.dimensions["symptom_category"].accuracy == pytest.approx(2 / 3, abs=1e-3)
    assert "symptom" not in report.dimensions
    train = read_training_labels("yu2026", [gold_file])
    assert train[("o/r", 3)]["symptom_category"] == ["Poor Performance"]
    assert not train[("o/r", 3)].get("symptom")


def test_the_artifact_tokenizer_file_error_records_are_read_as_their_subcategory(tmp_path) -> None:
    rec = {"repo": "o/r", "number": 9, "taxonomy": "yu2026-artifact",
           "labels": {"root_cause": "Tokenizer and Text Processing Issues - Tokenizer File Error"}}
    (out,) = map_records([rec], "yu2026-artifact", "yu2026")
    assert out["labels"]["root_cause"] == "Tokenizer and Text Processing Defect"
    path = tmp_path / "gold.jsonl"
    path.write_bytes(orjson.dumps(out) + b"\n")
    labels = read_training_labels("yu2026", [path])[("o/r", 9)]
    assert labels["root_cause_subcategory"] == ["Tokenizer and Text Processing Defect"]
    assert labels["root_cause_category"] == ["Software Implementation Defect"]
    assert not labels.get("root_cause")
