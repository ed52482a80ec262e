"""`bugatlas analyze …` through the real CLI entry point."""

from __future__ import annotations

import subprocess
import sys

import orjson
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
