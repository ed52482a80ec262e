"""The command line as a user meets it: version, help, import errors, stats and export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from tests.conftest import CORPUS, LIU_CSV


def bugatlas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)  # fmt: skip


def test_version_and_help() -> None:
    out = bugatlas("--version")
    assert out.returncode == 0 and out.stdout.startswith("bugatlas ")
    for cmd in ("import", "stats", "export"):
        assert bugatlas(cmd, "--help").returncode == 0


def test_import_stats_export_round_trip(shared_data: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    out = bugatlas("import", "--db", db, str(CORPUS), str(LIU_CSV))
    assert out.returncode == 0, out.stderr
    stats = json.loads(bugatlas("stats", "--db", db, "--json").stdout)
    assert stats["issues"] == 2997 and stats["references"] == 929
    assert stats["by_repository"]["vllm-project/vllm"] == 1067
    assert stats["references_by_repository"]["vllm-project/vllm"] == 290
    assert stats["by_year"] == {"2023": 586, "2024": 1186, "2025": 1225}
    assert {"taxonomy": "liu2025", "source_kind": "human", "source": "dataset:liu2025",
            "issues": 929, "records": 929, "labels": 3954} in stats["label_sources"]
    for fmt in ("jsonl", "csv", "parquet"):
        res = bugatlas("export", "--db", db, "--format", fmt, str(tmp_path / fmt))
        assert res.returncode == 0, res.stderr
    issues = pd.read_parquet(tmp_path / "parquet" / "issues.parquet")
    assert len(issues) == 2997 + 929
    first = json.loads((tmp_path / "jsonl" / "labels.jsonl").read_text().splitlines()[0])
    assert first["taxonomy"] == "liu2025" and first["source"] == "dataset:liu2025"


def test_bad_input_is_one_line_with_nonzero_exit(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"repo": "a/b", "number": 1, "title": "ok"}\n{"repo": "a/b", "number": \n')
    db = str(tmp_path / "s.db")
    out = bugatlas("import", "--db", db, str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert f"{bad}: line 2: invalid JSON" in out.stderr
    skipped = bugatlas("import", "--db", db, "--skip-bad", str(bad))
    assert skipped.returncode == 0 and "1 bad record(s) skipped" in skipped.stderr
    assert bugatlas("stats", "--db", str(tmp_path / "none.db")).returncode == 1
