"""Codebooks load, validate and agree exactly with the label values of the published data."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import LIU_CSV

from bugatlas.taxonomy import (
    CodebookError,
    list_codebooks,
    load_codebook,
    validate_codebook,
)


def bugatlas(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip


def _liu_values(column: str) -> set[str]:
    with open(LIU_CSV, encoding="utf-8-sig") as f:
        return {v.strip() for row in csv.DictReader(f) for v in (row[column] or "").split("@@") if v.strip()}


def test_liu2025_names_are_the_dataset_values(shared_data: Path) -> None:
    cb = load_codebook("liu2025")
    sym = cb.dimension("symptom")
    assert {c.name for c in sym.roots()} == _liu_values("Symptom(s)")
    assert len(sym.roots()) == 6
    assert {c.name for c in sym.children("Unexpected Output")} == _liu_values("Unexpected Tokens")
    rc = cb.dimension("root_cause")
    assert rc.multi_label
    assert {c.name for c in rc.leaves()} == _liu_values("Root Cause(s)")
    assert len(rc.leaves()) == 28
    assert [c.name for c in rc.roots()] == ["Functionality", "Environment", "Configuration", "Input/Output", "Resource"]
    assert {c.name for c in cb.leaves("component")} == _liu_values("Component")
    assert len(cb.leaves("component")) == 14
    assert {c.name for c in cb.leaves("phase")} == _liu_values("Phase")


def test_liu2025_group_counts_match_the_dataset(shared_data: Path) -> None:
    """Each group's dataset_count is the sum of its leaves' counts, which are the CSV's counts."""
    cb = load_codebook("liu2025")
    rc = cb.dimension("root_cause")
    counts: dict[str, int] = {}
    with open(LIU_CSV, encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            for v in row["Root Cause(s)"].split("@@"):
                counts[v.strip()] = counts.get(v.strip(), 0) + 1
    for leaf in rc.leaves():
        assert leaf.dataset_count == counts[leaf.name], leaf.name
    for group in rc.roots():
        assert group.dataset_count == sum(c.dataset_count for c in rc.children(group.id)), group.name
    assert {g.name: g.dataset_count for g in rc.roots()} == {
        "Functionality": 432, "Environment": 301, "Configuration": 242, "Input/Output": 41, "Resource": 37}


def test_api_contract() -> None:
    cb = load_codebook("liu2025")
    assert load_codebook("liu2025") is cb  # cached
    assert cb.name == "liu2025" and cb.title
    iv = cb.category("root_cause", "Incompatible Version")
    assert cb.category("root_cause", "incompatible_version") is iv
    assert [c.name for c in cb.path("root_cause", "incompatible_version")] == ["Environment", "Incompatible Version"]
    assert iv.parent == "environment" and iv.definition and iv.include and iv.next_steps
    assert any("undefined symbol" in m for m in iv.matches("ImportError: ... undefined symbol: _ZN3c10"))
    assert cb.store_dimension("unexpected_output")[0].name == "symptom"
    assert cb.store_dimension("root_cause_group")[1] == 0
    assert cb.dimension("root_cause").level_name("Misused API") == "root_cause"
    assert cb.dimension("root_cause").level_name("Resource") == "root_cause_group"
    # Lookups forgive case and whitespace; unknown names raise KeyError naming the dimension.
    assert cb.find("symptom", "  system   HANG ") is cb.category("symptom", "System Hang")
    with pytest.raises(KeyError, match="root_cause"):
        cb.category("root_cause", "Cosmic Rays")
    with pytest.raises(KeyError, match="has no dimension"):
        cb.dimension("severity")


def test_every_category_has_definition_and_next_steps() -> None:
    cb = load_codebook("liu2025")
    for d in cb.dimensions.values():
        for c in d.categories.values():
            assert c.definition, (d.name, c.id)
            assert c.next_steps, (d.name, c.id)
    for leaf in cb.leaves("root_cause"):
        assert leaf.signals, leaf.name


def test_builtin_codebooks_validate() -> None:
    names = list_codebooks()
    assert "liu2025" in names and "datasets" not in names
    for n in names:
        assert validate_codebook(n) == [], n


BAD = """
name: broken
dimensions:
  cause:
    categories:
      - {id: a, name: Alpha}
      - {id: a, name: Again}
      - {id: b, name: alpha}
      - {id: c, name: Gamma, parent: zzz}
      - {id: d, name: Delta, signals: ["(unclosed"]}
"""


def test_validate_reports_each_problem_in_one_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text(BAD)
    problems = validate_codebook(str(f))
    assert len(problems) == 4
    assert all(p.startswith(str(f)) and "\n" not in p for p in problems)
    assert any("duplicate id 'a'" in p for p in problems)
    assert any("category b" in p and "already used" in p for p in problems)
    assert any("category c" in p and "parent 'zzz'" in p for p in problems)
    assert any("category d" in p and "regular expression" in p for p in problems)
    with pytest.raises(CodebookError, match="broken.yaml"):
        load_codebook(f)
    out = bugatlas("taxonomy", "validate", str(f))
    assert out.returncode == 2 and "parent 'zzz'" in out.stderr


def test_validate_cli_prints_each_problem_on_one_line_when_piped(tmp_path: Path) -> None:
    """Piped (no terminal), the problems are not wrapped at 80 columns: one line per problem,
    each starting with the file, so `grep`/`wc -l` on them work."""
    f = tmp_path / "a-rather-long-folder-name-for-codebooks" / "broken.yaml"
    f.parent.mkdir()
    f.write_text(BAD)
    out = bugatlas("taxonomy", "validate", str(f))
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 4, out.stderr
    assert all(line.startswith(f"{f}: dimension cause: category ") for line in lines), out.stderr


MAPPED = """
name: mapped
dimensions:
  symptom:
    categories:
      - {id: crash, name: Crash Or Abort}
      - {id: hang, name: Hang}
mappings:
"""


@pytest.mark.parametrize("mapping, message", [
    ("  nosuchbook: {symptom: {Hang: Hang}}", "mappings: target 'nosuchbook': unknown codebook 'nosuchbook'"),
    ("  liu2025: {symptom: {Hang: No Such Thing}}", "'Hang' -> unknown liu2025 symptom category 'No Such Thing'"),
    ("  liu2025: {symptom: {Hung: System Hang}}", "unknown mapped category 'Hung'"),
    ("  liu2025: {cause: {Hang: System Hang}}", "mapped has no dimension 'cause'"),
])
def test_validate_checks_mappings(tmp_path: Path, mapping: str, message: str) -> None:
    """A `mappings:` block naming a codebook that does not exist, or categories either codebook
    lacks, fails validation with one line naming the file (not only when `taxonomy map` runs)."""
    f = tmp_path / "mapped.yaml"
    f.write_text(MAPPED + mapping + "\n")
    out = bugatlas("taxonomy", "validate", str(f))
    assert out.returncode == 2 and out.stderr.startswith(str(f)) and message in out.stderr, out.stderr
    assert len(out.stderr.splitlines()) == 1, out.stderr
    f.write_text(MAPPED + "  liu2025: {symptom: {Crash Or Abort: Crash, Hang: System Hang}}\n")
    assert validate_codebook(str(f)) == []


def test_user_codebook_by_path_and_folder(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\ntitle: My study\ndimensions:\n  cause:\n    multi_label: true\n"
                 "    categories:\n      - {id: g, name: Group}\n"
                 "      - {id: l, name: Leaf, parent: g, signals: ['boom']}\n")  # fmt: skip
    cb = load_codebook(str(f))
    assert cb.name == "mine" and [c.name for c in cb.path("cause", "Leaf")] == ["Group", "Leaf"]
    assert cb.dimension("cause").levels == ["cause_level0", "cause"]
    env = {**__import__("os").environ, "BUGATLAS_CODEBOOKS": str(tmp_path)}
    out = bugatlas("taxonomy", "show", "mine", env=env)
    assert out.returncode == 0 and "Leaf" in out.stdout
    out = bugatlas("taxonomy", "list", "--json", env=env)
    assert '"mine"' in out.stdout and '"liu2025"' in out.stdout


def test_flags_must_be_booleans(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\ndimensions:\n  cause:\n    multi_label: 'no'\n"
                 "    categories:\n      - {id: l, name: Leaf}\n")  # fmt: skip
    with pytest.raises(CodebookError, match="cause.*multi_label must be true or false, not 'no'"):
        load_codebook(str(f))


def test_codebook_not_in_utf8_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "latin.yaml"
    f.write_bytes('name: latin\ndimensions:\n  symptom:\n    categories:\n      - {id: a, name: "Café"}\n'
                  .encode("latin-1"))
    with pytest.raises(CodebookError, match=r"latin.yaml: not UTF-8 text .*save the codebook as UTF-8"):
        load_codebook(str(f))
    out = bugatlas("taxonomy", "show", str(f))
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_unknown_codebook_is_one_clear_line() -> None:
    out = bugatlas("taxonomy", "show", "nope")
    assert out.returncode == 2
    assert "unknown codebook 'nope'" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = bugatlas("taxonomy", "show", "/no/such/file.yaml")
    assert out.returncode == 2 and "codebook file not found" in out.stderr


def test_show_prints_tree() -> None:
    out = bugatlas("taxonomy", "show", "liu2025", "--dimension", "root_cause", "--full")
    assert out.returncode == 0, out.stderr
    assert "Incompatible Version" in out.stdout and "undefined symbol" in out.stdout


def test_all_builtin_codebooks_load_and_print() -> None:
    assert {"liu2025", "yu2026", "yu2026-artifact", "serving7", "issue-kind"} <= set(list_codebooks())
    s7 = load_codebook("serving7")
    assert [c.name for c in s7.roots("category")] == [
        "Memory Management", "Concurrency & Synchronization", "GPU/CUDA", "API/Protocol",
        "Model-Specific", "Performance Degradation", "Scaling & Distribution"]
    assert [c.name for c in load_codebook("issue-kind").leaves("kind")] == [
        "failure", "feature", "question", "documentation", "other"]
    yu = load_codebook("yu2026")
    assert [c.name for c in yu.roots("symptom")] == ["Runtime Crash", "Process Hang", "Incorrect Functionality", "Poor Performance"]
    assert sum(c.published_count for c in yu.roots("symptom")) == 705
    assert len(yu.roots("root_cause")) == 5 and [c.name for c in yu.leaves("stage")] == ["Fine-tuning", "Inference"]
    for name in ("yu2026", "serving7", "issue-kind", "yu2026-artifact"):
        out = bugatlas("taxonomy", "show", name)
        assert out.returncode == 0, out.stderr
