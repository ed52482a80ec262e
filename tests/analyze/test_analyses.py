"""Analyses on the real published datasets and the shared corpus."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bugatlas.analyze import (
    author_association,
    by_version,
    commonality,
    crosstab,
    diagnostics,
    distribution,
    distribution_levels,
    flows,
    hierarchy,
    label_usage,
    lifecycle,
    maintenance,
    monthly,
    residual_findings,
    survival,
)
from bugatlas.analyze.stats import chi_square, kaplan_meier, km_median, trend, wilson
from bugatlas.errors import BadInputError

LIU_ENGINES = {"Llama.cpp": 124, "vLLM": 290, "DeepSpeed": 121, "MLC-LLM": 214, "TensorRT-LLM": 180}
LIU_SYMPTOMS = {"Crash": 603, "Unexpected Output": 122, "Feature Failure": 107,
                "Abnormal Performance": 53, "System Hang": 35, "Silent Error": 12}


def _counts(frame: pd.DataFrame, col: str = "units") -> dict[str, int]:
    return dict(zip(frame["category"], frame[col].astype(int), strict=True))


def test_liu_bugs_per_engine(liu):
    assert len(liu.units) == 929
    assert liu.units["group"].value_counts().to_dict() == LIU_ENGINES


def test_liu_symptoms(liu):
    d = distribution(liu, "symptom")
    assert _counts(d) == LIU_SYMPTOMS
    assert _counts(d, "instances") == LIU_SYMPTOMS  # no bug repeats a symptom
    assert d["instances"].sum() == 932  # 3 bugs carry two symptoms
    crash = d.set_index("category").loc["Crash"]
    assert crash["labelled"] == 929
    assert crash["share"] == pytest.approx(603 / 929)
    assert crash["ci_low"] < 603 / 929 < crash["ci_high"]
    assert crash["instance_share"] == pytest.approx(603 / 932)


def test_liu_symptoms_per_engine_match_notes(liu):
    d = distribution(liu, "symptom", by="repository").set_index(["group", "category"])
    assert d.loc[("MLC-LLM", "Crash"), "units"] == 176
    assert d.loc[("Llama.cpp", "Silent Error"), "units"] == 7
    assert ("MLC-LLM", "Silent Error") not in d.index  # zero cells are absent, not 0-rows


def test_liu_phase_and_symptom_by_phase(liu):
    assert _counts(distribution(liu, "phase")) == {"Inference/Serving": 661, "Engine Setup": 136, "Model Conversion": 132}
    table, test = lifecycle(liu, "symptom")
    assert table.loc["Model Conversion", "Silent Error"] == 8
    assert table.loc["Engine Setup", "Crash"] == 132
    assert test.p_value < 1e-6


def test_olf_series_stage_and_levels(olf):
    assert len(olf.units) == 706
    assert olf.units[["repo", "issue_number"]].drop_duplicates().shape[0] == 703
    assert olf.units["group"].value_counts().to_dict() == {"Qwen": 449, "Llama": 171, "DeepSeek": 86}
    assert _counts(distribution(olf, "stage")) == {"Inference": 557, "Fine-tuning": 149}
    top = _counts(distribution(olf, "symptom", 0))
    assert top == {"Crash": 295, "Incorrect Functionality": 240, "Loading Failure": 137, "Hang": 19, "Poor Performance": 15}
    levels = distribution_levels(olf, "symptom")
    assert set(levels["depth"]) == {0, 1, 2}
    # category names come from the yu2026-artifact codebook (full paths) or split values
    oom = levels[(levels["depth"] == 2) & levels["category"].str.endswith("Out of Memory")]
    assert oom["units"].item() == 56 and oom["parent"].item().endswith("CUDA Error")
    killed = levels[(levels["depth"] == 2) & levels["category"].str.endswith("Process Killed")]
    assert killed["parent"].item() == "Crash"  # a two-level value keeps its leaf at level 3
    # stray double space in one published value is normalised into the same level name
    rc = _counts(distribution(olf, "root_cause", 0))
    assert rc["Environment Compatibility Issues"] == 223
    h = hierarchy(olf, "symptom")
    assert h.loc[h["id"] == "Crash", "units"].item() == 295
    assert h.loc[h["id"] == "Crash", "instances"].item() == h.loc[h["parent"] == "Crash", "instances"].sum()
    assert "Out of Memory" in set(h["label"])


def test_crosstab_and_diagnostics(olf):
    t = crosstab(olf, "symptom", "root_cause")
    assert t.to_numpy().sum() == 706  # one symptom and one cause per record
    dg = diagnostics(olf, top=2)
    hang = dg[dg["symptom"] == "Hang"].iloc[0]
    assert hang["cause"] == "Distributed and Parallel Computing Issues"
    assert hang["p_cause_given_symptom"] == pytest.approx(hang["units"] / 19)
    assert hang["lift"] > 1


def test_crosstab_instances_count_pairs(liu):
    units = crosstab(liu, "symptom", "root_cause", count="units")
    inst = crosstab(liu, "symptom", "root_cause", count="instances")
    assert (inst.to_numpy() >= units.to_numpy()).all()
    with pytest.raises(BadInputError, match="itself"):
        crosstab(liu, "symptom", "symptom")


def test_commonality_names_deviating_engine(liu):
    table, test = commonality(liu, "symptom")
    assert table.to_numpy().sum() == 932
    assert test.p_value < 1e-6 and 0 < test.cramers_v < 1
    top = residual_findings(test).iloc[0]
    assert (top["group"], top["category"], top["direction"]) == ("MLC-LLM", "Crash", "over")


def test_chi_square_matches_textbook():
    # adjusted residuals for a 2x2 table equal the signed sqrt of the uncorrected chi-square
    t = pd.DataFrame([[30, 10], [20, 40]], index=["a", "b"], columns=["x", "y"])
    r = chi_square(t)
    assert r.residuals.loc["a", "x"] == pytest.approx(math.sqrt(r.chi2))
    assert r.cramers_v == pytest.approx(math.sqrt(r.chi2 / 100))
    assert chi_square(pd.DataFrame([[1, 2]])) is None


def test_wilson_known_values():
    lo, hi = wilson(np.array([0, 5]), np.array([10, 10]))
    assert lo[0] == 0 and hi[0] == pytest.approx(0.2775, abs=1e-4)
    assert lo[1] == pytest.approx(0.2366, abs=1e-4) and hi[1] == pytest.approx(0.7634, abs=1e-4)


def test_kaplan_meier_with_censoring():
    # 4 subjects: events at 1, 3; censored at 2, 4
    c = kaplan_meier([1, 2, 3, 4], [True, False, True, False])
    assert list(c["time"]) == [1, 3]
    assert c["survival"].tolist() == pytest.approx([0.75, 0.75 * 0.5])
    assert km_median(c) == 3


def test_trend_directions():
    assert trend(range(12))["direction"] == "increasing"
    assert trend([5] * 6)["direction"] == "flat"
    assert trend(list(range(12, 0, -1)))["direction"] == "decreasing"


def test_versions_and_flows(olf):
    v = by_version(olf, "symptom")
    qwen = v[v["series"] == "Qwen"]["version"].tolist()
    assert qwen.index("Qwen") < qwen.index("Qwen2.5")
    assert v["units"].sum() == 706
    f = flows(olf, [("stage", None), ("symptom", 0), ("root_cause", 0)])
    assert f.loc[f["source_step"] == "stage", "units"].sum() == 706


def test_corpus_time_and_maintenance(corpus):
    counts, tr = monthly(corpus)
    assert counts["issues"].sum() == 2997
    assert tr.loc[0, "months"] == len(counts)
    m = maintenance(corpus).set_index("category")
    assert m["issues"].sum() == 2997
    assert m["closed"].sum() + m["open"].sum() == 2997
    assert (m["close_days_q1"] <= m["close_days_median"]).all()
    assert m["km_median_days"].notna().all()
    s = survival(corpus)
    assert s["survival"].between(0, 1).all()
    lab = label_usage(corpus)
    assert "(no label)" in set(lab["label"])
    aa = author_association(corpus)
    assert aa.to_numpy().sum() == 2997


def test_references_have_no_dates(liu):
    with pytest.raises(BadInputError, match="references"):
        monthly(liu)
    with pytest.raises(BadInputError, match="dimension 'nope'"):
        distribution(liu, "nope")


def test_restrict_and_names(analysis_store):
    from bugatlas.analyze import load_study

    d = load_study(analysis_store, "liu2025", restrict="SELECT repo, number FROM issues WHERE repo = 'vllm-project/vllm'",
                   names={"vllm-project/vllm": "vLLM (engine)"})  # fmt: skip
    assert len(d.units) == 290 and set(d.units["group"]) == {"vLLM (engine)"}
    raw = load_study(analysis_store, None, restrict="SELECT repo, number FROM issues WHERE repo = 'sgl-project/sglang'")
    assert len(raw.units) == 813

    with pytest.raises(BadInputError, match="--only"):
        load_study(analysis_store, "liu2025", restrict="SELECT repo, number FROM no_such_view")
    with pytest.raises(BadInputError, match="two columns"):
        load_study(analysis_store, "liu2025", restrict="SELECT repo FROM issues")


def test_as_of_before_the_data_censors_instead_of_negative_times(corpus):
    as_of = "2024-01-01"
    ts = pd.Timestamp(as_of, tz="UTC")
    u = corpus.units
    u = u.assign(group=corpus.grouping("repository").set_index("unit")["value"])
    existed = u[u["created_at"] <= ts]
    closed_then = existed[(existed["state"] == "closed") & (existed["closed_at"] <= ts)]
    m = maintenance(corpus, as_of=as_of).set_index("category")
    assert m["issues"].to_dict() == existed.groupby("group").size().to_dict()
    assert m["closed"].to_dict() == closed_then.groupby("group").size().to_dict()
    s = survival(corpus, as_of=as_of)
    assert (s["time"] >= 0).all()


def test_survival_of_a_group_with_every_issue_open_is_flat_at_one(corpus):
    u = corpus.units
    first = u["created_at"].min()
    as_of = (first + pd.Timedelta(minutes=1)).isoformat()
    existed = u[u["created_at"] <= pd.Timestamp(as_of)]
    assert (existed["closed_at"].isna() | (existed["closed_at"] > pd.Timestamp(as_of))).all()  # all open then
    s = survival(corpus, as_of=as_of)
    repos = set(corpus.grouping("repository").set_index("unit").loc[existed.index, "value"])
    assert set(s["category"]) == repos
    assert (s["survival"] == 1.0).all() and (s["events"] == 0).all() and (s["time"] > 0).all()
    # a curve with events goes on, flat, to the last issue followed
    full = survival(corpus)
    for _, c in full.groupby("category"):
        assert c["time"].is_monotonic_increasing and c["survival"].is_monotonic_decreasing


def test_root_cause_groups_given_without_a_cause_are_counted(tmp_path):
    """A classifier sure of the group but not of the cause (or an annotator choosing only a
    group) stores root_cause_group alone; the group distribution read only the leaves and
    dropped those issues, numerator and denominator."""
    from bugatlas.analyze import load_study
    from bugatlas.store import Store
    from bugatlas.store.records import Issue, Label

    def lab(n, dim, value):
        return Label(repo="a/b", issue_number=n, taxonomy="liu2025", dimension=dim, value=value,
                     source_kind="human", source="human:ann")

    with Store(tmp_path / "s.db") as st:
        st.upsert_issues([Issue(repo="a/b", number=n, title=f"t{n}", body="b") for n in (1, 2, 3)])
        st.add_labels([
            lab(1, "root_cause_group", "Environment"), lab(1, "root_cause", "Incompatible Version"),
            lab(2, "root_cause_group", "Environment"),                      # group only
            lab(3, "root_cause_group", "Configuration"), lab(3, "root_cause", "Misconfiguration"),
            lab(3, "root_cause_group", "Resource"),                          # a second group, no cause
        ])
        data = load_study(st, "liu2025")
    groups = distribution(data, "root_cause", "root_cause_group").set_index("category")
    assert groups["units"].to_dict() == {"Environment": 2, "Configuration": 1, "Resource": 1}
    assert set(groups["labelled"]) == {3}
    assert groups.loc["Environment", "share"] == pytest.approx(2 / 3)
    # the instance count does not count a group twice when its cause is there too
    assert groups["instances"].to_dict() == {"Environment": 2, "Configuration": 1, "Resource": 1}
    leaves = distribution(data, "root_cause").set_index("category")  # causes: only where given
    assert leaves["units"].to_dict() == {"Incompatible Version": 1, "Misconfiguration": 1}
    nodes = hierarchy(data, "root_cause").set_index("id")
    assert nodes.loc["Environment", "units"] == 2 and nodes.loc["Resource", "units"] == 1
    assert nodes.loc["Environment / Incompatible Version", "units"] == 1
