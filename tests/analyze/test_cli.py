"""`bugatlas analyze …` through the real CLI entry point."""

from __future__ import annotations

import subprocess
import sys

import orjson
from tests.conftest import USER_CODEBOOK_3_LEVELS
from typer.testing import CliRunner

from bugatlas.cli import app


def _run(args, db):
    return CliRunner().invoke(app, [*args, "--db", str(db)])


def test_distribution_json_and_csv(analysis_store, tmp_path):
    r = _run(["analyze", "distribution", "-t", "liu2025", "-d", "symptom", "--json"], analysis_store.path)
    assert r.exit_code == 0, r.output
    rows = orjson.loads(r.stdout)["rows"]
    assert {x["category"]: x["units"] for x in rows}["Crash"] == 603
    out = tmp_path / "d.csv"
    r = _run(["analyze", "distribution", "-t", "yu2026-artifact", "-d", "stage", "--csv", str(out)], analysis_store.path)
    assert r.exit_code == 0, r.output
    assert "Inference,557" in out.read_text().replace("All,", "").replace("stage,", "")


def test_bad_taxonomy_is_one_line(analysis_store):
    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "analyze", "distribution", "-t", "nope",
                        "--db", str(analysis_store.path)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "'nope'" in r.stderr and "liu2025" in r.stderr


def test_commonality_json(analysis_store):
    r = _run(["analyze", "commonality", "-t", "liu2025", "--json"], analysis_store.path)
    assert r.exit_code == 0, r.output
    data = orjson.loads(r.stdout)
    assert data["p_value"] < 1e-6 and data["deviations"][0]["group"] == "MLC-LLM"


def test_commonality_json_also_writes_csv(analysis_store, tmp_path):
    out = tmp_path / "residuals.csv"
    r = _run(["analyze", "commonality", "-t", "liu2025", "--json", "--csv", str(out)], analysis_store.path)
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout)["deviations"][0]["group"] == "MLC-LLM"
    header, *rows = out.read_text().splitlines()
    assert "Crash" in header and any(row.startswith("MLC-LLM,") for row in rows)


def test_unwritable_csv_is_one_line(analysis_store, tmp_path):
    target = tmp_path / "no-such-folder" / "d.csv"
    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "analyze", "distribution", "-t", "liu2025",
                        "--csv", str(target), "--db", str(analysis_store.path)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "--csv" in r.stderr and str(target) in r.stderr


def test_bad_as_of_is_one_line(analysis_store):
    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "analyze", "maintenance", "--as-of", "notadate",
                        "--db", str(analysis_store.path)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "--as-of 'notadate'" in r.stderr
    r = _run(["analyze", "maintenance", "--as-of", "2025-08-01", "--json"], analysis_store.path)
    assert r.exit_code == 0, r.output
    assert sum(x["issues"] for x in orjson.loads(r.stdout)["rows"]) == 2997


def test_audit_differences_lists_only_differing_numbers(analysis_store):
    from ..conftest import LIU_CSV

    r = _run(["analyze", "audit", "--file", str(LIU_CSV), "--differences", "--json"], analysis_store.path)
    assert r.exit_code == 0, r.output
    rows = orjson.loads(r.stdout)["rows"]
    assert rows and {x["status"] for x in rows} == {"differs"}
    assert "liu.group.functionality" not in {x["id"] for x in rows}  # a raw-file match
    assert sum(x["paper"] == "liu2025" for x in rows) == 1  # 1,041 root-cause instances


def test_audit_file_missing_or_other_is_refused(analysis_store, tmp_path):
    """`analyze audit --file` naming a missing (mistyped) or another file was accepted and
    ignored: the Liu group counts then read "differs" instead of "match (raw file)"."""
    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "analyze", "audit", "--paper", "liu2025",
                        "--file", str(tmp_path / "nope.csv"), "--db", str(analysis_store.path)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1 and "--file" in r.stderr and "nope.csv: no such file" in r.stderr
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    r = _run(["analyze", "audit", "--paper", "liu2025", "--file", str(other)], analysis_store.path)
    assert "not Liu" in str(r.exception) and str(other) in str(r.exception)


def test_crosstab_unknown_dimension_names_its_option(analysis_store):
    for opt in ("--rows", "--cols"):
        r = _run(["analyze", "crosstab", "-t", "liu2025", opt, "bogus"], analysis_store.path)
        assert str(r.exception).startswith(f"{opt} 'bogus': ")




def test_user_codebook_by_relative_path_in_analyze_and_report(tmp_path):
    """--taxonomy ./books/mine.yaml works in analyze and report as in classify: the labels stored
    under the codebook's name are found, and its hierarchy gives the levels."""
    from bugatlas import Label, Store
    from bugatlas.store import Issue

    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "mine.yaml").write_text(USER_CODEBOOK_3_LEVELS)
    db = tmp_path / "s.db"
    with Store(db) as store:
        store.upsert_issues([Issue(repo="a/b", number=n, title=f"t{n}", body="x") for n in range(1, 5)])
        leaves = [["GPU Out Of Memory", "Hardware", "Environment"], ["Attention Kernel Bug", "Kernels", "Engine Code"]]
        store.add_labels([Label(repo="a/b", issue_number=n, taxonomy="mine", dimension=d, value=v,
                                source_kind="human", source="gold")
                          for n in range(1, 5)
                          for d, v in zip(("cause", "cause_kind", "cause_area"), leaves[n % 2], strict=True)])

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args, "--db", str(db)], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)

    r = cli("analyze", "distribution", "-t", "books/mine.yaml", "-d", "cause", "--all-levels", "--json")
    assert r.returncode == 0, r.stderr
    rows = orjson.loads(r.stdout)["rows"]
    assert {(x["level"], x["category"]): x["units"] for x in rows} == {
        ("cause_area", "Environment"): 2, ("cause_area", "Engine Code"): 2, ("cause_kind", "Hardware"): 2,
        ("cause_kind", "Kernels"): 2, ("cause", "GPU Out Of Memory"): 2, ("cause", "Attention Kernel Bug"): 2}
    r = cli("report", "-t", "books/mine.yaml", "--out", "rep", "--json")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rep" / "tables" / "dist_cause_cause_kind.csv").is_file()
    r = cli("analyze", "distribution", "-t", "books/missing.yaml")
    assert r.returncode == 2 and r.stderr.strip() == "error: codebook file not found: books/missing.yaml", r.stderr
