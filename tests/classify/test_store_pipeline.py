"""classify / train / suggest / eval on a store of real issues; human labels are created
through the library API (Store.add_labels)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from bugatlas import Label, Store
from bugatlas.classify import (
    SOURCE,
    classify_store,
    eval_labels,
    load_trained,
    machine_labels,
    suggest,
    taxonomy_spec,
    train_store,
)
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.store.records import Issue


@pytest.fixture()
def small_store(corpus_records, tmp_path) -> Store:
    keys = sorted(corpus_records)[::15][:200]
    store = Store(tmp_path / "s.db")
    store.upsert_issues(Issue(repo=r["repo"], number=r["number"], title=r["title"], body=r["body"],
                              labels=r["labels"], state=r["state"]) for r in (corpus_records[k] for k in keys))
    yield store
    store.close()


def _human(store: Store, n: int) -> list[tuple[str, int]]:
    """Label n issues by hand (a crude annotator: hang/slow/else crash from the title)."""
    keys = []
    labels = []
    for issue in list(store.iter_issues())[:n]:
        t = (issue.title or "").lower()
        sym = "System Hang" if "hang" in t or "stuck" in t else "Abnormal Performance" if "slow" in t else "Crash"
        labels.append(Label(repo=issue.repo, issue_number=issue.number, taxonomy="liu2025", dimension="symptom",
                            value=sym, source_kind="human", source="annotator:a"))
        labels.append(Label(repo=issue.repo, issue_number=issue.number, taxonomy="liu2025",
                            dimension="root_cause", value="Incompatible Version", source_kind="human",
                            source="annotator:a"))
        keys.append(issue.key)
    store.add_labels(labels)
    return keys


def test_classify_labels_store_and_resumes(small_store: Store) -> None:
    res = classify_store(small_store, "liu2025", limit=120)
    assert res.labeled == 120 and res.candidates == 200
    labels = list(small_store.iter_labels("liu2025", source=SOURCE))
    assert labels and all(lab.confidence is not None and lab.evidence and lab.run_id == res.run_id for lab in labels)
    assert {lab.source_kind for lab in labels} <= {"rule", "model"}
    run = small_store.runs("classify")[-1]
    assert run["status"] == "ok" and run["params"]["version"] == res.version
    # the second run only does what is left, with the same classifier version
    again = classify_store(small_store, "liu2025")
    assert again.version == res.version and again.labeled == 80 and again.skipped == 120
    third = classify_store(small_store, "liu2025")
    assert third.labeled == 0
    assert len(machine_labels(small_store, "liu2025")) == 200
    # --min-kappa is another labeling, not "already done": every issue again, each dimension
    # with the threshold the shipped model's calibration gives (root-cause leaves: none)
    strict = classify_store(small_store, "liu2025", min_kappa=0.8)
    assert strict.labeled == 200 and strict.version == res.version + "+min-kappa-0.8"
    stored = machine_labels(small_store, "liu2025")
    assert not any(d.get("root_cause") for d in stored.values())
    assert 0 < sum(bool(d.get("symptom")) for d in stored.values()) < 200


def test_train_then_classify_uses_the_trained_model(small_store: Store) -> None:
    with pytest.raises(BugAtlasError, match="train needs at least"):
        train_store(small_store, "liu2025")
    _human(small_store, 60)
    res = train_store(small_store, "liu2025")
    assert res.n_human == 60
    model = load_trained(small_store, "liu2025")
    assert model is not None and model.version == res.version
    out = classify_store(small_store, "liu2025")
    assert res.version in out.version


def test_eval_and_suggest_on_human_labels(small_store: Store, tmp_path) -> None:
    with pytest.raises(BadInputError, match="no human liu2025 labels to compare with"):
        eval_labels("liu2025", store=small_store, curve=False)
    keys = _human(small_store, 40)
    classify_store(small_store, "liu2025")
    report, curve = eval_labels("liu2025", store=small_store, folds=4)
    sym = report.dimensions["symptom"]
    assert report.n_common == 40 and sym.n == 40
    assert 0 <= sym.accuracy <= 1 and -1 <= sym.kappa <= 1 and sym.majority_label == "Crash"
    assert "root_cause_group" in report.dimensions  # groups derived from the leaves
    assert curve and curve[0]["n"] < curve[-1]["n"] and "symptom" in curve[0]
    # the stored confidences give agreement by threshold: fewer issues kept as it rises
    rows = report.by_confidence["symptom"]
    assert rows[0]["threshold"] == 0.0 and rows[0]["n"] == 40 and rows[0]["coverage"] == 1.0
    assert [r["n"] for r in rows] == sorted((r["n"] for r in rows), reverse=True) and rows[-1]["n"] < 40
    picks = suggest(small_store, "liu2025", n=10)
    assert len(picks) == 10 and not ({(p["repo"], p["number"]) for p in picks} & set(keys))
    assert picks[0]["uncertainty"] >= picks[-1]["uncertainty"]
    # the CLI over the same store, JSON out
    db = str(small_store.path)
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "eval", "--taxonomy", "liu2025", "--db", db,
                          "--no-curve", "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    data = orjson.loads(res.stdout)
    assert data["dimensions"]["symptom"]["n"] == 40
    assert data["by_confidence"]["symptom"][0]["n"] == 40
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "eval", "--taxonomy", "liu2025", "--db", db,
                          "--no-curve"], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert res.returncode == 0 and "agreement by confidence" in res.stdout, res.stdout
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "suggest", "--taxonomy", "liu2025", "--db", db,
                          "-n", "5", "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and len(orjson.loads(res.stdout)) == 5


def test_eval_cli_prints_the_learning_curve_not_the_confidence_rows(small_store: Store) -> None:
    """The text report's learning-curve table holds the curve (sizes 10, 20, 32 of 40 labels by
    5-fold CV), not the last dimension's agreement-by-confidence rows (n = 40, 40, ..., nan)."""
    _human(small_store, 40)
    classify_store(small_store, "liu2025")
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "eval", "--taxonomy", "liu2025",
                          "--db", str(small_store.path)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "COLUMNS": "250"})
    assert res.returncode == 0, res.stderr
    curve = res.stdout.split("learning curve (cross-validated)", 1)[1]
    sizes = [line.split("│")[1].strip() for line in curve.splitlines() if line.startswith("│")]
    assert sizes == ["10", "20", "32"], curve
    assert "nan" not in curve


def test_classify_labels_the_failure_reports_the_study_rules_keep(small_store: Store) -> None:
    """After `filter --rules liu2025` (closed + `bug` label) classify labels the store's
    failure reports (view `failure_reports`: judged failure AND passing the rules), not every
    issue the text model judged a failure; rules that take nothing leave nothing to label."""
    from bugatlas.classify import failure_issues
    from bugatlas.filter import filter_store

    filter_store(small_store, rules="liu2025")
    reports = {(r["repo"], r["number"]) for r in small_store.query("SELECT repo, number FROM failure_reports")}
    judged = {(r["repo"], r["number"]) for r in small_store.query(
        "SELECT repo, number FROM issue_kinds WHERE kind = 'failure'")}
    assert reports and len(reports) < len(judged)          # the rules drop some judged failures
    assert {i.key for i in failure_issues(small_store)} == reports
    res = classify_store(small_store, "liu2025")
    assert res.candidates == len(reports)
    assert set(machine_labels(small_store, "liu2025")) <= reports
    assert len(failure_issues(small_store, all_issues=True)) == 200


def test_classify_after_a_partial_filter_says_what_it_left_out(small_store: Store) -> None:
    """An interrupted `filter` (here: one repository judged) leaves the other issues out of
    classify's candidates; the result counts them so the CLI can say so."""
    from bugatlas.filter import filter_store

    assert classify_store(small_store, "liu2025", limit=1).unfiltered == 0  # no filter run: all are candidates
    repo = "sgl-project/sglang"
    filter_store(small_store, repos=[repo])
    others = [i for i in small_store.iter_issues() if i.repo != repo and (i.title or i.body)]
    res = classify_store(small_store, "liu2025", limit=1)
    assert res.unfiltered == len(others) > 0
    env = {**os.environ, "BUGATLAS_DB": str(small_store.path)}
    out = subprocess.run([sys.executable, "-m", "bugatlas.cli", "classify", "--taxonomy", "liu2025", "--limit", "1"],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"warning: {len(others)} issues are not judged by the filter yet" in " ".join(out.stderr.split())
    filter_store(small_store)
    assert classify_store(small_store, "liu2025", limit=1).unfiltered == 0


def test_train_says_which_stage_it_is_in(small_store: Store) -> None:
    """Training with calibration is minutes of fits on real label sets: the steps are reported
    (the CLI shows them in its status line instead of a bare spinner)."""
    from bugatlas.classify.api import MIN_CALIBRATION_LABELS

    _human(small_store, max(MIN_CALIBRATION_LABELS, 100))
    steps: list[str] = []
    train_store(small_store, "liu2025", step=steps.append)
    assert steps[0].startswith("text model on ") and steps[1].startswith("supervised model on ")
    assert steps[2:] == [f"calibration: fold {f} of 5" for f in range(1, 6)]


def test_sigterm_stops_classify_like_ctrl_c_and_the_next_run_resumes(shared_data, tmp_path) -> None:
    """A supervisor's SIGTERM (`timeout`, `kill`, a scheduler) killed the process outright: the
    run stayed "running" in the runs table forever. It now stops like Ctrl-C: the run is
    recorded as interrupted, the batches committed so far are kept, and the next run resumes."""
    import signal
    import sqlite3
    import time

    from tests.conftest import CORPUS

    db = tmp_path / "s.db"
    env = {**os.environ, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "bugatlas.cli"]
    subprocess.run([*cli, "import", "--db", str(db), str(CORPUS)], check=True, capture_output=True, timeout=300, env=env)
    proc = subprocess.Popen([*cli, "classify", "--taxonomy", "liu2025", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    labeled = 0
    while time.monotonic() < deadline and proc.poll() is None and not labeled:
        time.sleep(0.2)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:  # the first batch is committed
            labeled = conn.execute("SELECT count(DISTINCT issue_number) FROM labels "
                                   "WHERE taxonomy = 'liu2025' AND source_kind != 'dataset'").fetchone()[0]
    assert labeled and proc.poll() is None, "classify ended before a batch was committed"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted:") and "Traceback" not in err
    with Store(db) as store:
        run = store.runs("classify")[-1]
        assert run["status"] == "interrupted" and run["summary"]["error"] == "terminated (SIGTERM)"
    again = subprocess.run([*cli, "classify", "--taxonomy", "liu2025", "--db", str(db), "--json"],
                           capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)["skipped"] >= labeled


def test_classify_counts_the_issues_that_got_no_label_at_all(small_store: Store, tmp_path) -> None:
    """`classify` said "200 issues labeled" when most of them got no label in any dimension
    (a codebook of one's own without signals: most reports share no word with its categories)."""
    from tests.conftest import USER_CODEBOOK_3_LEVELS

    book = tmp_path / "mine.yaml"
    book.write_text(USER_CODEBOOK_3_LEVELS)
    res = classify_store(small_store, str(book))
    with_labels = machine_labels(small_store, "mine")
    assert res.labeled == 200 and 0 < res.no_label < 200
    assert res.no_label == 200 - sum(any(v.values()) for v in with_labels.values())
    assert small_store.runs("classify")[-1]["summary"]["no_label"] == res.no_label


def test_suggest_ranks_and_shows_the_top_level_for_yu2026(small_store: Store) -> None:
    """yu2026's symptom is decided at its category first (when it was lent by the liu2025 model,
    only there); suggest ranked by the margin of the leaf probabilities and showed the leaf
    label, "-" for most issues."""
    picks = suggest(small_store, "yu2026", n=200)
    yu = taxonomy_spec("yu2026").dims["symptom"]
    names = {v for leaf in yu.store.values() for v in leaf.values()}
    assert len(picks) == 200 and all(p["labels"]["symptom"] for p in picks)
    assert all(set(p["labels"]["symptom"]) <= names for p in picks)
    uncertainty = [p["uncertainty"] for p in picks]
    assert uncertainty == sorted(uncertainty, reverse=True) and all(0 <= p["margins"]["symptom"] <= 1 for p in picks)
