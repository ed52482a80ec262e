"""Every importer on the real shared files: counts, idempotency, references, labels."""

from __future__ import annotations

import csv
import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from tests.conftest import CORPUS, LIU_CSV, OLF_DIR

from bugatlas import BadInputError, Store, import_paths
from bugatlas.importers import detect_format


def _count(store: Store, sql: str) -> int:
    return store.conn.execute(sql).fetchone()[0]


def test_formats_are_detected(shared_data: Path) -> None:
    assert detect_format(CORPUS) == "github"
    assert detect_format(LIU_CSV) == "liu2025"
    assert detect_format(next(OLF_DIR.rglob("*.json"))) == "open-llm-failures"


def test_corpus_imports_2997_issues_and_reimport_does_not_duplicate(shared_data: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        import_paths(store, [CORPUS], progress=False)
        assert store.count_issues() == 2997
        by_repo = dict(store.conn.execute("SELECT repo, COUNT(*) FROM issues GROUP BY repo"))
        assert set(by_repo) == {"vllm-project/vllm", "ggml-org/llama.cpp", "sgl-project/sglang"}
        import_paths(store, [CORPUS], progress=False)
        assert store.count_issues() == 2997
        issue = store.get_issue("ggml-org/llama.cpp", 1)
        assert issue.title == "Merging tensors of larger models"
        assert issue.labels == ["enhancement"] and issue.state == "closed"
        assert issue.comments_count == 4 and issue.reactions["total_count"] == 2
        (with_raw,) = store.iter_issues(where="number = 1 AND repo = 'ggml-org/llama.cpp'", include_raw=True)
        with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
            assert with_raw.raw == json.loads(fh.readline())  # every field as received


def test_liu_dataset_yields_929_labeled_references_across_5_engines(shared_data: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        import_paths(store, [LIU_CSV], progress=False)
        import_paths(store, [LIU_CSV], progress=False)  # idempotent
        assert _count(store, "SELECT COUNT(*) FROM issues WHERE is_reference = 1") == 929
        records = _count(store, "SELECT COUNT(DISTINCT record) FROM labels WHERE taxonomy='liu2025'")
        assert records == 929
        engines = {r["display"] for r in store.repositories()}
        assert engines == {"vLLM", "Llama.cpp", "DeepSpeed", "MLC-LLM", "TensorRT-LLM"}
        symptoms = dict(store.conn.execute(
            "SELECT value, COUNT(*) FROM labels WHERE taxonomy='liu2025' AND dimension='symptom' GROUP BY value"))
        assert symptoms == {"Crash": 603, "Unexpected Output": 122, "Feature Failure": 107,
                            "Abnormal Performance": 53, "System Hang": 35, "Silent Error": 12}
        # "Operators@@Operators" is one component, not two
        with open(LIU_CSV, encoding="utf-8-sig") as fh:
            expected = sum(len(set(row["Component"].split("@@"))) for row in csv.DictReader(fh))
        assert _count(store, "SELECT COUNT(*) FROM labels WHERE dimension='component'") == expected < 929 + 20
        assert all(l.source_kind == "human" and l.source == "dataset:liu2025" for l in store.iter_labels("liu2025"))


def test_open_llm_failures_yields_706_labeled_records(shared_data: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        import_paths(store, [OLF_DIR], progress=False)
        import_paths(store, [OLF_DIR], progress=False)
        assert _count(store, "SELECT COUNT(DISTINCT record) FROM labels WHERE taxonomy='yu2026-artifact'") == 706
        assert _count(store, "SELECT COUNT(*) FROM issues WHERE is_reference = 1") == 703
        stages = dict(store.conn.execute(
            "SELECT value, COUNT(*) FROM labels WHERE dimension='stage' GROUP BY value"))
        assert stages == {"Inference": 557, "Fine-tuning": 149}
        series = dict(store.conn.execute(
            """SELECT r.display, COUNT(DISTINCT l.record) FROM labels l JOIN repositories r
               ON r.full_name = l.repo WHERE l.taxonomy='yu2026-artifact' GROUP BY r.display"""))
        assert series == {"DeepSeek": 86, "Llama": 171, "Qwen": 449}


def test_full_issue_replaces_reference_but_reference_never_overwrites_text(shared_data: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.csv"
    ref.write_text(
        "URL,repo,Phase,Symptom(s),Unexpected Tokens,Component,Root Cause(s)\n"
        "https://github.com/ggml-org/llama.cpp/issues/1,Llama.cpp,Inference/Serving,Crash,,Operators,Misconfiguration\n",
        encoding="utf-8",
    )
    with Store(tmp_path / "s.db") as store:
        import_paths(store, [ref], progress=False)
        assert store.get_issue("ggml-org/llama.cpp", 1) is None  # references are hidden by default
        import_paths(store, [CORPUS], progress=False)
        import_paths(store, [ref], progress=False)
        issue = store.get_issue("ggml-org/llama.cpp", 1)
        assert issue.title == "Merging tensors of larger models" and not issue.is_reference
        assert [l.value for l in store.iter_labels("liu2025", dimension="symptom")] == ["Crash"]


def test_corrupted_corpus_fails_with_line_number_and_leaves_store_as_it_was(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store(db) as store:
        import_paths(store, [LIU_CSV], progress=False)
    before = _dump(db)
    broken = tmp_path / "broken.jsonl.gz"
    with gzip.open(CORPUS, "rt", encoding="utf-8") as src, gzip.open(broken, "wt", encoding="utf-8") as dst:
        for n, line in enumerate(src, 1):
            dst.write(line[: len(line) // 2] + "\n" if n == 1500 else line)
    with Store(db) as store, pytest.raises(BadInputError, match=r"broken\.jsonl\.gz: line 1500: invalid JSON"):
        import_paths(store, [broken], progress=False)
    assert _dump(db) == before


def test_skip_bad_imports_the_good_records_and_reports_the_bad(shared_data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    with gzip.open(CORPUS, "rt", encoding="utf-8") as src:
        lines = src.readlines()[:100]
    lines[9] = '{"repo": "vllm-project/vllm", "title": "no number"}\n'
    lines[19] = "not json\n"
    broken.write_text("".join(lines), encoding="utf-8")
    with Store(tmp_path / "s.db") as store:
        (result,) = import_paths(store, [broken], skip_bad=True, progress=False)
        assert store.count_issues() == 98
    # records counts every line read, the unparseable one too: 100 = 98 imported + 2 skipped
    assert (result.records, result.issues, len(result.bad)) == (100, 98, 2)
    assert [str(b) for b in result.bad] == [
        f"{broken}: line 10: missing field 'number'",
        f"{broken}: line 20: invalid JSON (invalid literal, expected 'null')",
    ]


def _dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [line for line in conn.iterdump() if "schema_migrations" not in line and "INTO \"runs\"" not in line]
    finally:
        conn.close()


LIU_HEADER = "URL,repo,Phase,Symptom(s),Unexpected Tokens,Component,Root Cause(s)\n"


@pytest.mark.parametrize("number", ["0", "99999999999999999999"])
def test_liu_row_with_impossible_issue_number_is_a_one_line_error(shared_data: Path, tmp_path: Path,
                                                                  number: str) -> None:
    bad = tmp_path / "liu.csv"
    bad.write_text(LIU_HEADER
                   + "https://github.com/vllm-project/vllm/issues/5,vLLM,Inference/Serving,Crash,,Operators,Misconfiguration\n"
                   + f"https://github.com/vllm-project/vllm/issues/{number},vLLM,Inference/Serving,Crash,,Operators,Misconfiguration\n",
                   encoding="utf-8")  # fmt: skip
    db = tmp_path / "s.db"
    with Store(db) as store:
        import_paths(store, [LIU_CSV], progress=False)
    before = _dump(db)
    with Store(db) as store, pytest.raises(BadInputError, match=r"liu\.csv: line 3: column URL: field 'number'"):
        import_paths(store, [bad], progress=False)
    assert _dump(db) == before
    with Store(db) as store:
        (result,) = import_paths(store, [bad], skip_bad=True, progress=False)
        assert [b.location for b in result.bad] == ["line 3"] and result.issues == 1


def test_open_llm_failures_record_with_issue_zero_is_a_one_line_error(shared_data: Path, tmp_path: Path) -> None:
    records = json.loads(next(OLF_DIR.rglob("*.json")).read_text(encoding="utf-8"))[:2]
    records[1] = {**records[1], "link": "https://github.com/QwenLM/Qwen/issues/0"}
    bad = tmp_path / "QwenLM" / "Qwen.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(records), encoding="utf-8")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(BadInputError, match=r"Qwen\.json: record 2: field 'link': field 'number'"):
            import_paths(store, [bad], progress=False)
        assert store.count_issues() == 0


def test_github_issue_number_beyond_sqlite_integer_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "issues.jsonl"
    bad.write_text('{"repo": "a/b", "number": 1, "title": "t"}\n'
                   '{"repo": "a/b", "number": 9223372036854775808, "title": "t"}\n', encoding="utf-8")  # fmt: skip
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(BadInputError, match=r"issues\.jsonl: line 2: field 'number'"):
            import_paths(store, [bad], progress=False)
        assert store.count_issues() == 0


@pytest.mark.parametrize(("row", "message"), [
    # an unquoted comma in a value shifts every later column: labels would land in the wrong dimension
    ("https://github.com/vllm-project/vllm/issues/7,vLLM,Inference/Serving,Crash,,Operators,Model, Misconfiguration\n",
     "line 3: expected 7 fields, got 8"),
    ("https://github.com/vllm-project/vllm/issues/7,vLLM,Inference/Serving\n", "line 3: expected 7 fields, got 3"),
    # an unclosed quote swallows the rest of the file: the error names the line where it starts
    ('"https://github.com/vllm-project/vllm/issues/7,vLLM,Inference/Serving,Crash,,Operators,Misconfiguration\n'
     "https://github.com/vllm-project/vllm/issues/8,vLLM,Inference/Serving,Crash,,Operators,Misconfiguration\n",
     "line 3: expected 7 fields, got 1"),
])  # fmt: skip
def test_liu_row_with_wrong_number_of_fields_is_a_bad_record(tmp_path: Path, row: str, message: str) -> None:
    bad = tmp_path / "liu.csv"
    good = "https://github.com/vllm-project/vllm/issues/5,vLLM,Inference/Serving,Crash,,Operators,Misconfiguration\n"
    bad.write_text(LIU_HEADER + good + row, encoding="utf-8")
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(BadInputError, match=f"liu\\.csv: {message} "):
            import_paths(store, [bad], progress=False)
        assert store.count_issues() == 0 and not list(store.iter_labels())


def test_malformed_json_file_in_a_folder_names_its_line_not_an_unknown_format(shared_data: Path,
                                                                               tmp_path: Path) -> None:
    folder = tmp_path / "olf" / "QwenLM"
    folder.mkdir(parents=True)
    text = next(OLF_DIR.rglob("*.json")).read_text(encoding="utf-8")
    lines = text.splitlines()
    lines[2] = lines[2].rstrip(",")  # a missing comma in the first record
    (folder / "Qwen.json").write_text("\n".join(lines), encoding="utf-8")
    with Store(tmp_path / "s.db") as store, pytest.raises(BadInputError, match=r"Qwen\.json: line 4: invalid JSON"):
        import_paths(store, [tmp_path / "olf"], progress=False)
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n", encoding="utf-8")
    with Store(tmp_path / "s.db") as store, pytest.raises(BadInputError, match=r"junk\.jsonl: line 1: invalid JSON"):
        import_paths(store, [junk], progress=False)


def test_json_lines_with_a_byte_order_mark_import(shared_data: Path, tmp_path: Path) -> None:
    """A BOM before the first line (Windows editors) read as one broken pretty-printed document."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as src:
        lines = src.readlines()[:3]
    bom = tmp_path / "bom.jsonl"
    bom.write_text("".join(lines), encoding="utf-8-sig")
    with Store(tmp_path / "s.db") as store:
        (result,) = import_paths(store, [bom], progress=False)
        assert (result.records, result.issues, result.bad) == (3, 3, [])
