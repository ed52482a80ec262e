"""The supervised model: fitted on human labels (BugAtlas's own training labels of real issues
from bench/trainset), saved and loaded, shipped in the package and used by classify."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from bugatlas import Store
from bugatlas.classify import classify_file, read_label_records
from bugatlas.classify.api import build_classifier, load_trained, train_store
from bugatlas.classify.schema import taxonomy_spec
from bugatlas.classify.supervised import (
    LEVEL_BLEND,
    NEVER,
    SupervisedModel,
    fit_from_files,
    shipped_model,
    shipped_model_path,
)
from bugatlas.classify.text import issue_doc
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.store.records import Issue

TRAINSET = Path(__file__).resolve().parents[2] / "bench" / "trainset" / "labels.jsonl"


@pytest.fixture(scope="module")
def labeled(corpus_records) -> list[tuple[Issue, dict]]:
    out = []
    for rec in read_label_records(TRAINSET, taxonomy="liu2025"):
        r = corpus_records[(rec.repo, rec.number)]
        out.append((Issue(repo=r["repo"], number=r["number"], title=r["title"], body=r["body"]), rec.labels))
    return out


def _symptoms(preds) -> list[str]:
    return [(p.labels.get("symptom") or ["(none)"])[0] for p in preds]


def test_learns_from_labels_beats_majority_and_round_trips(labeled, tmp_path) -> None:
    train, test = labeled[:400], labeled[1000:1200]
    model = SupervisedModel("liu2025").fit([i for i, _ in train], [g for _, g in train])
    assert model.n_human == 400 and model.covers("symptom") and model.covers("root_cause")
    assert not model.covers("component")  # no component labels: left to the rules
    preds = model.predict([i for i, _ in test], threshold=0.0)
    gold = [g["symptom"][0] for _, g in test]
    accuracy = sum(p == g for p, g in zip(_symptoms(preds), gold, strict=True)) / len(gold)
    majority = Counter(gold).most_common(1)[0][1] / len(gold)
    assert accuracy > majority + 0.05, (accuracy, majority)
    for p in preds:  # every label from the codebook, with a confidence and evidence
        assert p.labels["root_cause_group"] and p.confidence["symptom"] > 0 and p.evidence["symptom"]
    # the group is the group head mixed with the sum of the leaf head's causes in each group
    sc = model.score([test[0][0]])[0]["root_cause"]
    head = dict(zip(model.heads["root_cause/root_cause_group"].classes,
                    model.heads["root_cause/root_cause_group"].proba(
                        model._features([issue_doc(test[0][0])]))[0], strict=True))
    leaf_sum = Counter()
    for leaf, p in sc.probs.items():
        leaf_sum[model.spec.dims["root_cause"].store[leaf]["root_cause_group"]] += p
    for g, p in sc.level_probs["root_cause_group"].items():
        assert p == pytest.approx(LEVEL_BLEND * head[g] + (1 - LEVEL_BLEND) * leaf_sum[g], abs=1e-5)
    path = model.save(tmp_path / "m.pkl.xz")
    again = SupervisedModel.load(path)
    assert [p.labels for p in again.predict([i for i, _ in test], threshold=0.0)] == [p.labels for p in preds]
    with pytest.raises(BugAtlasError, match="bad.xz"):
        (tmp_path / "bad.xz").write_bytes(b"not a model")
        SupervisedModel.load(tmp_path / "bad.xz")


def test_needs_enough_labels(labeled) -> None:
    with pytest.raises(BugAtlasError, match="at least 20"):
        SupervisedModel("liu2025").fit([i for i, _ in labeled[:5]], [g for _, g in labeled[:5]])


def test_shipped_model_is_small_and_used_by_batch_classify(corpus_records, write_jsonl, tmp_path) -> None:
    path = shipped_model_path("liu2025")
    assert path is not None and path.stat().st_size < 2_000_000
    model = shipped_model("liu2025")
    assert model is not None and model.n_human >= 1000
    # calibrated when built: symptoms reach kappa 0.8 at some threshold, root-cause leaves never
    th = model.thresholds(0.8)
    assert 0.0 <= th.of("symptom") <= 0.9 and th.of("root_cause") == NEVER
    assert build_classifier("liu2025").supervised is model
    assert build_classifier("liu2025", use_shipped=False).supervised is None
    recs = [corpus_records[k] for k in sorted(corpus_records)[:60]]
    out = tmp_path / "labels.jsonl"
    classify_file("liu2025", write_jsonl(recs), out, threshold=0.0)
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 60
    for row in rows:
        labels = row["labels"]
        assert labels["symptom"] and labels["root_cause_group"] and labels["phase"]
        # the symptom comes from the supervised model, an Unexpected Output sub-type from the
        # rules: the two stay consistent
        assert bool(labels["unexpected_output"]) == ("Unexpected Output" in labels["symptom"])


def test_fit_from_files_skips_not_failure_and_excluded_and_names_missing(corpus_records, write_jsonl, tmp_path) -> None:
    lines = TRAINSET.read_bytes().splitlines()[:80]
    recs = [orjson.loads(line) for line in lines]
    recs[0]["not_failure"] = True
    labels = write_jsonl(recs, "labels.jsonl")
    exclude = write_jsonl([{"repo": recs[1]["repo"], "number": recs[1]["number"]}], "exclude.jsonl")
    issues = write_jsonl([corpus_records[(r["repo"], r["number"])] for r in recs], "issues.jsonl")
    model = fit_from_files("liu2025", [issues], [labels], exclude=[exclude])
    skipped = {i for i, r in enumerate(recs) if r.get("not_failure")} | {1}
    assert 0 in skipped and model.n_human == 80 - len(skipped)
    short = write_jsonl([corpus_records[(r["repo"], r["number"])] for r in recs[:-1]], "short.jsonl")
    with pytest.raises(BugAtlasError, match=r"labels.jsonl: 1 labeled issues have no text"):
        fit_from_files("liu2025", [short], [labels])


def test_train_store_fits_it_and_classify_prefers_more_labels(labeled, tmp_path) -> None:
    from bugatlas import Label

    store = Store(tmp_path / "s.db")
    part = labeled[:40]
    store.upsert_issues(i for i, _ in part)
    store.add_labels(Label(repo=i.repo, issue_number=i.number, taxonomy="liu2025", dimension=dim,
                           value=v, source_kind="human", source="annotator:a")
                     for i, g in part for dim in ("symptom", "root_cause") for v in g[dim])
    res = train_store(store, "liu2025")
    assert res.supervised_version and res.supervised_version.startswith("supervised-lr-")
    mine = load_trained(store, "liu2025", kind=SupervisedModel)
    assert mine is not None and mine.version == res.supervised_version and mine.n_human == 40
    # 40 labels lose to the 1,000+ the shipped model learned from; without it, the store's is used
    assert build_classifier("liu2025", store=store).supervised is shipped_model("liu2025")
    assert build_classifier("liu2025", store=store, use_shipped=False).supervised.version == mine.version
    store.close()


def test_eval_of_yu2026_names_gold_issues_the_lent_liu2025_model_learned_from(labeled, write_jsonl,
                                                                            tmp_path) -> None:
    """A yu2026 run takes its symptom categories from the shipped liu2025 model (a donor), which
    learned from the human labels of 1,593 corpus issues. eval said nothing when the gold issues
    were among them (BENCHMARKS: symptom-category kappa 0.86 in-sample against 0.61 unseen), for
    a --pred file and for the store's labels alike; for liu2025 it warns."""
    from bugatlas import Label
    from bugatlas.classify.api import classify_store, eval_labels

    seen = [i for i, _ in labeled if i.key in shipped_model("liu2025").trained_on][:30]
    assert len(seen) == 30
    gold = [{"repo": i.repo, "number": i.number, "labels": {"symptom_category": "Runtime Crash"}} for i in seen]
    gold_file = write_jsonl(gold, "gold.jsonl")
    report, _ = eval_labels("yu2026", gold_file=gold_file, pred_file=gold_file, curve=False)
    assert report.shipped_learned == 30

    store = Store(tmp_path / "s.db")
    store.upsert_issues(seen)
    store.add_labels(Label(repo=i.repo, issue_number=i.number, taxonomy="yu2026", dimension="symptom_category",
                           value="Runtime Crash", source_kind="human", source="annotator:a") for i in seen)
    classify_store(store, "yu2026")
    report, _ = eval_labels("yu2026", store=store, curve=False)
    assert report.in_sample == 30
    classify_store(store, "yu2026", use_shipped=False)  # no lent model: nothing in-sample
    report, _ = eval_labels("yu2026", store=store, curve=False)
    assert report.in_sample == 0
    store.close()


def test_cli_trains_from_files_and_classifies_with_that_model(corpus_records, write_jsonl, tmp_path) -> None:
    import subprocess
    import sys

    recs = [orjson.loads(line) for line in TRAINSET.read_bytes().splitlines()[:120]]
    labels = write_jsonl(recs, "labels.jsonl")
    issues = write_jsonl([corpus_records[(r["repo"], r["number"])] for r in recs], "issues.jsonl")
    model, out = tmp_path / "mine.pkl.xz", tmp_path / "out.jsonl"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True, text=True,
                              timeout=300)

    res = cli("train", "--taxonomy", "liu2025", "--labels", str(labels), "--input", str(issues),
              "--output", str(model), "--json")
    assert res.returncode == 0, res.stderr
    info = orjson.loads(res.stdout)
    assert info["n_human"] == sum(not r.get("not_failure") for r in recs) and "symptom/symptom" in info["heads"]
    res = cli("classify", "--taxonomy", "liu2025", "--input", str(issues), "--output", str(out),
              "--model", str(model), "--no-shipped")
    assert res.returncode == 0, res.stderr
    assert len(out.read_bytes().splitlines()) == 120
    # a model of another codebook, a missing file, an incomplete batch training: one clear line each
    res = cli("classify", "--taxonomy", "yu2026", "--input", str(issues), "--output", str(out), "--model", str(model))
    assert res.returncode == 2 and "a liu2025 model, not yu2026" in res.stderr
    res = cli("classify", "--taxonomy", "liu2025", "--input", str(issues), "--output", str(out),
              "--model", str(tmp_path / "none.xz"))
    assert res.returncode == 2 and "no such file" in res.stderr
    res = cli("train", "--taxonomy", "liu2025", "--labels", str(labels))
    assert res.returncode == 2 and "needs --labels, --input and --output" in res.stderr
    # --min-kappa reads the thresholds off the model's calibration (train calibrates by default)
    mine = SupervisedModel.load(model)
    assert set(mine.calibration) >= {"symptom", "root_cause_group"} and mine.calibration_n == info["n_human"]
    res = cli("classify", "--taxonomy", "liu2025", "--input", str(issues), "--output", str(out),
              "--model", str(model), "--min-kappa", "0.5")
    assert res.returncode == 0, res.stderr
    limits = mine.thresholds(0.5).per_dim
    for row in map(orjson.loads, out.read_bytes().splitlines()):
        for dim in ("symptom", "root_cause_group"):
            if row["labels"][dim]:
                assert row["confidence"][dim] >= limits[dim]
    res = cli("classify", "--taxonomy", "liu2025", "--input", str(issues), "--output", str(out),
              "--no-shipped", "--min-kappa", "0.8")
    assert res.returncode == 2 and "--min-kappa needs a supervised model" in res.stderr
    # yu2026 ships a calibrated model of its own
    res = cli("classify", "--taxonomy", "yu2026", "--input", str(issues), "--output", str(out), "--min-kappa", "0.8")
    assert res.returncode == 0, res.stderr
    limits = shipped_model("yu2026").thresholds(0.8).per_dim
    for row in map(orjson.loads, out.read_bytes().splitlines()):
        for dim, value in row["labels"].items():
            if value and dim in limits:
                assert row["confidence"][dim] >= limits[dim]
    # without it, the error says the lent liu2025 model has no yu2026 calibration
    from bugatlas.classify.api import calibrated_thresholds
    from bugatlas.classify.combine import donors_for

    with pytest.raises(BadInputError, match="model of yu2026.*liu2025 model lent"):
        calibrated_thresholds(build_classifier("yu2026", use_shipped=False, donors=donors_for("yu2026")), 0.8, 0.35)
    res = cli("classify", "--taxonomy", "liu2025", "--input", str(issues), "--output", str(out),
              "--threshold", "1.5")
    assert res.returncode == 2 and "--threshold" in res.stderr


def test_calibration_thresholds_and_abstention(labeled) -> None:
    """The calibration is cross-validated agreement by confidence; thresholds(k) is the
    lowest threshold reaching kappa k on >= 20 issues, and labels below it are abstained."""
    items, golds = [i for i, _ in labeled[:300]], [g for _, g in labeled[:300]]
    model = SupervisedModel("liu2025").fit(items, golds)
    with pytest.raises(BugAtlasError, match="no calibration"):
        model.thresholds(0.8)
    # base rates for a domain's shift (classify/domains.py): the training labels' shares at the
    # top levels until calibrated, then the mean held-out probability
    counts = Counter(g["symptom"][0] for g in golds if len(g["symptom"]) == 1)
    assert model.label_shares["symptom"]["Crash"] >= counts["Crash"] / 300
    assert model.base_rates("symptom") is model.label_shares["symptom"] and not model.heldout_shares
    model.calibrate(items, golds, folds=3)
    assert model.calibration_n == 300
    assert set(model.heldout_shares) == {"symptom", "root_cause_group", "phase"}
    for shares in model.heldout_shares.values():
        assert abs(sum(shares.values()) - 1) < 1e-6
    assert model.base_rates("symptom") is model.heldout_shares["symptom"] != model.label_shares["symptom"]
    # only what the model itself decides (Unexpected Output sub-types come from the rules)
    assert set(model.calibration) == {"symptom", "root_cause_group", "root_cause", "phase"}
    for rows in model.calibration.values():
        assert rows[0]["threshold"] == 0.0 and rows[0]["coverage"] == 1.0
        assert [r["n"] for r in rows] == sorted((r["n"] for r in rows), reverse=True)
    sym = model.calibration["symptom"]
    target = sym[2]["kappa"]  # reached at the third threshold at the latest
    expected = next(r["threshold"] for r in sym if r["n"] >= 20 and r["kappa"] >= target)
    th = model.thresholds(target, default=0.2)
    assert th.of("symptom") == expected and th.of("component") == 0.2
    assert model.thresholds(1.01).of("symptom") == NEVER  # kappa above 1 is never reached
    test = [i for i, _ in labeled[1000:1100]]
    loose = model.predict(test, threshold=0.0)
    strict = model.predict(test, threshold=th)
    for a, b in zip(loose, strict, strict=True):
        kept = a.confidence["symptom"] >= th.of("symptom")
        assert b.labels["symptom"] == (a.labels["symptom"] if kept else [])
    again = SupervisedModel.loads(model.dumps(), "memory")  # the table travels with the model
    assert again.calibration == model.calibration


MINI = """\
name: mini-audit
title: A user's own codebook
dimensions:
  cause:
    multi_label: true
    levels: [cause_group, cause]
    categories:
      - {id: res, name: Resource}
      - {id: oom, name: Out of Memory, parent: res, signals: ['out of memory']}
      - {id: code, name: Code Bug}
      - {id: crash, name: Crash Bug, parent: code, signals: ['segmentation fault']}
  severity:
    categories:
      - {id: high, name: High}
      - {id: low, name: Low}
"""


def _mini_study(corpus_records, write_jsonl, tmp_path, n: int, severity: bool):
    """The MINI codebook, ``n`` corpus issues labeled in turn with its two causes (and a
    severity), and a ``bugatlas`` runner in ``tmp_path``."""
    import subprocess
    import sys

    cb = tmp_path / "mini-audit.yaml"
    cb.write_text(MINI)
    recs = [corpus_records[k] for k in sorted(corpus_records)[:n]]
    issues = write_jsonl(recs, "issues.jsonl")
    leaves = ["Out of Memory", "Crash Bug"]
    labels = write_jsonl([{"repo": r["repo"], "number": r["number"],
                           "labels": {"cause": [leaves[i % 2]],
                                      **({"severity": ["High", "Low"][i // 2 % 2]} if severity else {})}}
                          for i, r in enumerate(recs)], "labels.jsonl")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)

    return cb, issues, labels, cli


def test_user_codebook_by_path_trains_from_files_and_classifies_with_model(corpus_records, write_jsonl,
                                                                           tmp_path) -> None:
    """A codebook given as a YAML path works with train --labels and classify --model (the model
    names its codebook, which must be found by that name when the model is loaded)."""
    cb, issues, labels, cli = _mini_study(corpus_records, write_jsonl, tmp_path, 40, severity=True)
    model, out = tmp_path / "mini.pkl.xz", tmp_path / "out.jsonl"
    res = cli("train", "-t", str(cb), "--labels", str(labels), "--input", str(issues), "--output", str(model),
              "--no-calibrate", "--json")
    assert res.returncode == 0, res.stderr
    assert {"cause", "severity"} <= {h.split("/")[0] for h in orjson.loads(res.stdout)["heads"]}
    res = cli("classify", "-t", str(cb), "--input", str(issues), "--output", str(out), "--model", str(model))
    assert res.returncode == 0, res.stderr
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 40 and all(r["taxonomy"] == "mini-audit" for r in rows)
    assert set(rows[0]["labels"]) == {"cause_group", "cause", "severity"}


def test_model_of_another_codebook_or_version_is_refused(corpus_records, write_jsonl, tmp_path) -> None:
    """classify --model checks the model against the codebook: a model of another codebook is
    named as such (not "unknown codebook"), and one fitted before a category was renamed is
    refused instead of silently never giving the renamed category."""
    cb, issues, labels, cli = _mini_study(corpus_records, write_jsonl, tmp_path, 30, severity=False)
    model, out = tmp_path / "mini.pkl.xz", tmp_path / "out.jsonl"
    res = cli("train", "-t", str(cb), "--labels", str(labels), "--input", str(issues), "--output", str(model),
              "--no-calibrate")
    assert res.returncode == 0, res.stderr
    other = tmp_path / "other.yaml"
    other.write_text(MINI.replace("name: mini-audit", "name: other"))
    res = cli("classify", "-t", str(other), "--input", str(issues), "--output", str(out), "--model", str(model))
    assert res.returncode == 2 and "a mini-audit model, not other" in res.stderr, res.stderr
    cb.write_text(MINI.replace("name: Crash Bug", "name: Native Crash"))
    res = cli("classify", "-t", str(cb), "--input", str(issues), "--output", str(out), "--model", str(model))
    assert res.returncode == 2 and not out.exists(), res.stderr
    assert "'Crash Bug'" in res.stderr and "fit it again" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_user_codebook_overriding_a_builtin_name_classifies_with_its_own_names(corpus_records, write_jsonl,
                                                                                tmp_path) -> None:
    """A copy of liu2025 in BUGATLAS_CODEBOOKS (as docs/taxonomy.md allows) with a category
    renamed and one removed classifies: the package's liu2025 signature file and shipped model,
    written for the built-in categories, are not applied to it."""
    import os
    import subprocess
    import sys

    import yaml

    from bugatlas.taxonomy import load_codebook

    data = yaml.safe_load(Path(load_codebook("liu2025").source).read_text(encoding="utf-8"))
    for c in data["dimensions"]["symptom"]["categories"]:
        if c["name"] == "Crash":
            c["name"] = "Abnormal Termination"
    rc = data["dimensions"]["root_cause"]["categories"]
    rc[:] = [c for c in rc if c["name"] != "Concurrency Issue"]
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "liu2025.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    recs = [corpus_records[k] for k in sorted(corpus_records)[:25]]
    issues = write_jsonl(recs, "issues.jsonl")
    out = tmp_path / "out.jsonl"
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "classify", "-t", "liu2025", "--input", str(issues),
                          "--output", str(out), "-j", "1"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={**os.environ, "BUGATLAS_CODEBOOKS": str(folder)})
    assert res.returncode == 0, res.stderr
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 25
    symptoms = {v for r in rows for v in r["labels"]["symptom"]}
    causes = {v for r in rows for v in r["labels"]["root_cause"]}
    assert "Crash" not in symptoms and "Concurrency Issue" not in causes
    assert "Abnormal Termination" in symptoms  # the corpus's first issues include crashes


def test_a_user_copy_of_yu2026_gets_no_lent_liu2025_symptoms(corpus_records, write_jsonl, tmp_path) -> None:
    """liu2025's mapping was written for the built-in yu2026. A user's edited copy named yu2026
    (a symptom category renamed) was refused in BUGATLAS_CODEBOOKS (an error about the built-in
    liu2025.yaml's mapping), and given by path it got the lent "Runtime Crash", a category its
    codebook does not have."""
    import yaml

    from bugatlas.taxonomy import load_codebook

    data = yaml.safe_load(Path(load_codebook("yu2026").source).read_text(encoding="utf-8"))
    renamed = 0
    for c in data["dimensions"]["symptom"]["categories"]:
        if c["name"] == "Runtime Crash":
            c["name"], renamed = "Runtime Failure", renamed + 1
    assert renamed == 1
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "yu2026.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    issues = write_jsonl([corpus_records[k] for k in sorted(corpus_records)[:25]], "issues.jsonl")
    for taxonomy, env in (("yu2026", {"BUGATLAS_CODEBOOKS": str(folder)}), (str(folder / "yu2026.yaml"), {})):
        out = tmp_path / "out.jsonl"
        res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "classify", "-t", taxonomy, "--input", str(issues),
                              "--output", str(out), "-j", "1"], capture_output=True, text=True, timeout=300,
                             cwd=tmp_path, env={**os.environ, **env})
        assert res.returncode == 0, res.stderr
        rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        cats = {r["labels"]["symptom_category"] for r in rows}  # single-valued: a name or null
        assert len(rows) == 25 and "Runtime Crash" not in cats, (taxonomy, cats)
        assert not any("liu2025 model" in e for r in rows for e in r["evidence"]["symptom_category"])


def test_a_session_that_loaded_its_own_liu2025_file_still_lends_the_built_in_to_yu2026(corpus_records, tmp_path,
                                                                                       monkeypatch) -> None:
    """A codebook file loaded by path owns its name in the process afterwards. A notebook that
    classified with its own edited liu2025.yaml then ran yu2026 without the lent symptom
    categories (kappa 0.61 -> 0.31 on the dev set), silently: the lender was looked up by name."""
    import yaml

    from bugatlas.classify import schema
    from bugatlas.taxonomy import load_codebook

    # the user's file owns "liu2025" in this test only, not in the tests run after it
    monkeypatch.setattr(schema, "_BY_CODEBOOK_NAME", dict(schema._BY_CODEBOOK_NAME))
    data = yaml.safe_load(Path(load_codebook("liu2025").source).read_text(encoding="utf-8"))
    for c in data["dimensions"]["symptom"]["categories"]:
        if c["name"] == "System Hang":
            c["name"] = "Hang"
    mine = tmp_path / "liu2025.yaml"
    mine.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert "Hang" in taxonomy_spec(str(mine)).dims["symptom"].leaves
    hang = Issue(repo="sgl-project/sglang", number=6857, title=corpus_records[("sgl-project/sglang", 6857)]["title"],
                 body=corpus_records[("sgl-project/sglang", 6857)]["body"])
    ens = build_classifier("yu2026", fit_on=[hang])
    assert [d.name for d in ens.donors] == ["liu2025"]
    (p,) = ens.predict([hang])
    assert p.labels["symptom_category"] == ["Process Hang"]
    assert any(e.startswith("liu2025 model: System Hang") for e in p.evidence["symptom_category"])
    # the user's file still owns the name
    assert "Hang" in taxonomy_spec("liu2025").dims["symptom"].leaves


def test_package_signature_files_apply_to_the_codebook_they_were_written_for(tmp_path) -> None:
    """docs/classify.md: a user's codebook may get a `signatures/<its name>.yaml` in the package;
    only a user file that takes a built-in's name is kept from the built-in's files."""
    from bugatlas.classify.schema import _base_spec, package_files_apply

    own = tmp_path / "mini-audit.yaml"
    own.write_text(MINI)
    shadow = tmp_path / "liu2025.yaml"
    shadow.write_text(MINI.replace("name: mini-audit", "name: liu2025"))
    assert package_files_apply(_base_spec("liu2025"))
    assert package_files_apply(_base_spec(str(own)))
    assert not package_files_apply(_base_spec(str(shadow)))


def test_train_labels_outside_the_codebook_or_unreadable_are_one_line(corpus_records, write_jsonl,
                                                                      tmp_path) -> None:
    """Label names that are not in the codebook are an error naming the file and record, not a
    model with no heads; a record skipped as not_failure still needs a readable number."""
    import subprocess
    import sys

    cb = tmp_path / "mini-audit.yaml"
    cb.write_text(MINI)
    recs = [corpus_records[k] for k in sorted(corpus_records)[:5]]
    issues = write_jsonl(recs, "issues.jsonl")
    model = tmp_path / "mini.pkl.xz"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)

    bad = write_jsonl([{"repo": recs[0]["repo"], "number": recs[0]["number"],
                        "labels": {"cause": ["Out of Memry"]}}], "bad.jsonl")
    res = cli("train", "-t", str(cb), "--labels", str(bad), "--input", str(issues), "--output", str(model))
    assert res.returncode == 2 and "bad.jsonl" in res.stderr and "'Out of Memry'" in res.stderr, res.stderr
    bad = write_jsonl([{"repo": "a/b", "number": "x", "not_failure": True, "labels": {}}], "nf.jsonl")
    res = cli("train", "-t", str(cb), "--labels", str(bad), "--input", str(issues), "--output", str(model))
    assert res.returncode == 2 and "field 'number' is not an integer" in res.stderr, res.stderr
    before = bad.read_bytes()
    res = cli("train", "-t", str(cb), "--labels", str(bad), "--input", str(issues), "--output", str(bad))
    assert res.returncode == 2 and "is an input file" in res.stderr and bad.read_bytes() == before, res.stderr


def test_train_refuses_two_values_in_a_single_valued_dimension(corpus_records, write_jsonl, tmp_path) -> None:
    """multi_label: false is honoured in training labels: two values for one issue were silently
    reduced to one; they are a one-line error naming the file, the issue and the dimension."""
    from bugatlas.classify.supervised import read_training_labels
    from bugatlas.errors import BadInputError

    cb = tmp_path / "mini-audit.yaml"
    cb.write_text(MINI)
    rec = corpus_records[sorted(corpus_records)[0]]
    ok = write_jsonl([{"repo": rec["repo"], "number": rec["number"],
                       "labels": {"cause": ["Out of Memory", "Crash Bug"], "severity": ["High"]}}], "ok.jsonl")
    assert read_training_labels(str(cb), [ok])  # two causes: cause is multi-label
    bad = write_jsonl([{"repo": rec["repo"], "number": rec["number"],
                        "labels": {"cause": ["Crash Bug"], "severity": ["High", "Low"]}}], "bad.jsonl")
    with pytest.raises(BadInputError, match=r"bad.jsonl: .*#\d+: severity: 2 values \('High', 'Low'\).*single-valued"):
        read_training_labels(str(cb), [bad])


def test_eval_reports_in_sample_agreement_apart(labeled, tmp_path) -> None:
    """A model scored on the labels it learned from looks better than it is: eval says how many
    gold issues that concerns and scores the others apart."""
    from bugatlas import Label
    from bugatlas.classify.api import classify_store, eval_labels, learned_from

    def add_human(pairs) -> None:
        store.add_labels(Label(repo=i.repo, issue_number=i.number, taxonomy="liu2025", dimension=dim,
                               value=v, source_kind="human", source="annotator:a")
                         for i, g in pairs for dim in ("symptom", "root_cause") for v in g[dim])

    store = Store(tmp_path / "s.db")
    learned, later = labeled[:60], labeled[600:640]
    store.upsert_issues(i for i, _ in learned + later)
    add_human(learned)
    train_store(store, "liu2025")
    classify_store(store, "liu2025", use_shipped=False, threshold=0.0)
    add_human(later)  # labeled by people after the model was trained: the model never saw them
    assert learned_from(store, "liu2025") == {i.key for i, _ in learned}
    report, _ = eval_labels("liu2025", store=store, curve=False)
    assert report.n_common == 100 and report.in_sample == 60
    assert report.unseen is not None and report.unseen.n_gold == 40
    assert report.dimensions["symptom"].accuracy > report.unseen.dimensions["symptom"].accuracy
    assert report.as_dict()["unseen"]["n_gold"] == 40
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "eval", "--taxonomy", "liu2025", "--no-curve",
                          "--db", str(store.path)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "COLUMNS": "250"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "warning: 60 of these gold issues were labeled by a model that learned from" in res.stderr
    assert "on the 40 gold issues the model did not learn from" in res.stdout
    # the shipped model learned from BugAtlas's own labels of the shared corpus, these issues among
    # them: scored against a user's labels of the same issues, all of it is in-sample
    classify_store(store, "liu2025", threshold=0.0)
    keys = {i.key for i, _ in learned + later}
    shipped_saw = keys & shipped_model("liu2025").trained_on  # all but those marked not_failure
    assert len(shipped_saw) >= 95 and learned_from(store, "liu2025") == shipped_saw
    assert eval_labels("liu2025", store=store, curve=False)[0].in_sample == len(shipped_saw)
    store.close()


def test_eval_of_files_counts_gold_issues_the_shipped_model_learned_from(write_jsonl) -> None:
    from bugatlas.classify.api import eval_labels

    learned = [orjson.loads(line) for line in TRAINSET.read_bytes().splitlines()[:3]]
    other = {"repo": "example/engine", "number": 1, "labels": {"symptom": ["Crash"]}}
    gold = write_jsonl([{"repo": r["repo"], "number": r["number"], "labels": r["labels"]}
                        for r in learned] + [other], "gold.jsonl")
    pred = write_jsonl([{"repo": r["repo"], "number": r["number"], "taxonomy": "liu2025",
                         "labels": {"symptom": ["Crash"]}} for r in [*learned, other]], "pred.jsonl")
    report, _ = eval_labels("liu2025", gold_file=gold, pred_file=pred, curve=False)
    assert report.shipped_learned == 3 and report.in_sample == 0


def test_in_sample_record_survives_a_killed_classify_run(labeled, tmp_path) -> None:
    """classify killed (SIGKILL) after its first batch: the labels it stored are still known to
    come from a model that learned from them, so eval does not report them as unseen."""
    from bugatlas import Label
    from bugatlas.classify.api import learned_from

    store = Store(tmp_path / "s.db")
    learned, later = labeled[:60], labeled[600:640]
    store.upsert_issues(i for i, _ in later + learned)
    store.add_labels(Label(repo=i.repo, issue_number=i.number, taxonomy="liu2025", dimension=dim,
                           value=v, source_kind="human", source="annotator:a")
                     for i, g in learned for dim in ("symptom", "root_cause") for v in g[dim])
    train_store(store, "liu2025")
    store.close()
    script = (
        "import os, signal, sys\n"
        "from bugatlas import Store\n"
        "from bugatlas.classify.api import classify_store\n"
        "calls = []\n"
        "def progress(done, total):\n"
        "    calls.append(done)\n"
        "    if len(calls) == 3:  # two batches of 40 written: die before the rest\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "classify_store(Store(sys.argv[1]), 'liu2025', use_shipped=False, threshold=0.0, batch=40,\n"
        "               progress=progress)\n"
    )
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.db")], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == -9, res.stderr
    store = Store(tmp_path / "s.db")
    labeled_now = {(r["repo"], r["issue_number"]) for r in store.query(
        "SELECT DISTINCT repo, issue_number FROM labels WHERE taxonomy = 'liu2025' AND source_kind != 'human'")}
    assert len(labeled_now) == 80  # two batches stored, the third never
    expected = labeled_now & {i.key for i, _ in learned}
    assert expected and learned_from(store, "liu2025") == expected
    store.close()


def test_predict_before_fit_is_a_bugatlas_error() -> None:
    from bugatlas.classify.model import TextModel
    from bugatlas.classify.supervised import SupervisedModel
    from bugatlas.errors import BugAtlasError
    from bugatlas.store.records import Issue

    issue = Issue(repo="a/b", number=1, title="crash")
    for model in (TextModel("liu2025"), SupervisedModel("liu2025")):
        with pytest.raises(BugAtlasError, match="before fit: call fit"):
            model.predict([issue])


def test_min_kappa_without_the_shipped_model_does_not_say_none_ships() -> None:
    """`classify --taxonomy yu2026 --no-shipped --min-kappa 0.7` said "none is shipped for
    yu2026", though a calibrated yu2026 model ships and --no-shipped had left it out."""
    from bugatlas.classify.api import calibrated_thresholds

    for taxonomy in ("yu2026", "liu2025"):
        with pytest.raises(BadInputError) as err:
            calibrated_thresholds(build_classifier(taxonomy, use_shipped=False), 0.7, 0.35)
        assert "none is shipped" not in str(err.value) and "--no-shipped" in str(err.value)
