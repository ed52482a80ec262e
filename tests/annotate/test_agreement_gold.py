from __future__ import annotations

import csv
import json
import random

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from bugatlas.annotate import (
    agreement,
    assign,
    cohen_kappa,
    disagreements,
    draw_sample,
    export_gold,
    finalize,
    queue_for,
    record_final,
    save_annotation,
)
from bugatlas.annotate.work import ForbiddenError, history, latest_annotations
from bugatlas.errors import BadInputError

SYM = ["Crash", "System Hang", "Unexpected Output"]
RC = ["Incompatible Version", "Missing Dependency", "Incorrect Algorithm Implementation", "API Misuse"]
COMP = ["Kernel", "Scheduler", "API Server"]


def test_cohen_matches_sklearn_on_random_data():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(2, 40)
        cats = ["a", "b", "c", "d"][: rng.randint(2, 4)]
        a = [rng.choice(cats) for _ in range(n)]
        b = [x if rng.random() < 0.6 else rng.choice(cats) for x in a]
        ours = cohen_kappa(a, b)
        if len(set(a) | set(b)) == 1:
            assert ours is None
            continue
        assert ours == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def _study(store, cb, annotators=("ann", "ben"), k=2, n=16, seed=5):
    s = draw_sample(store, cb, size=n, seed=seed)
    assign(store, s, list(annotators), k=k, arbitrator=["arb"], owner=["own"])
    rng = random.Random(seed)
    truth = {}
    for a in annotators:
        for q in queue_for(store, s, a):
            key = q["item_id"]
            base = truth.setdefault(key, {
                "symptom": [rng.choice(SYM)], "root_cause": [rng.choice(RC)],
                "component": sorted(rng.sample(COMP, rng.randint(0, 2)))})
            labels = {d: list(v) for d, v in base.items()}
            if rng.random() < 0.35:
                labels["symptom"] = [rng.choice(SYM)]
            if rng.random() < 0.35:
                labels["root_cause"] = [rng.choice(RC)]
            if rng.random() < 0.3:
                labels["component"] = sorted(rng.sample(COMP, rng.randint(0, 2)))
            save_annotation(store, s, q["assignment_id"], a, {"symptom": "Crash"}, codebook=cb)
            save_annotation(store, s, q["assignment_id"], a, labels, status="done",
                            note=f"{a} note", codebook=cb)
    return s


def test_agreement_matches_independent_implementations(small_store, toy_codebook):
    s = _study(small_store, toy_codebook)
    rep = agreement(small_store, s, codebook=toy_codebook, keep_ratings=True)
    rows = latest_annotations(small_store, s, done_only=True)
    by = {}
    for r in rows:
        by.setdefault(r["item_id"], {})[r["annotator"]] = r["labels"]
    items = sorted(by)
    a = [by[i]["ann"]["symptom"][0] for i in items]
    b = [by[i]["ben"]["symptom"][0] for i in items]
    sym = rep["dimensions"]["symptom"]["levels"]["symptom"]
    pair = sym["pairs"][0]
    assert pair["items"] == 16
    assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b), abs=1e-9)
    assert np.array(pair["confusion"]).sum() == 16
    codes = {c: i for i, c in enumerate(sorted(set(a) | set(b)))}
    alpha = krippendorff.alpha(reliability_data=[[codes[x] for x in a], [codes[x] for x in b]],
                               level_of_measurement="nominal")
    assert sym["krippendorff_alpha"]["value"] == pytest.approx(alpha, abs=1e-9)
    # Hierarchy: the group level maps each leaf to its group.
    group = {"Incompatible Version": "Environment", "Missing Dependency": "Environment",
             "Incorrect Algorithm Implementation": "Code", "API Misuse": "Code"}
    ga = [group[by[i]["ann"]["root_cause"][0]] for i in items]
    gb = [group[by[i]["ben"]["root_cause"][0]] for i in items]
    lv = rep["dimensions"]["root_cause"]["levels"]
    assert list(lv) == ["group", "root_cause"]
    assert lv["group"]["pairs"][0]["cohen_kappa"] == pytest.approx(cohen_kappa_score(ga, gb), abs=1e-9)
    # Multi-label: set equality and per-category binary kappa.
    comp = rep["dimensions"]["component"]["levels"]["component"]
    sa = [" | ".join(by[i]["ann"]["component"]) or "(none)" for i in items]
    sb = [" | ".join(by[i]["ben"]["component"]) or "(none)" for i in items]
    assert comp["set_equality"]["pairs"][0]["cohen_kappa"] == pytest.approx(cohen_kappa_score(sa, sb), abs=1e-9)
    ka = ["Kernel" in by[i]["ann"]["component"] for i in items]
    kb = ["Kernel" in by[i]["ben"]["component"] for i in items]
    assert comp["per_category"]["Kernel"]["pairs"][0]["cohen_kappa"] == pytest.approx(
        cohen_kappa_score(ka, kb), abs=1e-9)


def test_three_annotators_fleiss_and_alpha(small_store, toy_codebook):
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    s = _study(small_store, toy_codebook, annotators=("ann", "ben", "cy"), k=3, n=12)
    rep = agreement(small_store, s, codebook=toy_codebook)
    sym = rep["dimensions"]["symptom"]["levels"]["symptom"]
    assert len(sym["pairs"]) == 3
    rows = latest_annotations(small_store, s, done_only=True)
    by = {}
    for r in rows:
        by.setdefault(r["item_id"], {})[r["annotator"]] = SYM.index(r["labels"]["symptom"][0])
    mat = np.array([[by[i][a] for a in ("ann", "ben", "cy")] for i in sorted(by)])
    table, _ = aggregate_raters(mat)
    assert sym["fleiss_kappa"]["value"] == pytest.approx(fleiss_kappa(table), abs=1e-9)
    assert sym["krippendorff_alpha"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=mat.T, level_of_measurement="nominal"), abs=1e-9)


def test_blind_and_validated_saves(small_store, toy_codebook):
    s = draw_sample(small_store, toy_codebook, size=4, seed=1)
    assign(small_store, s, ["ann", "ben"], k=1)
    mine = queue_for(small_store, s, "ann")[0]["assignment_id"]
    theirs = queue_for(small_store, s, "ben")[0]["assignment_id"]
    with pytest.raises(ForbiddenError):
        save_annotation(small_store, s, theirs, "ann", {}, codebook=toy_codebook)
    with pytest.raises(BadInputError, match="takes one category"):
        save_annotation(small_store, s, mine, "ann", {"symptom": ["Crash", "System Hang"]}, codebook=toy_codebook)
    with pytest.raises(BadInputError, match="not a category"):
        save_annotation(small_store, s, mine, "ann", {"symptom": "Explosion"}, codebook=toy_codebook)
    # ids are accepted and stored as names; multi-label keeps several.
    save_annotation(small_store, s, mine, "ann", {"symptom": "crash", "component": ["kernel", "api"]}, codebook=toy_codebook)
    save_annotation(small_store, s, mine, "ann", {"symptom": "hang"}, client="tab2", codebook=toy_codebook)
    h = history(small_store, mine)
    assert [x["labels"] for x in h] == [
        {"symptom": ["Crash"], "root_cause": [], "component": ["API Server", "Kernel"]},
        {"symptom": ["System Hang"], "root_cause": [], "component": []}]


def test_arbitration_to_gold_with_history(small_store, toy_codebook, tmp_path):
    s = _study(small_store, toy_codebook)
    queue = disagreements(small_store, s)
    assert queue and all(q["conflicts"] for q in queue)
    assert all(set(q["annotations"]) == {"ann", "ben"} for q in queue)
    with pytest.raises(ForbiddenError):
        record_final(small_store, s, queue[0]["item_id"], "ann", {}, codebook=toy_codebook)
    counts = finalize(small_store, s, codebook=toy_codebook)
    assert counts["awaiting_arbitration"] == len(queue) and counts["agreed"] == 16 - len(queue)
    for q in queue:
        pick = q["annotations"]["ben"]["labels"]
        record_final(small_store, s, q["item_id"], "arb", {d: pick.get(d, []) for d in s.dimensions},
                     note="ben is right", codebook=toy_codebook)
    assert disagreements(small_store, s) == []
    counts = finalize(small_store, s, codebook=toy_codebook)
    assert counts["agreed"] + counts["arbitrated"] == 16 and counts["awaiting_arbitration"] == 0
    gold = list(small_store.iter_labels("toy", source_kind="human", source="gold"))
    assert {(g.repo, g.issue_number) for g in gold} == {
        (i["repo"], i["issue_number"]) for i in latest_annotations(small_store, s)}
    # Re-arbitration keeps history; the latest final wins.
    q = queue[0]
    record_final(small_store, s, q["item_id"], "arb", {d: q["annotations"]["ann"]["labels"].get(d, [])
                                                       for d in s.dimensions}, codebook=toy_codebook)
    n_final = small_store.conn.execute("SELECT COUNT(*) FROM ann_final WHERE item_id = ?", (q["item_id"],)).fetchone()[0]
    assert n_final == 2 * len(s.dimensions)
    sym = {g.value for g in small_store.iter_labels("toy", dimension="symptom", source="gold",
                                                   repo=q["repo"], issue_number=q["issue_number"])}
    assert sym == set(q["annotations"]["ann"]["labels"]["symptom"])
    n = export_gold(small_store, s, tmp_path / "gold.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "gold.jsonl").read_text().splitlines()]
    assert n == len(rows) == 16
    assert {r["method"]["symptom"] for r in rows} <= {"agreed", "arbitrated"}
    export_gold(small_store, s, tmp_path / "gold.csv")
    assert len(list(csv.DictReader((tmp_path / "gold.csv").open()))) == 16


def test_gold_follows_store_dimension_convention(small_store, toy_codebook):
    s = draw_sample(small_store, toy_codebook, size=2, seed=1)
    assign(small_store, s, ["ann", "ben"], k=2)
    labels = {"symptom": ["Crash"], "root_cause": ["Missing Dependency"], "component": ["Kernel", "Scheduler"]}
    for a in ("ann", "ben"):
        for q in queue_for(small_store, s, a):
            save_annotation(small_store, s, q["assignment_id"], a, labels, status="done", codebook=toy_codebook)
    finalize(small_store, s, codebook=toy_codebook)
    got = {(g.dimension, g.value) for g in small_store.iter_labels("toy", source="gold")}
    assert got == {("symptom", "Crash"), ("group", "Environment"), ("root_cause", "Missing Dependency"),
                   ("component", "Kernel"), ("component", "Scheduler")}


def test_published_codebooks_levels_and_store_convention(small_store):
    """liu2025, yu2026 and yu2026-artifact (whose levels share one name) through one study."""
    from bugatlas.annotate import codebook as cbm
    from bugatlas.taxonomy import load_codebook

    liu, yu, art = (load_codebook(n) for n in ("liu2025", "yu2026", "yu2026-artifact"))
    assert cbm.store_labels(liu, "symptom", "Repetition") == [("symptom", "Unexpected Output"),
                                                               ("unexpected_output", "Repetition")]
    assert cbm.store_labels(liu, "root_cause", "Misused API") == [("root_cause_group", "Functionality"),
                                                                 ("root_cause", "Misused API")]
    leaf = art.leaves("symptom")[0].name
    assert cbm.store_labels(art, "symptom", leaf) == [("symptom", leaf)]
    assert cbm.level_keys(art, "symptom") == ["symptom L1", "symptom L2", "symptom L3"]
    build = cbm.store_labels(yu, "symptom", "Build Error")
    assert ("symptom", "Build Error") in build and ("symptom_category", "Runtime Crash") in build

    s = draw_sample(small_store, art, size=6, seed=2, name="art")
    assign(small_store, s, ["ann", "ben"], k=2)
    leaves = [c.name for c in art.leaves("symptom")]
    for a in ("ann", "ben"):
        for i, q in enumerate(queue_for(small_store, s, a)):
            pick = leaves[i] if a == "ann" or i % 2 else leaves[i + 1]
            save_annotation(small_store, s, q["assignment_id"], a, {"symptom": pick}, status="done", codebook=art)
    rep = agreement(small_store, s, codebook=art)
    assert list(rep["dimensions"]["symptom"]["levels"]) == ["symptom L1", "symptom L2", "symptom L3"]
    top = rep["dimensions"]["symptom"]["levels"]["symptom L1"]["pairs"][0]
    leaf_level = rep["dimensions"]["symptom"]["levels"]["symptom L3"]["pairs"][0]
    assert top["observed_agreement"] >= leaf_level["observed_agreement"]


def test_leaf_level_macro_kappa_confusion_rows_and_fleiss_raters(small_store, toy_codebook):
    """What the other tests left unchecked: the leaf level of a hierarchy, the macro mean of
    per-category kappas, the confusion matrix's orientation (rows: first annotator) and
    Fleiss' kappa over the most common number of raters when a pilot round adds a third."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    s = draw_sample(small_store, toy_codebook, size=20, seed=8)
    assign(small_store, s, ["ann", "ben", "cy"], k=2, pilot=4)
    rng = random.Random(3)
    for a in ("ann", "ben", "cy"):
        for q in queue_for(small_store, s, a):
            save_annotation(small_store, s, q["assignment_id"], a,
                            {"symptom": rng.choice(SYM), "root_cause": rng.choice(RC),
                             "component": sorted(rng.sample(COMP, rng.randint(0, 2)))},
                            status="done", codebook=toy_codebook)
    rep = agreement(small_store, s, round="", codebook=toy_codebook)
    by = {}
    for r in latest_annotations(small_store, s, done_only=True):
        by.setdefault(r["item_id"], {})[r["annotator"]] = r["labels"]
    ab = sorted(i for i, r in by.items() if {"ann", "ben"} <= set(r))
    leaf = rep["dimensions"]["root_cause"]["levels"]["root_cause"]
    pair = next(p for p in leaf["pairs"] if p["annotators"] == ["ann", "ben"])
    la = [by[i]["ann"]["root_cause"][0] for i in ab]
    lb = [by[i]["ben"]["root_cause"][0] for i in ab]
    assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score(la, lb), abs=1e-9)
    cm = np.array(pair["confusion"])
    for x, row in zip(pair["labels"], cm, strict=True):
        assert row.sum() == la.count(x)  # rows: the first annotator's categories
    comp = rep["dimensions"]["component"]["levels"]["component"]
    kappas = []
    for c in comp["per_category"]:
        for a, b in (("ann", "ben"), ("ann", "cy"), ("ben", "cy")):
            both = sorted(i for i, r in by.items() if {a, b} <= set(r))
            ya = [c in by[i][a]["component"] for i in both]
            yb = [c in by[i][b]["component"] for i in both]
            if len(set(ya) | set(yb)) > 1:
                kappas.append(cohen_kappa_score(ya, yb))
    assert comp["macro_cohen_kappa"] == pytest.approx(float(np.mean(kappas)), abs=1e-9)
    # 4 pilot items with three raters, 16 main items with two: Fleiss uses the 16.
    sym = rep["dimensions"]["symptom"]["levels"]["symptom"]
    assert sym["fleiss_kappa"]["items"] == 16 and sym["fleiss_kappa"]["raters_per_item"] == 2
    two = [sorted(r.values(), key=lambda v: v["symptom"][0]) for r in by.values() if len(r) == 2]
    mat = np.array([[SYM.index(v["symptom"][0]) for v in r] for r in two])
    assert sym["fleiss_kappa"]["value"] == pytest.approx(fleiss_kappa(aggregate_raters(mat)[0]), abs=1e-9)


def test_unfinished_and_unsure_items_and_the_exported_decisions(small_store, toy_codebook, tmp_path):
    """An item one annotator has not finished is not gold; an item both label alike but one
    flags unsure goes to arbitration; the export says how each label was decided and by whom."""
    s = draw_sample(small_store, toy_codebook, size=6, seed=4)
    assign(small_store, s, ["ann", "ben"], k=2, arbitrator=["arb"])
    same = {"symptom": ["Crash"], "root_cause": ["API Misuse"], "component": ["Kernel"]}
    qa, qb = queue_for(small_store, s, "ann"), queue_for(small_store, s, "ben")
    for q in qa:
        save_annotation(small_store, s, q["assignment_id"], "ann", same, status="done", codebook=toy_codebook)
    for i, q in enumerate(qb):
        if i == 5:
            continue  # ben never opened the last one
        save_annotation(small_store, s, q["assignment_id"], "ben", same, unsure=i == 0,
                        status="draft" if i == 4 else "done", codebook=toy_codebook)
    queue = disagreements(small_store, s)
    assert [(q["item_id"], q["flagged"], q["conflicts"]) for q in queue] == [(qb[0]["item_id"], True, [])]
    counts = finalize(small_store, s, codebook=toy_codebook)
    assert (counts["agreed"], counts["awaiting_arbitration"], counts["incomplete"]) == (3, 1, 2)
    gold = {(g.repo, g.issue_number) for g in small_store.iter_labels("toy", source="gold")}
    assert (qb[4]["repo"], qb[4]["issue_number"]) not in gold and len(gold) == 3
    record_final(small_store, s, qb[0]["item_id"], "arb", {**same, "symptom": ["System Hang"]},
                 codebook=toy_codebook)
    export_gold(small_store, s, tmp_path / "gold.csv")
    rows = {(r["repo"], int(r["number"])): r for r in csv.DictReader((tmp_path / "gold.csv").open())}
    assert len(rows) == 4
    arb = rows[(qb[0]["repo"], qb[0]["issue_number"])]
    assert (arb["symptom"], arb["symptom_method"], arb["arbitrator"]) == ("System Hang", "arbitrated", "arb")
    agreed = rows[(qb[1]["repo"], qb[1]["issue_number"])]
    assert (agreed["symptom"], agreed["symptom_method"], agreed["arbitrator"]) == ("Crash", "agreed", "")
