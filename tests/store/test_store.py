"""The store's interface: migrations, transactions, upserts, labels, provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from bugatlas import BugAtlasError, Issue, Label, Store


def _issue(n: int, **kw) -> Issue:
    return Issue(repo="Owner/Repo", number=n, title=f"issue {n}", body="body", **kw)


def test_new_store_is_migrated_and_reopening_applies_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store(db) as store:
        assert store.schema_version[0] == "0001_core"
    with Store(db) as store:
        assert store.migrate() == []


def test_store_written_by_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store(db) as store:
        store.conn.execute("INSERT INTO schema_migrations VALUES ('9999_future', 'x')")
    with pytest.raises(BugAtlasError, match="newer BugAtlas.*9999_future"):
        Store(db)


def test_missing_store_is_a_clear_error_when_not_creating(tmp_path: Path) -> None:
    with pytest.raises(BugAtlasError, match="no study store here"):
        Store(tmp_path / "nope.db", create=False)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("this is not sqlite" * 100)
    with pytest.raises(BugAtlasError, match="not a BugAtlas store"):
        Store(bad)


def test_repo_names_are_normalized_and_upsert_updates(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(1), _issue(2)])
        store.upsert_issues([_issue(1, state="closed")])
        assert store.count_issues() == 2
        assert store.get_issue("owner/repo", 1).state == "closed"
        assert [r["full_name"] for r in store.repositories()] == ["owner/repo"]


def test_bad_repository_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="OWNER/NAME"):
        Issue(repo="no-slash", number=1)


def test_transaction_rolls_back_everything_on_error(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(1)])
        with pytest.raises(RuntimeError), store.transaction():
            store.upsert_issues([_issue(2)])  # nested: joins the outer transaction
            raise RuntimeError("boom")
        assert store.count_issues() == 1


def test_labels_upsert_and_replace_by_source(tmp_path: Path) -> None:
    def lab(value: str, conf: float, source: str = "rules") -> Label:
        return Label(repo="owner/repo", issue_number=1, taxonomy="t", dimension="symptom", value=value,
                     source_kind="rule", source=source, confidence=conf, evidence=["Traceback"])

    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(1)])
        store.add_labels([lab("Crash", 0.5), lab("Crash", 0.9), lab("Crash", 0.7, source="other")])
        assert sorted(l.confidence for l in store.iter_labels("t")) == [0.7, 0.9]
        store.replace_labels("t", "rule", "rules", [lab("System Hang", 0.6)])
        assert sorted((l.source, l.value) for l in store.iter_labels("t")) == [
            ("other", "Crash"), ("rules", "System Hang")]
        assert store.iter_labels("t").__next__().evidence == ["Traceback"]
        df = store.labels_frame("t")
        assert list(df["value"]) == ["Crash", "System Hang"]


def test_unknown_label_source_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="source_kind"):
        Label(repo="o/r", issue_number=1, taxonomy="t", dimension="d", value="v", source_kind="guess", source="x")


def test_runs_record_provenance_and_failures(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        with store.run("demo", {"k": 1}) as run:
            run.summary["n"] = 3
        with pytest.raises(ValueError), store.run("demo2"):
            raise ValueError("bad thing")
        runs = store.runs()
        assert [(r["command"], r["status"]) for r in runs] == [("demo", "ok"), ("demo2", "failed")]
        assert runs[0]["params"] == {"k": 1} and runs[0]["summary"] == {"n": 3}
        assert runs[1]["summary"]["error"] == "bad thing"
        # Ctrl-C is an interruption, not a failure with an empty message
        with pytest.raises(KeyboardInterrupt), store.run("demo3") as run:
            run.summary["done"] = 5
            raise KeyboardInterrupt
        last = store.runs("demo3")[0]
        assert last["status"] == "interrupted"
        assert last["summary"] == {"error": "interrupted (Ctrl-C)", "done": 5}


def test_export_into_a_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    from bugatlas import BadInputError
    from bugatlas.store.export import export_store

    taken = tmp_path / "out"
    taken.write_text("not a folder")
    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(1)])
        with pytest.raises(BadInputError, match=r"out: cannot make the output folder"):
            export_store(store, taken)
        assert export_store(store, tmp_path / "dir") == {str(tmp_path / "dir" / "issues.jsonl"): 1,
                                                        str(tmp_path / "dir" / "labels.jsonl"): 0}  # fmt: skip
    assert taken.read_text() == "not a folder"


def test_stats_count_pull_requests_of_issue_dumps_apart(tmp_path: Path) -> None:
    from bugatlas.store.stats import store_stats

    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(1), _issue(2), _issue(3, is_pull_request=True)])
        stats = store_stats(store)
    assert stats["issues"] == 2 and stats["pull_requests_among_issues"] == 1
    assert sum(stats["by_repository"].values()) == 2



@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_interrupted_export_leaves_the_previous_files_whole(tmp_path: Path, monkeypatch, fmt: str) -> None:
    """Ctrl-C during `export` left a truncated issues file (of whole lines, so it looked
    complete) in place of the previous export."""
    import io
    import types

    import orjson
    import pandas as pd

    from bugatlas.store import export as export_module

    def half_then_interrupt(real):  # a DataFrame writer that is interrupted halfway
        def write(self, target, *args, **kwargs):
            buf = io.BytesIO()
            real(self, buf, *args, **kwargs)
            data = buf.getvalue()[: len(buf.getvalue()) // 2]
            if hasattr(target, "write"):
                target.write(data)
            else:
                Path(target).write_bytes(data)
            raise KeyboardInterrupt
        return write

    calls = []

    def dumps(*args, **kwargs):  # the JSON Lines writer, interrupted after 100 records
        calls.append(1)
        if len(calls) > 100:
            raise KeyboardInterrupt
        return orjson.dumps(*args, **kwargs)

    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([Issue(repo="o/r", number=n, title=f"t{n}", body="x" * 2000) for n in range(1, 301)])
        out = tmp_path / "out"
        export_module.export_store(store, out, fmt=fmt)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        monkeypatch.setattr(export_module, "orjson", types.SimpleNamespace(
            dumps=dumps, OPT_SERIALIZE_NUMPY=orjson.OPT_SERIALIZE_NUMPY))
        monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_interrupt(pd.DataFrame.to_csv))
        monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_interrupt(pd.DataFrame.to_parquet))
        with pytest.raises(KeyboardInterrupt):
            export_module.export_store(store, out, fmt=fmt)
        monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_numbers_taken_from_a_frame_find_their_issue(tmp_path: Path) -> None:
    """A notebook passes numbers it read from issues_frame()/labels_frame() (numpy int64):
    sqlite3 bound them as BLOBs and every lookup silently found nothing."""
    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(7)])
        store.add_labels([Label(repo="owner/repo", issue_number=7, taxonomy="t", dimension="d",
                                value="v", source_kind="human", source="me")])
        number = store.issues_frame()["number"].iloc[0]
        assert type(number).__module__ == "numpy"
        assert store.get_issue("owner/repo", number).number == 7
        assert [l.value for l in store.iter_labels("t", issue_number=number)] == ["v"]
        assert len(list(store.iter_issues(where="number = ?", params=(number,)))) == 1
        assert store.query("SELECT number FROM issues WHERE number = ?", (number,)) == [{"number": 7}]
        assert store.query("SELECT number FROM issues WHERE number = :n", {"n": 7}) == [{"number": 7}]
        new = Label(repo="owner/repo", issue_number=7, taxonomy="t", dimension="d", value="w",
                    source_kind="human", source="me")
        store.replace_labels("t", "human", "me", [new], issues=[("owner/repo", number)])
        assert [l.value for l in store.iter_labels("t")] == ["w"], "the stale label stayed"


def test_one_repository_name_given_as_a_string_is_that_repository(tmp_path: Path) -> None:
    """iter_issues(repos="owner/repo") compared the letters of the name and found nothing."""
    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(1), Issue(repo="other/repo", number=2, title="x")])
        assert [i.number for i in store.iter_issues(repos="Owner/Repo")] == [1]


def test_query_is_read_only_and_bad_sql_is_one_line(tmp_path: Path) -> None:
    """`query` said read-only but ran a DELETE; bad SQL was a raw sqlite3 error."""
    from bugatlas import BadInputError

    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(1), _issue(2)])
        for sql in ("DELETE FROM issues", "WITH x AS (SELECT 1) DELETE FROM issues",
                    "UPDATE issues SET title = 'x'", "DROP TABLE issues"):
            with pytest.raises(BadInputError, match="read-only"):
                store.query(sql)
        with pytest.raises(BadInputError, match=r"query 'SELECT \* FROM nope': no such table: nope"):
            store.query("SELECT * FROM nope")
        assert store.query("SELECT COUNT(*) AS n FROM issues") == [{"n": 2}]
        store.upsert_issues([_issue(3)])  # the store's own writes still work after a refused query
        assert store.count_issues() == 3


def test_issues_frame_gives_flags_as_booleans(tmp_path: Path) -> None:
    """is_pull_request/is_reference came out as 0/1 integers: `df[~df.is_pull_request]`
    (pandas' usual filter) raised a KeyError on the columns -1 and -2."""
    with Store(tmp_path / "s.db") as store:
        store.upsert_issues([_issue(1), _issue(2, is_pull_request=True), _issue(3, is_reference=True)])
        df = store.issues_frame(include_references=True)
        assert df["is_pull_request"].dtype == bool and df["is_reference"].dtype == bool
        assert df[~df["is_pull_request"]]["number"].tolist() == [1, 3]
        assert df[df["is_reference"]]["number"].tolist() == [3]
        assert store.issues_frame(columns=["number", "is_pull_request"])["is_pull_request"].tolist() == [False, True]
