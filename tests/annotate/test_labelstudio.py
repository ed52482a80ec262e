from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from bugatlas.annotate import assign, draw_sample, queue_for, save_annotation
from bugatlas.annotate.labelstudio import export_tasks, import_export
from bugatlas.annotate.work import latest_annotations
from bugatlas.errors import BadInputError
from bugatlas.store import Store

from .conftest import make_issues


def _current(store, sample_name):
    from bugatlas.annotate import get_sample

    s = get_sample(store, sample_name)
    return {(r["repo"], r["issue_number"], r["annotator"]): (r["labels"], r["note"], r["unsure"])
            for r in latest_annotations(store, s)}


def test_round_trip_preserves_every_label_and_annotator(small_store, toy_codebook, tmp_path):
    s = draw_sample(small_store, toy_codebook, size=9, seed=4)
    assign(small_store, s, ["ann", "ben", "cy"], k=2)
    plans = [{"symptom": ["Crash"], "root_cause": ["Incompatible Version"], "component": ["Kernel", "Scheduler"]},
             {"symptom": ["Unexpected Output"], "root_cause": ["Environment"], "component": []},
             {"symptom": [], "root_cause": ["API Misuse"], "component": ["API Server"]}]
    for ai, a in enumerate(("ann", "ben", "cy")):
        for qi, q in enumerate(queue_for(small_store, s, a)):
            save_annotation(small_store, s, q["assignment_id"], a, plans[(ai + qi) % 3],
                            note=f"{a} <note> \"{qi}\"", unsure=qi % 2 == 0, status="done",
                            codebook=toy_codebook)
    res = export_tasks(small_store, s, tmp_path / "ls", with_annotations=True, codebook=toy_codebook)
    assert res["tasks"] == 9 and res["annotations"] == 18 and res["annotators"] == ["ann", "ben", "cy"]
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    result = tasks[0]["annotations"][0]["result"]
    tax = {r["from_name"]: r["value"]["taxonomy"] for r in result if r["type"] == "taxonomy"}
    assert all(isinstance(p, list) for paths in tax.values() for p in paths)
    # Hierarchical values are full root-to-leaf paths.
    paths = [p for t in tasks for a in t["annotations"] for r in a["result"] if r["from_name"] == "root_cause"
             for p in r["value"]["taxonomy"]]
    assert ["Environment", "Incompatible Version"] in paths and ["Environment"] in paths
    # The config is XML with a Taxonomy per dimension mirroring the codebook tree.
    root = ET.fromstring((tmp_path / "ls" / "config.xml").read_text())
    taxos = {t.get("name"): t for t in root.iter("Taxonomy")}
    assert set(taxos) == {"symptom", "root_cause", "component"}
    assert taxos["symptom"].get("maxUsages") == "1" and taxos["component"].get("maxUsages") is None
    env = [c for c in taxos["root_cause"] if c.get("value") == "Environment"][0]
    assert {c.get("value") for c in env} == {"Incompatible Version", "Missing Dependency"}
    assert root.find("Text").get("value") == "$text"

    fresh = Store(tmp_path / "fresh.db")
    fresh.upsert_issues(make_issues())
    got = import_export(fresh, tmp_path / "ls" / "tasks.json", codebook=toy_codebook)
    assert got["annotations"] == 18 and got["annotators"] == ["ann", "ben", "cy"]
    assert _current(fresh, "toy") == _current(small_store, "toy")
    again = import_export(fresh, tmp_path / "ls" / "tasks.json", codebook=toy_codebook)
    assert again["annotations"] == 0 and again["already_imported"] == 18
    fresh.close()


def test_import_real_label_studio_export_shape(small_store, toy_codebook, tmp_path):
    # As Label Studio writes it: numeric ids, "email, id" usernames, a cancelled annotation,
    # tasks found by their GitHub URL.
    export = [{
        "id": 7, "project": 3,
        "data": {"text": "...", "url": "https://github.com/vllm-project/vllm/issues/100"},
        "annotations": [
            {"id": 11, "completed_by": 1, "created_username": "ann@lab.org, 1", "was_cancelled": False,
             "ground_truth": False, "created_at": "2026-01-02T10:00:00.000000Z", "lead_time": 12.5,
             "result": [{"from_name": "symptom", "to_name": "text", "type": "taxonomy",
                         "value": {"taxonomy": [["Crash"]]}},
                        {"from_name": "component", "to_name": "text", "type": "taxonomy",
                         "value": {"taxonomy": [["Kernel"], ["API Server"]]}}]},
            {"id": 12, "completed_by": 2, "was_cancelled": False, "created_at": "2026-01-02T11:00:00Z",
             "result": [{"from_name": "symptom", "to_name": "text", "type": "taxonomy",
                         "value": {"taxonomy": [["System Hang"]]}}]},
            {"id": 13, "completed_by": 3, "was_cancelled": True, "result": []},
        ]}]
    f = tmp_path / "export.json"
    f.write_text(json.dumps(export))
    got = import_export(small_store, f, sample="ls", taxonomy="toy", codebook=toy_codebook)
    assert got["annotators"] == ["2", "ann@lab.org"] and got["skipped_cancelled"] == 1
    cur = _current(small_store, "ls")
    assert cur[("vllm-project/vllm", 100, "ann@lab.org")][0] == {
        "symptom": ["Crash"], "root_cause": [], "component": ["API Server", "Kernel"]}
    assert cur[("vllm-project/vllm", 100, "2")][0] == {"symptom": ["System Hang"], "root_cause": [], "component": []}
    got = import_export(small_store, f, sample="ls2", taxonomy="toy", annotator_map={"2": "bob"},
                        codebook=toy_codebook)
    assert "bob" in got["annotators"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"data": {"url": "https://github.com/vllm-project/vllm/issues/100"},
                                "annotations": [{"completed_by": 1, "result": [
                                    {"from_name": "symptom", "type": "taxonomy", "value": {"taxonomy": [["Boom"]]}}]}]}]))
    with pytest.raises(BadInputError, match=r"bad.json: task 0 \(vllm-project/vllm#100\), annotation 0: symptom"):
        import_export(small_store, bad, sample="ls", codebook=toy_codebook)


@pytest.mark.parametrize(("annotations", "message"), [
    ({"a": 1}, "annotations must be a list of objects"),
    ([{"completed_by": 1, "result": ["x"]}], "result must be a list of objects"),
    ([{"completed_by": 1, "result": [{"type": "taxonomy", "from_name": "symptom",
                                      "value": {"taxonomy": "Crash"}}]}], "must be a list of paths"),
    ([{"completed_by": 1, "result": [{"type": "choices", "from_name": "symptom",
                                      "value": {"choices": "Crash"}}]}], r"symptom: value.choices must be a list"),
    ([{"completed_by": 1, "result": [{"type": "textarea", "from_name": "note",
                                      "value": {"text": "a note"}}]}], r"note: value.text must be a list"),
])  # fmt: skip
def test_malformed_export_is_one_error_and_leaves_no_sample(small_store, toy_codebook, tmp_path,
                                                            annotations, message):
    good = {"data": {"repo": "vllm-project/vllm", "number": 100},
            "annotations": [{"completed_by": 1, "result": [
                {"type": "taxonomy", "from_name": "symptom", "value": {"taxonomy": [["Crash"]]}}]}]}
    bad = {"data": {"repo": "vllm-project/vllm", "number": 103}, "annotations": annotations}
    f = tmp_path / "export.json"
    f.write_text(json.dumps([good, bad]), encoding="utf-8")
    with pytest.raises(BadInputError, match=message):
        import_export(small_store, f, sample="imported", codebook=toy_codebook)
    # all or nothing: neither the sample nor the good task's annotation was kept
    assert small_store.query("SELECT name FROM ann_samples") == []
    assert small_store.query("SELECT id FROM ann_annotations") == []


def test_drafts_are_not_exported_as_completed_annotations(small_store, toy_codebook, tmp_path):
    """A draft is work in progress: exported as a Label Studio annotation it came back from
    import as a finished one, changing agreement and gold. Only done annotations go out."""
    from bugatlas.annotate import agreement, get_sample

    s = draw_sample(small_store, toy_codebook, size=6, seed=2)
    assign(small_store, s, ["ann", "ben"], k=2)
    for a in ("ann", "ben"):
        for qi, q in enumerate(queue_for(small_store, s, a)):
            labels = {"symptom": ["Crash" if a == "ann" or qi % 2 else "System Hang"]}
            status = "draft" if (a == "ben" and qi < 2) else "done"
            save_annotation(small_store, s, q["assignment_id"], a, labels, status=status, codebook=toy_codebook)
    res = export_tasks(small_store, s, tmp_path / "ls", with_annotations=True, codebook=toy_codebook)
    assert res["annotations"] == 10
    fresh = Store(tmp_path / "fresh.db")
    fresh.upsert_issues(make_issues())
    import_export(fresh, tmp_path / "ls" / "tasks.json", codebook=toy_codebook)
    before = agreement(small_store, s, codebook=toy_codebook)["dimensions"]["symptom"]["levels"]["symptom"]
    after = agreement(fresh, "toy", codebook=toy_codebook)["dimensions"]["symptom"]["levels"]["symptom"]
    assert after["items"] == before["items"] == 4
    assert after["pairs"][0]["cohen_kappa"] == before["pairs"][0]["cohen_kappa"]
    ben = [r for r in latest_annotations(fresh, get_sample(fresh, "toy")) if r["annotator"] == "ben"]
    assert len(ben) == 4 and all(r["status"] == "done" for r in ben)
    fresh.close()


def test_import_as_an_arbitrator_names_the_file_and_annotation(small_store, toy_codebook, tmp_path):
    """An export whose annotator is the sample's arbitrator is refused (blindness) with the
    file, task and annotation named, like every other bad annotation."""
    s = draw_sample(small_store, toy_codebook, size=2, seed=1)
    assign(small_store, s, ["ann", "ben"], k=2, arbitrator=["arb"])
    f = tmp_path / "export.json"
    f.write_text(json.dumps([{"data": {"repo": "vllm-project/vllm", "number": 100}, "annotations": [
        {"completed_by": 1, "created_username": "arb", "result": [
            {"type": "taxonomy", "from_name": "symptom", "value": {"taxonomy": [["Crash"]]}}]}]}]))
    with pytest.raises(BadInputError, match=r"export.json: task 0 \(vllm-project/vllm#100\), annotation 0: arb: an annotator cannot"):
        import_export(small_store, f, sample="toy", codebook=toy_codebook)
    assert small_store.query("SELECT id FROM ann_annotations") == []


def test_import_taxonomy_that_is_not_the_samples_is_refused(corpus_store, tmp_path):
    """`labelstudio import --sample S --taxonomy T` where S exists in another taxonomy ignored
    --taxonomy; an unknown taxonomy in a task file did not name the file."""
    s = draw_sample(corpus_store, "liu2025", size=2, seed=1, name="liu")
    assign(corpus_store, s, ["ann", "ben"], k=2)
    f = tmp_path / "export.json"
    f.write_text(json.dumps([{"data": {"repo": "vllm-project/vllm", "number": 1000, "taxonomy": "nosuch"},
                              "annotations": []}]))
    with pytest.raises(BadInputError, match=r"export.json: sample liu is of liu2025, not yu2026"):
        import_export(corpus_store, f, sample="liu", taxonomy="yu2026")
    with pytest.raises(BadInputError, match=r"export.json: .*nosuch"):
        import_export(corpus_store, f, sample="new")
    got = import_export(corpus_store, f, sample="liu", taxonomy="liu2025")
    assert got["sample"] == "liu"


def test_an_item_only_one_person_labeled_is_not_agreed_gold(small_store, toy_codebook, tmp_path):
    """A dual-labeled sample where ben never labeled two issues: in BugAtlas they are not
    finished; imported from Label Studio they became "agreed" gold on ann's word alone. They
    stay ann's annotations, but are neither agreed nor gold."""
    from bugatlas.annotate import finalize, get_sample
    from bugatlas.annotate.gold import gold_rows

    s = draw_sample(small_store, toy_codebook, size=6, seed=2)
    assign(small_store, s, ["ann", "ben"], k=2)
    for a in ("ann", "ben"):
        for qi, q in enumerate(queue_for(small_store, s, a)):
            if a == "ben" and qi < 2:
                continue
            save_annotation(small_store, s, q["assignment_id"], a, {"symptom": ["Crash"]}, status="done",
                            codebook=toy_codebook)
    here = finalize(small_store, s, codebook=toy_codebook)
    assert (here["agreed"], here["incomplete"]) == (4, 2)
    export_tasks(small_store, s, tmp_path / "ls", with_annotations=True, codebook=toy_codebook)
    fresh = Store(tmp_path / "fresh.db")
    fresh.upsert_issues(make_issues())
    import_export(fresh, tmp_path / "ls" / "tasks.json", codebook=toy_codebook)
    got = finalize(fresh, "toy", codebook=toy_codebook)
    assert (got["agreed"], got["single_annotator"], got["gold_labels"]) == (4, 2, here["gold_labels"])
    gold = {(lb.repo, lb.issue_number) for lb in fresh.iter_labels(source="gold")}
    assert len(gold) == 4 and len(gold_rows(fresh, "toy")) == 4
    ann = [r for r in latest_annotations(fresh, get_sample(fresh, "toy")) if r["annotator"] == "ann"]
    assert len(ann) == 6  # ann's labels of the two issues are kept
    fresh.close()
