"""`bugatlas run STUDY.yaml` on the provided study files and the real shared data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bugatlas.errors import BadInputError
from bugatlas.study import load_study_file, run_study

from ..conftest import LIU_CSV, REPO_ROOT

STUDIES = REPO_ROOT / "studies"


@pytest.fixture()
def study_dir(tmp_path, shared_data, monkeypatch):
    """The provided study files in a temp folder (their ../build lands in tmp), reading the
    shared data through the BUGATLAS_SHARED_DATA override."""
    d = tmp_path / "studies"
    shutil.copytree(STUDIES, d)
    monkeypatch.setenv("BUGATLAS_SHARED_DATA", str(shared_data))
    return d


def test_liu_study_reproduces_the_paper_and_resumes(study_dir):
    study, steps = run_study(study_dir / "liu2025-engines.yaml")
    status = {r.step: r.status for r in steps}
    assert status["import"] == "ran" and status["report"] == "ran"
    assert status["collect"] == "skipped (not configured)"
    out = study.report_dir
    assert out == study_dir.parent / "build" / "liu2025-engines" / "report"
    groups = (out / "tables" / "overview_groups.csv").read_text()
    for line in ("vLLM,290", "MLC-LLM,214", "TensorRT-LLM,180", "Llama.cpp,124", "DeepSpeed,121", "Total,929"):
        assert line in groups
    sym = (out / "tables" / "dist_symptom_symptom.csv").read_text()
    for line in ("Crash,603", "Unexpected Output,122", "Feature Failure,107", "Abnormal Performance,53",
                 "System Hang,35", "Silent Error,12"):  # fmt: skip
        assert line in sym
    audit = (out / "tables" / "audit_all.csv").read_text()
    assert "liu.root_cause_instances" in audit and "1053" in audit  # raw pairs counted from the file
    # second run: nothing to do
    _, again = run_study(study_dir / "liu2025-engines.yaml")
    assert {r.step: r.status for r in again}["import"] == "skipped (done)"
    assert {r.step: r.status for r in again}["report"] == "skipped (done)"
    # a deleted report is rebuilt without re-importing
    shutil.rmtree(out)
    _, third = run_study(study_dir / "liu2025-engines.yaml")
    assert [r.status for r in third if r.step in ("import", "report")] == ["skipped (done)", "ran"]


def test_changed_input_reruns_downstream(tmp_path, shared_data):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(LIU_CSV, data / "dataset.csv")
    f = tmp_path / "s" / "mini.yaml"
    f.parent.mkdir()
    f.write_text("name: mini\nvars: {d: ../data}\nsources: {import: [\"${d}/dataset.csv\"]}\n"
                 "taxonomy: liu2025\nstore: out/study.db\nreport: {out: out/report}\naudit: {enabled: false}\n")  # fmt: skip
    _, s1 = run_study(f)
    assert [r.status for r in s1 if r.step in ("import", "report")] == ["ran", "ran"]
    os.utime(data / "dataset.csv", ns=(1, 1))
    _, s2 = run_study(f)
    assert [r.status for r in s2 if r.step in ("import", "report")] == ["ran", "ran"]
    _, s3 = run_study(f, start="report")
    assert [r.status for r in s3 if r.step in ("import", "report")] == ["skipped (done)", "ran"]


def test_report_that_failed_on_a_rerun_is_not_skipped_next_time(tmp_path, shared_data):
    from bugatlas.errors import BugAtlasError

    f = tmp_path / "s" / "mini.yaml"
    f.parent.mkdir()
    f.write_text(f"name: mini\nsources: {{import: [{LIU_CSV}]}}\ntaxonomy: liu2025\nstore: out/study.db\n"
                 "report: {out: out/report}\naudit: {enabled: false}\n")  # fmt: skip
    study, s1 = run_study(f)
    assert [r.status for r in s1 if r.step in ("import", "report")] == ["ran", "ran"]
    # a re-run of the report stops halfway (here: a file path it cannot write)
    blocker = study.report_dir / "report.md"
    blocker.unlink()
    blocker.mkdir()
    with pytest.raises(BugAtlasError, match="report.md"):
        run_study(f, start="report")
    blocker.rmdir()
    # the next plain run must rebuild the half-written report, not call it done
    _, s3 = run_study(f)
    assert [r.status for r in s3 if r.step in ("import", "report")] == ["skipped (done)", "ran"]
    assert "Total,929" in (study.report_dir / "tables" / "overview_groups.csv").read_text()


def test_misspelt_analysis_key_fails_before_the_report_is_written(tmp_path, shared_data):
    f = tmp_path / "s" / "mini.yaml"
    f.parent.mkdir()
    f.write_text(f"name: mini\nsources: {{import: [{LIU_CSV}]}}\ntaxonomy: liu2025\nstore: out/study.db\n"
                 "analysis: {nmes: {vllm-project/vllm: vLLM}}\nreport: {out: out/report}\naudit: {enabled: false}\n")  # fmt: skip
    with pytest.raises(BadInputError, match="unknown key 'nmes'"):
        run_study(f)
    assert not (tmp_path / "s" / "out" / "report" / "index.html").exists()


def test_olf_study_counts_and_mapping(study_dir):
    study, steps = run_study(study_dir / "yu2026-models.yaml")
    status = {r.step: r for r in steps}
    out = study.report_dir
    groups = (out / "tables" / "overview_groups.csv").read_text()
    for line in ("Qwen,449", "Llama,171", "DeepSeek,86", "Total,706"):
        assert line in groups
    if status["map"].status == "ran":  # mapped into the paper's taxonomy
        assert "Runtime Crash" in (out / "tables" / "dist_symptom_symptom_category.csv").read_text()
        stage = (out / "tables" / "dist_stage_stage.csv").read_text()
        assert "Inference,557" in stage and "Fine-tuning,149" in stage
        assert (out / "tables" / "versions_symptom.csv").exists()  # models borrowed from the release
    else:
        assert status["map"].status == "unavailable" and "mapping" in status["map"].message
    diff = (out / "tables" / "audit_differences.csv").read_text()
    assert "yu.total," in diff and "yu.stage.inference" in diff


def test_serving_study_degrades_without_stages(study_dir):
    study, steps = run_study(study_dir / "serving-vllm-exp.yaml")
    by = {r.step: r for r in steps}
    for step, stage in (("filter", "filter"), ("classify", "classify")):
        assert by[step].status in ("ran", "unavailable")
        if by[step].status == "unavailable":
            assert f"the {stage} stage is not in this build" in by[step].message
    assert (study.report_dir / "index.html").exists()
    assert "vllm_exp.issues.sum" in (study.report_dir / "tables" / "audit_differences.csv").read_text()
    total = [line for line in (study.report_dir / "tables" / "overview_groups.csv").read_text().splitlines()
             if line.startswith("Total,")][0]  # fmt: skip
    records = int(total.split(",")[1])
    if by["filter"].status == "ran":  # the report covers the failure reports only
        n = int(by["filter"].message.split()[0])
        assert 0 < n < 2997
        if by["classify"].status == "ran":  # ... those the classifier labelled in serving7
            from bugatlas import Store

            with Store(study.store_path) as store:
                labelled = store.query(
                    "SELECT COUNT(DISTINCT l.repo || '#' || l.issue_number) AS n FROM labels l "
                    "JOIN failure_reports f ON f.repo = l.repo AND f.number = l.issue_number "
                    "WHERE l.taxonomy = 'serving7'")[0]["n"]  # fmt: skip
            assert 0 < records == labelled <= n
            assert (study.report_dir / "tables" / "overview_dimensions.csv").exists()
        else:
            assert records == n
    else:
        assert records == 2997


def test_cli_run_json(study_dir):
    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "run", str(study_dir / "liu2025-engines.yaml"), "--json"],
                       capture_output=True, text=True, env={**os.environ})  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = orjson.loads(r.stdout)
    assert [s["step"] for s in data["steps"]] == ["import", "collect", "hydrate", "filter", "map", "classify", "report"]


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nbogus: 1\n", "unknown key 'bogus'"),
    ("name: x\nsources: {import: [nothere.csv]}\n", "nothere.csv does not exist"),
    ("name: x\nsources: [\n", "not valid YAML"),
    ("name: x\nsources: {import: [\"${nope}/a.csv\"]}\n", "${nope} is not defined"),
    ("- a list\n", "YAML mapping"),
    ("name: x\nsources: [a.csv]\n", "sources: expected a mapping"),
    ("name: x\nsources: {import: a.csv}\n", "sources.import: expected a list of paths"),
    ("name: x\nfilter: 3\n", "filter: expected a mapping"),
    ("name: x\nclassify: rules\n", "classify: expected a mapping"),
    ("name: x\nmap: yu2026-artifact\n", "map: expected a mapping"),
    ("name: x\nreport: out/\n", "report: expected a mapping"),
    ("name: x\nsources: {collect: [vllm-project/vllm]}\n", "sources.collect: expected a mapping"),
])  # fmt: skip
def test_bad_study_files(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(BadInputError, match=message.replace("$", r"\$").replace("{", r"\{").replace("}", r"\}")):
        run_study(f)


def test_paths_resolve_relative_to_the_study_file(tmp_path, monkeypatch):
    monkeypatch.delenv("BUGATLAS_SHARED_DATA", raising=False)
    f = tmp_path / "a" / "b.yaml"
    f.parent.mkdir()
    f.write_text("name: b\nvars: {shared_data: ../../shared/data}\n")
    s = load_study_file(f)
    assert s.variables["shared_data"] == str((tmp_path / "a" / "../../shared/data").resolve())
    assert s.store_path == (tmp_path / "build" / "b" / "study.db").resolve()
    assert s.resolve("x/y.csv") == (tmp_path / "a" / "x" / "y.csv")
    monkeypatch.setenv("BUGATLAS_SHARED_DATA", "/data/here")
    assert load_study_file(f).variables["shared_data"] == "/data/here"


def test_provided_studies_resolve_shared_data_beside_the_clone(monkeypatch):
    monkeypatch.delenv("BUGATLAS_SHARED_DATA", raising=False)
    s = load_study_file(STUDIES / "liu2025-engines.yaml")
    assert Path(s.variables["shared_data"]) == (REPO_ROOT.parent / "shared" / "data").resolve()


def test_collect_step_against_local_github(tmp_path, shared_data, monkeypatch):
    """sources.collect calls the collect stage against a real local GitHub stand-in; the
    collected fixing pull requests feed the report's fix-effort table."""
    testing = pytest.importorskip("bugatlas.collect.testing", reason="collect stage not installed")
    data = testing.load_corpus(shared_data / "serving-issues-2025.jsonl.gz", repos=["sgl-project/sglang"],
                               limit_per_repo=120, max_comments=3)  # fmt: skip
    monkeypatch.setenv("GITHUB_TOKEN", "t-study")
    with testing.FakeGitHub(data, tokens=["t-study"]) as gh:
        f = tmp_path / "s" / "collect.yaml"
        f.parent.mkdir()
        f.write_text(f"name: c\nstore: out/study.db\nsources:\n  collect: {{repos: [sgl-project/sglang], base_url: '{gh.url}'}}\n"
                     "report: {out: out/report}\n")  # fmt: skip
        study, steps = run_study(f)
        by = {r.step: r for r in steps}
        assert by["collect"].status == "ran", by["collect"].message
        _, again = run_study(f)
        assert {r.step: r.status for r in again}["collect"] == "skipped (done)"
    m = (study.report_dir / "tables" / "maintenance_repository.csv").read_text().splitlines()
    header, row = m[0].split(","), m[1].split(",")
    rec = dict(zip(header, row, strict=True))
    assert rec["category"] == "SGLang" and int(rec["issues"]) == 120
    assert int(rec["with_fix_pr"]) > 0 and float(rec["fix_lines_median"]) > 0


def test_taxonomy_given_as_a_codebook_path_resolves_relative_to_the_study_file(tmp_path, shared_data,
                                                                                monkeypatch):
    """`taxonomy: ../books/mine.yaml` is a path like the others in a study file: classify labels
    into it from any working directory, and the report analyses those labels (not "no labels")."""
    import gzip

    from bugatlas import Store

    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "mine.yaml").write_text(
        "name: mine\ndimensions:\n  cause:\n    multi_label: true\n    levels: [cause_area, cause]\n"
        "    categories:\n      - {id: env, name: Environment}\n"
        "      - {id: oom, name: GPU Out Of Memory, parent: env, signals: ['out of memory', 'OOM']}\n"
        "      - {id: code, name: Engine Code}\n"
        "      - {id: crash, name: Native Crash, parent: code, signals: ['segmentation fault', 'core dumped']}\n")
    with gzip.open(shared_data / "serving-issues-2025.jsonl.gz", "rb") as fh:
        lines = [next(fh) for _ in range(60)]
    (tmp_path / "issues.jsonl").write_bytes(b"".join(lines))
    f = tmp_path / "s" / "mine-study.yaml"
    f.parent.mkdir()
    f.write_text("name: mine-study\nsources: {import: [../issues.jsonl]}\ntaxonomy: ../books/mine.yaml\n"
                 "classify: {all_issues: true}\nstore: out/study.db\nreport: {out: out/report}\n"
                 "audit: {enabled: false}\n")
    elsewhere = tmp_path / "x" / "y"  # where ../books/mine.yaml does not exist
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    _, steps = run_study(f)
    by = {r.step: r for r in steps}
    assert by["classify"].status == "ran" and by["report"].status == "ran", [r.as_dict() for r in steps]
    assert "reporting the issues only" not in by["report"].message
    with Store(tmp_path / "s" / "out" / "study.db") as store:
        dims = {r["dimension"] for r in store.query("SELECT DISTINCT dimension FROM labels WHERE taxonomy = 'mine'")}
    assert dims == {"cause_area", "cause"}
    assert (tmp_path / "s" / "out" / "report" / "tables" / "dist_cause_cause_area.csv").is_file()
    (tmp_path / "books" / "mine.yaml").write_text((tmp_path / "books" / "mine.yaml").read_text() + "\n# edited\n")
    os.utime(tmp_path / "books" / "mine.yaml", ns=(1, 1))
    _, steps = run_study(f)
    assert {r.step: r.status for r in steps}["classify"] == "ran"  # an edited codebook is a changed input


def test_filter_rules_file_resolves_relative_to_the_study_file_and_reruns_when_edited(tmp_path, shared_data,
                                                                                        monkeypatch):
    """`filter: {rules: my-rules.yaml}` is a path like the others in a study file: it was looked
    up in the working directory ("filter rules file not found"), and editing it did not re-run
    the filter step."""
    import gzip

    from bugatlas import Store
    from bugatlas.filter.rules import STUDIES_DIR

    with gzip.open(shared_data / "serving-issues-2025.jsonl.gz", "rb") as fh:
        lines = [line for line in fh if b'"state": "open"' in line or b'"state":"open"' in line][:80]
        fh.seek(0)
        lines += [next(fh) for _ in range(80)]
    (tmp_path / "issues.jsonl").write_bytes(b"".join(lines))
    s = tmp_path / "s"
    s.mkdir()
    rules = s / "my-rules.yaml"
    rules.write_text((STUDIES_DIR / "default.yaml").read_text().replace("name: default", "name: mine"))
    f = s / "study.yaml"
    f.write_text("name: st\nsources: {import: [../issues.jsonl]}\nfilter: {rules: my-rules.yaml}\n"
                 "store: out/study.db\nreport: {out: out/report}\naudit: {enabled: false}\n")
    elsewhere = tmp_path / "x"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _, steps = run_study(f)
    assert {r.step: r.status for r in steps}["filter"] == "ran", [r.as_dict() for r in steps]
    with Store(s / "out" / "study.db") as store:
        assert store.query("SELECT COUNT(*) AS n FROM failure_reports WHERE state = 'open'")[0]["n"] > 0
    rules.write_text(rules.read_text().replace("states: []", "states: [closed]"))
    _, steps = run_study(f)
    assert {r.step: r.status for r in steps}["filter"] == "ran"
    with Store(s / "out" / "study.db") as store:
        assert store.query("SELECT COUNT(*) AS n FROM failure_reports WHERE state = 'open'")[0]["n"] == 0
