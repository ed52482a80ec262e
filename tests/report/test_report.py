"""The report on the real datasets: files, escaping, and rendering in headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bugatlas import Issue, Label, Store
from bugatlas.report import build_report, md_escape

from ..conftest import LIU_CSV, REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
# Screenshots go to the test's temp folder; BUGATLAS_UPDATE_SCREENSHOTS=1 refreshes the copies
# kept in docs/report/ (so a plain test run leaves the work tree clean).
DOCS_SHOTS = REPO_ROOT / "docs" / "report"
EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">| **bold** [x](javascript:alert(1))'

# Marks plotly draws for each kind of trace: a figure with none of them rendered nothing.
MARKS_JS = """
() => Array.from(document.querySelectorAll('div[data-figure]')).map(el => ({
  id: el.dataset.figure,
  svg: el.querySelectorAll('svg.main-svg').length,
  marks: el.querySelectorAll('.point, .slice, .hm image, .sankey-node, .sankey-link, path.js-line, .bars path').length,
  width: el.getBoundingClientRect().width, height: el.getBoundingClientRect().height,
}))
"""


@pytest.fixture(scope="module")
def liu_report(_imported_store_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("liu-report")
    with Store(_imported_store_file) as store:
        result = build_report(store, out, taxonomy="liu2025", audit_files=[LIU_CSV])
    return result


def test_files_and_numbers(liu_report):
    out = liu_report.out
    assert (out / "index.html").stat().st_size > 1_000_000  # plotly inlined
    html = (out / "index.html").read_text()
    assert "<script src=" not in html  # everything inline; the browser test checks no request leaves
    sym = (out / "tables" / "dist_symptom_symptom.csv").read_text()
    for line in ("Crash,603", "Unexpected Output,122", "Feature Failure,107", "Abnormal Performance,53",
                 "System Hang,35", "Silent Error,12"):  # fmt: skip
        assert line in sym
    groups = (out / "tables" / "overview_groups.csv").read_text()
    for line in ("vLLM,290", "MLC-LLM,214", "TensorRT-LLM,180", "Llama.cpp,124", "DeepSpeed,121", "Total,929"):
        assert line in groups
    tex = (out / "tables" / "dist_symptom_symptom.tex").read_text()
    assert "\\begin{tabular}" in tex and "Crash" in tex
    assert (out / "tables" / "audit_differences.csv").exists()
    assert "liu.root_cause_instances" in (out / "tables" / "audit_differences.csv").read_text()
    md = (out / "report.md").read_text()
    assert "| Crash | 603 |" in md
    assert liu_report.figures >= 10


@pytest.fixture(scope="module")
def olf_report(_imported_store_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("olf-report")
    with Store(_imported_store_file) as store:
        return build_report(store, out, taxonomy="yu2026-artifact")


def test_olf_report_renders_in_chromium(olf_report, tmp_path):
    shot = tmp_path / "yu2026-artifact-report.png"
    marks, (pwned, remote) = _render(olf_report.html, shot, section="#lifecycle")
    assert len(marks) == olf_report.figures
    assert not [m["id"] for m in marks if m["svg"] == 0 or m["marks"] == 0]
    assert {"sankey-lifecycle", "versions-symptom", "sunburst-symptom"} <= {m["id"] for m in marks}
    assert not remote and pwned == 0
    _keep_screenshots(tmp_path)


def test_markdown_escape():
    s = md_escape(EVIL + "\nsecond line")
    assert "<" not in s and "\n" not in s and "\\|" in s and "\\[" in s


@pytest.fixture(scope="module")
def evil_store(tmp_path_factory):
    """Issues with hostile titles, labelled by a classifier, so the report quotes them."""
    path = tmp_path_factory.mktemp("evil") / "evil.db"
    store = Store(path)
    store.upsert_issues([Issue(repo="evil/engine", number=i, title=EVIL if i % 2 else f"ok {i}", body=EVIL,
                               state="closed" if i % 3 else "open", created_at=f"2024-0{1 + i % 6}-01T00:00:00Z",
                               closed_at=f"2024-0{2 + i % 6}-15T00:00:00Z" if i % 3 else None,
                               html_url="javascript:alert(1)" if i == 1 else f"https://github.com/evil/engine/issues/{i}",
                               labels=[EVIL, "bug"], comments_count=i, author_association="NONE")
                         for i in range(1, 25)])  # fmt: skip
    labels = []
    for i in range(1, 25):
        labels.append(Label(repo="evil/engine", issue_number=i, taxonomy="t", dimension="symptom",
                            value=EVIL if i % 4 == 0 else "Crash", source_kind="rule", source="r"))  # fmt: skip
        labels.append(Label(repo="evil/engine", issue_number=i, taxonomy="t", dimension="root_cause",
                            value="A - " + ("<b>x</b>" if i % 2 else "y"), source_kind="rule", source="r"))  # fmt: skip
    store.add_labels(labels)
    yield store
    store.close()


def test_hostile_titles_are_escaped(evil_store, tmp_path):
    r = build_report(evil_store, tmp_path / "rep", taxonomy="t")
    html = r.html.read_text()
    body = html.split("</head>", 1)[1]
    assert "<script>window.__pwned" not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body
    assert 'href="javascript:' not in body
    md = r.markdown.read_text()
    assert "<script>" not in md and "<img" not in md
    assert "### Example reports" in md  # the examples have a heading, as in the HTML


def _browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run installs it)", pytrace=False)
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _keep_screenshots(folder: Path) -> None:
    if os.environ.get("BUGATLAS_UPDATE_SCREENSHOTS"):
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        for png in folder.glob("*.png"):
            shutil.copy(png, DOCS_SHOTS / png.name)


def _render(html: Path, shot: Path | None, section: str = "#crosstab") -> tuple[list[dict], object]:
    with _browser() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            requests = []
            page.on("request", lambda req: requests.append(req.url))
            page.goto(html.as_uri())
            page.wait_for_function("document.body.dataset.rendered === '1'", timeout=60_000)
            page.wait_for_timeout(500)
            marks = page.evaluate(MARKS_JS)
            pwned = page.evaluate("window.__pwned || 0")
            if shot is not None:
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=False)
                page.locator(section).first.screenshot(path=str(shot.with_name(shot.stem + "-section.png")))
        finally:
            browser.close()
    remote = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    return marks, (pwned, remote)


def test_report_renders_in_chromium(liu_report, tmp_path):
    shot = tmp_path / "liu2025-report.png"
    marks, (pwned, remote) = _render(liu_report.html, shot)
    assert len(marks) == liu_report.figures
    empty = [m["id"] for m in marks if m["svg"] == 0 or m["marks"] == 0 or m["height"] < 100]
    assert not empty, f"figures that rendered nothing: {empty}"
    assert {m["id"].split("-")[0] for m in marks} >= {"bar", "sunburst", "heatmap", "sankey", "groups", "residuals"}
    assert not remote and pwned == 0
    assert shot.stat().st_size > 10_000
    _keep_screenshots(tmp_path)


def test_hostile_report_runs_no_script(evil_store, tmp_path):
    r = build_report(evil_store, tmp_path / "rep", taxonomy="t")
    marks, (pwned, remote) = _render(r.html, None)
    assert pwned == 0 and not remote
    assert marks and all(m["marks"] > 0 for m in marks), marks
    kinds = {m["id"].split("-")[0] for m in marks}
    assert {"monthly", "km", "labels", "authors"} <= kinds  # evolution lines, survival, label bars


def test_cli_report(_imported_store_file, tmp_path):
    import subprocess
    import sys

    db = tmp_path / "c.db"
    shutil.copy(_imported_store_file, db)
    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "report", "--out", str(tmp_path / "o"), "-t",
                        "yu2026-artifact", "--db", str(db), "--json"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "tables" / "audit_differences.csv").exists()
    assert "Qwen,449" in (tmp_path / "o" / "tables" / "overview_groups.csv").read_text()


def test_probe_findings_beside_mined_issues(_imported_store_file, tmp_path):
    """Findings the probe stage stored (its tables, written here by SQL) get a report section
    comparing their symptoms with the mined Liu et al. distribution; messages are escaped."""
    pytest.importorskip("bugatlas.probe.storage", reason="probe stage not installed")
    db = tmp_path / "p.db"
    shutil.copy(_imported_store_file, db)
    with Store(db) as store:
        with store.transaction() as conn:
            conn.execute("INSERT INTO probe_runs (id, base_url, model, engine, suite, started_at) "
                         "VALUES (1, 'http://127.0.0.1:1', 'tiny', 'llama.cpp', 'smoke', '2026-11-27T00:00:00Z')")  # fmt: skip
            conn.executemany(
                "INSERT INTO probe_findings (probe_run_id, check_id, oracle, symptom, unexpected_output, message) "
                "VALUES (1, ?, ?, ?, ?, ?)",
                [("c1", "status", "Crash", None, "HTTP 500"),
                 ("c2", "repetition", "Unexpected Output", "Repetition", EVIL),
                 ("c3", "latency", "Abnormal Performance", None, "slow")],
            )  # fmt: skip
        r = build_report(store, tmp_path / "rep", taxonomy="liu2025", audit=False)
    assert "probe" in r.sections
    table = (tmp_path / "rep" / "tables" / "probe_symptoms.csv").read_text()
    assert "Crash,1," in table and "603" in table  # probe count beside the mined count
    body = r.html.read_text().split("</head>", 1)[1]
    assert "<script>window.__pwned" not in body


def test_agreement_section_from_annotations(_imported_store_file, tmp_path):
    """Two annotators label a liu2025 sample with the annotate stage; the report shows their
    agreement (perfect here: both give the same symptom to each item)."""
    ann = pytest.importorskip("bugatlas.annotate", reason="annotate stage not installed")
    db = tmp_path / "a.db"
    shutil.copy(_imported_store_file, db)
    with Store(db) as store:
        sample = ann.draw_sample(store, "liu2025", size=12, seed=3, dimensions=["symptom"], repos=["sgl-project/sglang"])
        ann.assign(store, sample, ["ann", "ben"], k=2, arbitrator=["arb"], owner=["own"])
        for who in ("ann", "ben"):
            for q in ann.queue_for(store, sample, who):
                value = ["Crash"] if q["item_id"] % 3 else ["System Hang"]
                ann.save_annotation(store, sample, q["assignment_id"], who, {"symptom": value}, status="done")
        r = build_report(store, tmp_path / "rep", taxonomy="liu2025", audit=False)
    assert "agreement" in r.sections
    text = (tmp_path / "rep" / "tables" / "agreement.csv").read_text()
    assert "symptom" in text and "ann+ben: 1.000" in text


def test_unwritable_table_path_is_a_clear_error(evil_store, tmp_path):
    from bugatlas.errors import BugAtlasError

    out = tmp_path / "rep"
    (out / "index.html").mkdir(parents=True)  # a folder where the page goes
    with pytest.raises(BugAtlasError, match=r"--out .*index\.html"):
        build_report(evil_store, out, taxonomy="t")
    assert not (out / "tables").exists()  # nothing half-written


def test_rebuilt_report_has_no_stale_tables_and_a_failed_build_keeps_the_old_one(evil_store, tmp_path):
    """Rebuilding into the same folder (as `bugatlas run` does) left the previous build's
    tables beside the new ones; a build that failed half way left a mix of both."""
    from bugatlas.errors import BugAtlasError

    out = tmp_path / "rep"
    full = build_report(evil_store, out, taxonomy="t", audit=False)
    assert (out / "tables" / "dist_symptom_symptom.csv").exists()
    before = {p.name: p.read_bytes() for p in (out / "tables").iterdir()}
    raw = build_report(evil_store, out, taxonomy=None, audit=False)
    written = {p.name for p in raw.tables + raw.latex}
    assert {p.name for p in (out / "tables").iterdir()} == written
    assert len(written) < len(before) and not [p for p in out.iterdir() if p.name.startswith(".")]
    # A build that fails leaves the previous report whole.
    build_report(evil_store, out, taxonomy="t", audit=False)
    assert {p.name for p in (out / "tables").iterdir()} == {p.name for p in full.tables + full.latex}
    before = {p.name: p.read_bytes() for p in (out / "tables").iterdir()}
    (out / "report.md").unlink()
    (out / "report.md").mkdir()  # the last file cannot be written
    with pytest.raises(BugAtlasError, match=r"--out .*report\.md"):
        build_report(evil_store, out, taxonomy=None, audit=False)
    assert {p.name: p.read_bytes() for p in (out / "tables").iterdir()} == before


def test_agreement_section_numbers_are_the_annotators_kappa(_imported_store_file, tmp_path):
    """With real disagreements and an unfinished draft, the report's agreement table shows
    Cohen's kappa (scikit-learn's), not the observed agreement, over the done items only."""
    ann = pytest.importorskip("bugatlas.annotate", reason="annotate stage not installed")
    from sklearn.metrics import cohen_kappa_score

    db = tmp_path / "a.db"
    shutil.copy(_imported_store_file, db)
    sym = ["Crash", "System Hang", "Feature Failure"]
    with Store(db) as store:
        sample = ann.draw_sample(store, "liu2025", size=12, seed=5, dimensions=["symptom"], repos=["sgl-project/sglang"])
        ann.assign(store, sample, ["ann", "ben"], k=2)
        given = {}
        for who in ("ann", "ben"):
            for i, q in enumerate(ann.queue_for(store, sample, who)):
                value = sym[q["item_id"] % 3] if who == "ann" or i % 3 else sym[(q["item_id"] + 1) % 3]
                draft = who == "ben" and i == 1
                ann.save_annotation(store, sample, q["assignment_id"], who, {"symptom": value},
                                    status="draft" if draft else "done")
                if not draft:
                    given.setdefault(q["item_id"], {})[who] = value
        build_report(store, tmp_path / "rep", taxonomy="liu2025", audit=False)
    both = [g for g in given.values() if len(g) == 2]
    kappa = cohen_kappa_score([g["ann"] for g in both], [g["ben"] for g in both])
    import csv as _csv

    rows = list(_csv.DictReader((tmp_path / "rep" / "tables" / "agreement.csv").open()))
    row = next(r for r in rows if r["level"] == "symptom")
    assert int(row["items"]) == len(both) == 11
    assert row["cohen_kappa"] == f"ann+ben: {kappa:.3f}" and 0 < kappa < 0.9


def test_audit_file_that_cannot_be_read_is_refused(evil_store, tmp_path):
    """`report --audit-file` naming a missing file or another file was accepted and ignored:
    the audit silently fell back to the store's counts."""
    from bugatlas.errors import BadInputError

    with pytest.raises(BadInputError, match="--audit-file .*nope.csv: no such file"):
        build_report(evil_store, tmp_path / "rep", taxonomy="t", audit_files=[tmp_path / "nope.csv"])
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="--audit-file .*other.csv: not Liu"):
        build_report(evil_store, tmp_path / "rep", taxonomy="t", audit_files=[other])
    assert not (tmp_path / "rep" / "tables").exists()


def test_unknown_audit_paper_names_the_report_option(evil_store, tmp_path):
    from bugatlas.errors import BadInputError

    with pytest.raises(BadInputError, match="^--audit liu2052: known papers are liu2025"):
        build_report(evil_store, tmp_path / "rep", taxonomy="t", audit_papers=["liu2052"])


def test_long_categories_sharing_a_prefix_get_their_own_bar(olf_report):
    """Open-LLM-Failures' level-2 root causes ("Configuration and Parameter Setting Errors -
    Inference …" / "… - Fine-tuning …") were cut to the same 40 characters, and plotly drew
    their bars on one row, one hiding the other. Every category now has its own row."""
    import pandas as pd

    from bugatlas.report import figures as F

    for name in ("dist_root_cause_level_2", "dist_symptom_level_3"):
        d = pd.read_csv(olf_report.out / "tables" / f"{name}.csv")
        fig = F.bar(d, name)
        assert len(set(fig.data[0].y)) == len(fig.data[0].y) == min(25, len(d))
    t = pd.DataFrame([[1, 2], [3, 4]], index=["A long shared prefix for rows - one", "A long shared prefix for rows - two"],
                     columns=["Another long shared prefix, column 1", "Another long shared prefix, column 2"])
    h = F.heatmap(t, "t")
    assert len(set(h.data[0].x)) == 2 and len(set(h.data[0].y)) == 2


def test_latex_captions_are_escaped(olf_report):
    """pandas escapes a table's cells but not its caption: "5%)}" commented out the closing
    brace and "root_cause" left text mode, so the .tex files did not compile."""
    import re

    special = re.compile(r"(?<!\\)[%_&#$^~]")
    captions = [line for tex in (olf_report.out / "tables").glob("*.tex")
                for line in tex.read_text().splitlines() if line.startswith("\\caption")]
    assert len(captions) >= 10
    for line in captions:
        body = re.match(r"\\caption(?:\[\])?\{(.*?)\}(?: \\label\{[^}]*\})?(?: \\\\)?$", line).group(1)
        assert not special.search(body.replace("\\textbar{}", "").replace("\\textgreater{}", "")), line
        assert "\\%" in line or "%" not in line
    assert any("root\\_cause" in c for c in captions) and any("5\\%" in c for c in captions)
