"""yu2026-artifact -> yu2026: every published record maps; counts sit next to the paper's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bugatlas.store import Label
from bugatlas.taxonomy import CodebookError, load_codebook
from bugatlas.taxonomy.mapping import (
    get_mapping,
    map_records,
    map_store_labels,
    unmapped_categories,
)


def test_mapping_is_complete_and_valid() -> None:
    m = get_mapping("yu2026-artifact", "yu2026")
    assert unmapped_categories(m) == {}
    art = load_codebook("yu2026-artifact")
    assert len(art.leaves("symptom")) == 37 and len(art.roots("symptom")) == 5
    assert len(art.leaves("root_cause")) == 27 and len(art.roots("root_cause")) == 9
    # The published data's double-space spelling is an alias of a kept leaf, not lost.
    odd = "Environment Compatibility Issues -  Architecture Compatibility"
    assert art.find("root_cause", odd) is not None
    assert m.map("root_cause", odd).name == "System Architecture Incompatibility"
    assert m.map("symptom", "Crash - CUDA Error - Out of Memory").name == "GPU OOM"


def test_store_labels_of_all_706_records_map(corpus_store) -> None:
    report = map_store_labels(corpus_store, "yu2026-artifact", "yu2026")
    assert report.records == 706
    assert not report.unmapped
    assert report.mapped == {"symptom": 706, "root_cause": 706, "stage": 706}
    sym = report.top_level["symptom"]
    assert sum(sym.values()) == 706
    # The symptom mapping reproduces the paper's published top-level counts within 1 each.
    yu = load_codebook("yu2026")
    for c in yu.roots("symptom"):
        assert abs(sym[c.name] - c.published_count) <= 1, c.name
    rows = corpus_store.query(
        "SELECT dimension, COUNT(*) AS n FROM labels WHERE taxonomy='yu2026' GROUP BY dimension")
    n = {r["dimension"]: r["n"] for r in rows}
    assert n["symptom"] == 706 and n["symptom_category"] == 706 and n["root_cause_category"] == 706
    lab = next(corpus_store.iter_labels("yu2026", dimension="symptom"))
    assert lab.source.endswith("|map:yu2026-artifact") and lab.evidence[0].startswith("yu2026-artifact.symptom=")
    assert lab.record  # provenance: the published record the label came from
    # A re-run replaces rather than duplicates.
    map_store_labels(corpus_store, "yu2026-artifact", "yu2026")
    n2 = corpus_store.query("SELECT COUNT(*) AS n FROM labels WHERE taxonomy='yu2026'")[0]["n"]
    assert n2 == sum(n.values())


def test_map_records_and_cli_file_round_trip(tmp_path: Path) -> None:
    recs = [{"repo": "qwenlm/qwen", "number": 1, "taxonomy": "yu2026-artifact",
             "labels": {"symptom": ["Loading Failure - Tokenizer Loading Error"],
                        "root_cause": "Environment Compatibility Issues -  Architecture Compatibility",
                        "stage": "Inference"}},
            {"repo": "qwenlm/qwen", "number": 2, "labels": {"symptom": "No Such Symptom"}}]  # fmt: skip
    out = list(map_records(recs, "yu2026-artifact", "yu2026"))
    # yu2026's dimensions are single-valued: one name each, as `classify --output` writes them
    assert out[0]["labels"]["symptom_category"] == "Runtime Crash"
    assert out[0]["labels"]["symptom_subcategory"] == "Model Usage Error"
    assert out[0]["labels"]["symptom"] == "Tokenizer Error"
    assert out[0]["labels"]["root_cause_category"] == "Environment and Infrastructure Fault"
    assert out[0]["labels"]["stage"] == "Inference"
    assert out[1]["unmapped"] == {"symptom": ["No Such Symptom"]}
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs))
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "taxonomy", "map", "--from", "yu2026-artifact",
                          "--to", "yu2026", "--input", str(f), "--output", str(tmp_path / "o.jsonl"), "--json"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["records"] == 2 and rep["unmapped"][0]["value"] == "No Such Symptom"
    lines = (tmp_path / "o.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["taxonomy"] == "yu2026"


def test_bad_mapping_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "src.yaml"
    f.write_text("name: src\ndimensions:\n  symptom:\n    categories:\n      - {id: a, name: A}\n"
                 "mappings:\n  yu2026:\n    symptom: {A: Not A Yu Category}\n")  # fmt: skip
    with pytest.raises(CodebookError, match="src.yaml.*Not A Yu Category"):
        get_mapping(str(f), "yu2026")
    # a list where the dimension tables belong was an AttributeError traceback
    f.write_text("name: src\ndimensions:\n  symptom:\n    categories:\n      - {id: a, name: A}\n"
                 "mappings:\n  yu2026: [symptom]\n")  # fmt: skip
    with pytest.raises(CodebookError, match=r"src.yaml: mappings.yu2026: expected a mapping"):
        get_mapping(str(f), "yu2026")


def test_human_labels_added_through_api_map(tmp_path: Path) -> None:
    from bugatlas.store import Store

    with Store(tmp_path / "s.db") as st:
        st.add_labels([Label(repo="a/b", issue_number=3, taxonomy="yu2026-artifact", dimension="symptom",
                             value="Hang - Generation Process Stuck", source_kind="human", source="ann:x")])  # fmt: skip
        rep = map_store_labels(st, "yu2026-artifact", "yu2026")
        assert rep.top_level["symptom"] == {"Process Hang": 1}
        vals = {(l.dimension, l.value) for l in st.iter_labels("yu2026")}
        assert ("symptom", "Generation Process Stuck") in vals and ("symptom_category", "Process Hang") in vals


def test_several_source_labels_onto_one_target_are_one_label_naming_each(tmp_path: Path) -> None:
    """liu2025's root causes are multi-label: two of groups that both map to Software
    Implementation Defect wrote that label twice; the store kept one row (with the second
    original's evidence only) and labels_written counted both (4,078 for the 3,926 rows of the
    Liu dataset)."""
    from bugatlas.store import Store

    with Store(tmp_path / "s.db") as st:
        st.add_labels([Label(repo="a/b", issue_number=1, taxonomy="liu2025", dimension="root_cause", value=v,
                             source_kind="human", source="study")
                       for v in ("Misconfiguration", "Incorrect Resource Allocation", "Incompatible Version")])
        rep = map_store_labels(st, "liu2025", "yu2026")
        rows = list(st.iter_labels("yu2026"))
        assert rep.labels_written == len(rows) == 4  # root_cause_category and root_cause, two values each
        sid = [lab for lab in rows if lab.value == "Software Implementation Defect"]
        assert len(sid) == 2 and all(lab.evidence == ["liu2025.root_cause=Misconfiguration",
                                                      "liu2025.root_cause=Incorrect Resource Allocation"]
                                     for lab in sid)


def test_map_cli_input_gz_dry_run_and_bad_record_name_the_file(tmp_path: Path) -> None:
    """map --input reads what classify writes (.gz too), --dry-run writes nothing, and a bad
    record names the file (was: 'record 2: ...' with no file; .gz: 'not valid UTF-8')."""
    import gzip

    good = {"repo": "a/b", "number": 1, "labels": {"symptom": "Hang - Generation Process Stuck"}}
    f = tmp_path / "in.jsonl.gz"
    with gzip.open(f, "wt") as fh:
        fh.write(json.dumps(good) + "\n")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bugatlas.cli", "taxonomy", "map", "--from", "yu2026-artifact",
                               "--to", "yu2026", *args], capture_output=True, text=True, timeout=120)

    out = tmp_path / "o.jsonl"
    res = cli("--input", str(f), "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["labels"]["symptom_category"] == "Process Hang"
    out.unlink()
    res = cli("--input", str(f), "--output", str(out), "--dry-run", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["records"] == 1 and not out.exists(), res.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n" + json.dumps({"repo": "a/b", "number": 2}) + "\n")
    out.write_text("previous result\n")
    res = cli("--input", str(bad), "--output", str(out))
    assert res.returncode == 2 and f"--input: {bad}: record 2: expected an object with a 'labels'" in res.stderr
    # the bad record after a good one leaves the previous output whole, and no part file
    assert out.read_text() == "previous result\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.jsonl", "in.jsonl.gz", "o.jsonl"]


def test_map_cli_refuses_to_write_over_its_input(tmp_path: Path) -> None:
    """`map --input labels.jsonl --output labels.jsonl` replaced the source labels with the mapped
    ones (written beside and renamed over): a second run then failed on its own output."""
    f = tmp_path / "labels.jsonl"
    original = json.dumps({"repo": "a/b", "number": 1, "taxonomy": "liu2025",
                           "labels": {"symptom": "Crash", "root_cause": "Incompatible Version"}}) + "\n"
    f.write_text(original)
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "taxonomy", "map", "--from", "liu2025", "--to",
                          "yu2026", "--input", str(f), "--output", str(tmp_path / "." / "labels.jsonl")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "is the --input file" in res.stderr, res.stderr
    assert f.read_text() == original and [p.name for p in tmp_path.iterdir()] == ["labels.jsonl"]


def test_map_cli_input_blames_the_codebook_not_the_input_file(tmp_path: Path) -> None:
    """A user codebook whose mapping is wrong (or missing) is the codebook's fault: the error
    names the codebook file, not "--input: labels.jsonl: ..." as if the labels were bad."""
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\ndimensions:\n  symptom:\n    categories:\n      - {id: a, name: A}\n"
                 "mappings:\n  liu2025:\n    symptom: {A: Not A Liu Category}\n")  # fmt: skip
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"repo": "a/b", "number": 1, "labels": {"symptom": "A"}}) + "\n")
    for target, message in (("liu2025", f"error: {f}: mappings.liu2025.symptom: 'A' -> unknown liu2025"),
                            ("yu2026", "error: codebook 'mine' declares no mapping to 'yu2026'")):
        res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "taxonomy", "map", "--from", str(f), "--to", target,
                              "--input", str(labels), "--output", str(tmp_path / "o.jsonl")],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and res.stderr.startswith(message), res.stderr
        assert not (tmp_path / "o.jsonl").exists()
