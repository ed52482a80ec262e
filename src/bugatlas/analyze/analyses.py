"""The study's analyses as library functions over :class:`StudyData` (each returns pandas
frames or plain dicts; the CLI and the report only print them).

Counting: ``units`` are distinct labelled records having a category (a share's numerator,
with a Wilson 95% interval over the records labelled in that dimension); ``instances`` count
every leaf label, so a bug with two root causes in one group counts twice at group level (the
way Liu et al. count their 1,053 root-cause instances).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from bugatlas.analyze.data import StudyData
from bugatlas.analyze.stats import ChiSquare, chi_square, kaplan_meier, km_median, trend, wilson
from bugatlas.errors import BadInputError

ALL = "All"
GROUPINGS = ("repository", "repo", "owner")
STAGE_DIMENSIONS = ("stage", "phase", "lifecycle_stage")
VERSION_DIMENSIONS = ("model", "model_version", "release", "version")
SYMPTOM_DIMENSIONS = ("symptom",)
CAUSE_DIMENSIONS = ("root_cause", "cause", "category")


def find_dimension(data: StudyData, candidates: tuple[str, ...], given: str | None = None) -> str | None:
    if given:
        data.require(given)
        return given
    return next((d for d in candidates if data.has(d)), None)


# -- distributions -------------------------------------------------------------------------
def distribution(
    data: StudyData, dimension: str, level: int | str | None = None, *, by: str | None = None
) -> pd.DataFrame:
    """Counts and shares of a dimension's categories at one level, overall (group "All") or
    per group (repository, model series, or another dimension)."""
    vals = data.values(dimension, level, distinct=True)
    inst = data.values(dimension, level, distinct=False)
    if by is None:
        vals = vals.assign(group=ALL)
        inst = inst.assign(group=ALL)
    else:
        grouping = data.grouping(by).rename(columns={"value": "group"})
        vals = vals.merge(grouping, on="unit")
        inst = inst.merge(grouping, on="unit")
    units = vals.groupby(["group", "value"], sort=False).size().rename("units")
    instances = inst.groupby(["group", "value"], sort=False).size().rename("instances")
    totals = vals.groupby("group")["unit"].nunique()
    inst_totals = inst.groupby("group").size()
    out = pd.concat([units, instances], axis=1).reset_index().rename(columns={"value": "category"})
    out["labelled"] = out["group"].map(totals).to_numpy()
    out["share"] = out["units"] / out["labelled"]
    out["ci_low"], out["ci_high"] = wilson(out["units"], out["labelled"])
    out["instance_share"] = out["instances"] / out["group"].map(inst_totals).to_numpy()
    out = out.sort_values(["group", "units", "category"], ascending=[True, False, True], kind="stable")
    out.insert(0, "level", data.level_names(dimension)[data.level_index(dimension, level)])
    return out.reset_index(drop=True)


def distribution_levels(data: StudyData, dimension: str, *, by: str | None = None) -> pd.DataFrame:
    """:func:`distribution` at every level of a hierarchical dimension (root first), with
    each category's parent for treemaps and sunbursts."""
    frames = []
    for i in range(max(data.depth(dimension), 1)):
        d = distribution(data, dimension, i, by=by)
        d.insert(1, "depth", i)
        d["parent"] = [_parent(data, dimension, i, c) for c in d["category"]]
        frames.append(d)
    return pd.concat(frames, ignore_index=True)


def _parent(data: StudyData, dimension: str, depth: int, category: str) -> str:
    if depth == 0:
        return ""
    for v in data.distinct_values(dimension):
        p = data.path(dimension, v)
        i = min(depth, len(p) - 1)
        if p[i] == category:
            return p[i - 1] if i > 0 else ""
    return ""


def hierarchy(data: StudyData, dimension: str) -> pd.DataFrame:
    """Every node of a hierarchical dimension: id (path), label, parent id (for a sunburst or
    treemap whose leaves may share names across branches), units (distinct records) and
    instances (leaf labels below it, so a parent's instances are the sum of its children's,
    plus its records labeled at its level alone, e.g. a root-cause group with no cause)."""
    rows = data.values(dimension, None, distinct=False)
    recs: dict[tuple[str, ...], set] = {}
    inst: dict[tuple[str, ...], int] = {}
    for value, units in rows.groupby("value")["unit"]:
        path = data.path(dimension, value)
        uniq = set(np.unique(units.to_numpy()).tolist())
        for i in range(len(path)):
            key = tuple(path[: i + 1])
            recs.setdefault(key, set()).update(uniq)
            inst[key] = inst.get(key, 0) + len(units)
    # labels given only at an upper level (a group without a cause): counted at their node
    # and its ancestors, as StudyData.values counts them at that level
    prefixes = {(len(k) - 1, k[-1]): k for k in recs}
    for depth in range(max(data.depth(dimension), 1) - 1):
        at_level = data.values(dimension, depth)
        for value, units in at_level.groupby("value")["unit"]:
            key = prefixes.get((depth, value), (value,) if depth == 0 else None)
            if key is None:
                continue
            extra = set(units.tolist()) - recs.get(key, set())
            for i in range(len(key)):
                recs.setdefault(key[: i + 1], set()).update(extra)
                inst[key[: i + 1]] = inst.get(key[: i + 1], 0) + len(extra)
    out = [
        {"id": " / ".join(k), "label": _short_name(k), "parent": " / ".join(k[:-1]), "depth": len(k) - 1,
         "units": len(v), "instances": inst[k]}
        for k, v in recs.items()
    ]  # fmt: skip
    return pd.DataFrame(out, columns=["id", "label", "parent", "depth", "units", "instances"]).sort_values(
        ["depth", "units"], ascending=[True, False], ignore_index=True
    )


def _short_name(path: tuple[str, ...]) -> str:
    """A node's own name: codebooks may spell names as full paths ("Crash - CUDA Error")."""
    name = path[-1]
    if len(path) > 1 and name.startswith(path[-2] + " - "):
        return name[len(path[-2]) + 3 :]
    return name


# -- cross-tabulation and diagnostic heuristics -----------------------------------------------
def crosstab(
    data: StudyData,
    rows: str,
    cols: str,
    *,
    row_level: int | str | None = 0,
    col_level: int | str | None = 0,
    count: str = "units",
) -> pd.DataFrame:
    """Rows × columns counts. ``count="units"``: records having both; ``"instances"``: every
    pair of leaf labels (Liu et al.'s symptom by root-cause-group pairs)."""
    if count not in ("units", "instances"):
        raise BadInputError(f"--count {count!r}: use units or instances")
    distinct = count == "units"
    if rows == cols:
        raise BadInputError(f"cross-tab of {rows!r} with itself: choose two dimensions")
    a = data.grouping(rows) if not data.has(rows) else data.values(rows, row_level, distinct=distinct)
    b = data.grouping(cols) if not data.has(cols) else data.values(cols, col_level, distinct=distinct)
    pairs = a.merge(b, on="unit", suffixes=("_r", "_c"))
    if distinct:
        pairs = pairs.drop_duplicates()
    table = pd.crosstab(pairs["value_r"], pairs["value_c"])
    table.index.name, table.columns.name = rows, cols
    order_r = table.sum(axis=1).sort_values(ascending=False, kind="stable").index
    order_c = table.sum(axis=0).sort_values(ascending=False, kind="stable").index
    return table.loc[order_r, order_c]


def with_totals(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    out["Total"] = out.sum(axis=1)
    out.loc["Total"] = out.sum(axis=0)
    return out


def diagnostics(
    data: StudyData,
    symptom: str | None = None,
    cause: str | None = None,
    *,
    symptom_level: int | str | None = 0,
    cause_level: int | str | None = 0,
    top: int = 3,
) -> pd.DataFrame:
    """Diagnostic heuristics from the cross-tab: given symptom S, the most likely causes with
    P(cause | S) (Wilson 95%), and lift = P(cause | S) / P(cause) (> 1: S points to it)."""
    symptom = find_dimension(data, SYMPTOM_DIMENSIONS, symptom)
    cause = find_dimension(data, CAUSE_DIMENSIONS, cause)
    if not symptom or not cause:
        raise BadInputError(f"diagnostics need a symptom and a root-cause dimension (have: {', '.join(data.dimensions)})")
    s = data.values(symptom, symptom_level)
    c = data.values(cause, cause_level)
    both = s.merge(c, on="unit", suffixes=("_s", "_c"))
    n_s = s.groupby("value")["unit"].nunique()
    labelled_c = c["unit"].nunique()
    p_c = c.groupby("value")["unit"].nunique() / max(labelled_c, 1)
    joint = both.groupby(["value_s", "value_c"])["unit"].nunique().rename("units").reset_index()
    joint["symptom_units"] = joint["value_s"].map(n_s).to_numpy()
    # records with the symptom that have any cause label: the conditional's denominator
    n_sc = both.groupby("value_s")["unit"].nunique()
    joint["given"] = joint["value_s"].map(n_sc).to_numpy()
    joint["p_cause_given_symptom"] = joint["units"] / joint["given"]
    joint["ci_low"], joint["ci_high"] = wilson(joint["units"], joint["given"])
    joint["lift"] = joint["p_cause_given_symptom"] / joint["value_c"].map(p_c).to_numpy()
    joint = joint.sort_values(["symptom_units", "value_s", "units"], ascending=[False, True, False], kind="stable")
    joint["rank"] = joint.groupby("value_s").cumcount() + 1
    out = joint[joint["rank"] <= top].rename(columns={"value_s": "symptom", "value_c": "cause"})
    return out[["symptom", "symptom_units", "rank", "cause", "units", "given", "p_cause_given_symptom",
                "ci_low", "ci_high", "lift"]].reset_index(drop=True)  # fmt: skip


# -- commonality ---------------------------------------------------------------------------------
def commonality(
    data: StudyData, dimension: str, level: int | str | None = 0, *, by: str = "repository"
) -> tuple[pd.DataFrame, ChiSquare | None]:
    """Do the groups (engines, model series) share one distribution? Returns the group ×
    category unit table and its chi-square test (Cramér's V; adjusted standardized residuals
    show which group deviates where: |r| > 1.96 at the 5% level)."""
    table = crosstab(data, by, dimension, col_level=level)
    return table, chi_square(table)


def residual_findings(test: ChiSquare, *, threshold: float = 1.96, top: int = 10) -> pd.DataFrame:
    """The cells that deviate most from independence, largest |residual| first."""
    r = test.residuals.stack().rename("residual").reset_index()
    r.columns = ["group", "category", "residual"]
    obs = test.table.stack().to_numpy()
    exp = test.expected.stack().to_numpy()
    r["observed"], r["expected"] = obs, exp
    r = r[r["residual"].abs() > threshold]
    r["direction"] = np.where(r["residual"] > 0, "over", "under")
    return r.reindex(r["residual"].abs().sort_values(ascending=False).index).head(top).reset_index(drop=True)


# -- lifecycle -----------------------------------------------------------------------------------
def lifecycle(
    data: StudyData, dimension: str, level: int | str | None = 0, *, stage: str | None = None
) -> tuple[pd.DataFrame, ChiSquare | None]:
    """A dimension's distribution by lifecycle stage (fine-tuning vs inference) or phase
    (setup, conversion, serving): stage × category units, and its chi-square test."""
    stage = find_dimension(data, STAGE_DIMENSIONS, stage)
    if stage is None:
        raise BadInputError(f"no stage or phase dimension in {data.taxonomy!r} (dimensions: {', '.join(data.dimensions)})")
    table = crosstab(data, stage, dimension, col_level=level)
    return table, chi_square(table)


def shares(table: pd.DataFrame) -> pd.DataFrame:
    """Row shares of a count table."""
    return table.div(table.sum(axis=1).replace(0, np.nan), axis=0)


def flows(data: StudyData, chain: list[tuple[str, int | str | None]]) -> pd.DataFrame:
    """Unit flows between consecutive dimensions (for a Sankey: stage → symptom → root cause):
    source step, source, target step, target, units."""
    out = []
    for (d1, l1), (d2, l2) in zip(chain, chain[1:], strict=False):
        t = crosstab(data, d1, d2, row_level=l1, col_level=l2)
        s = t.stack().rename("units").reset_index()
        s.columns = ["source", "target", "units"]
        s = s[s["units"] > 0]
        s.insert(0, "source_step", d1)
        s.insert(2, "target_step", d2)
        out.append(s)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


# -- evolution -------------------------------------------------------------------------------------
_NUM = re.compile(r"(\d+(?:\.\d+)?)")


def _version_key(name: str) -> tuple:
    """Natural order: 'llama' < 'llama3', 'Qwen' < 'Qwen2.5'; the base name without a number
    comes first."""
    parts = _NUM.split(name.lower())
    return tuple(float(p) if _NUM.fullmatch(p) else p for p in parts if p != "")


def by_version(
    data: StudyData, dimension: str, level: int | str | None = 0, *, version: str | None = None
) -> pd.DataFrame:
    """A dimension's shares per model version (or release), ordered within each series
    (repository group) so consecutive rows read as the series' evolution."""
    version = find_dimension(data, VERSION_DIMENSIONS, version)
    if version is None:
        raise BadInputError(f"no model/version dimension in {data.taxonomy!r} (dimensions: {', '.join(data.dimensions)})")
    table = crosstab(data, version, dimension, col_level=level)
    series = data.values(version, None).merge(data.grouping("repository"), on="unit", suffixes=("", "_g"))
    series_of = series.groupby("value")["value_g"].agg(lambda s: s.mode().iat[0])
    share = shares(table)
    out = share.add_prefix("share: ")
    out.insert(0, "units", table.sum(axis=1))
    out.insert(0, "series", series_of.reindex(out.index).to_numpy())
    out = out.reset_index().rename(columns={version: "version"})
    out["_k"] = out["version"].map(_version_key)
    return out.sort_values(["series", "_k"], kind="stable").drop(columns="_k").reset_index(drop=True)


def monthly(
    data: StudyData, dimension: str | None = None, level: int | str | None = 0, *, freq: str = "M"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts per month (of issue creation): one column per category of a dimension (or per
    repository group with ``dimension="repository"``; one "issues" column without), plus a trend test per column on counts and on shares (Mann-Kendall tau and
    p-value, least-squares slope per month and p-value)."""
    created = data.units["created_at"]
    if created.isna().all():
        raise BadInputError("no creation dates: the labelled issues are references (run `bugatlas collect` to hydrate them)")
    if freq not in ("M", "Q", "Y"):
        raise BadInputError(f"--freq {freq!r}: use M (months), Q (quarters) or Y (years)")
    # vectorised labels ("2024-05"), no per-row Period objects: 100,000 issues stay fast
    stamp = created.dt.tz_convert(None)
    if freq == "M":
        period = stamp.dt.strftime("%Y-%m")
    elif freq == "Q":
        period = stamp.dt.year.astype("Int64").astype(str) + "Q" + stamp.dt.quarter.astype("Int64").astype(str)
    else:
        period = stamp.dt.year.astype("Int64").astype(str)
    if dimension:
        vals = data.grouping(dimension) if dimension in GROUPINGS else data.values(dimension, level)
        vals["period"] = period.reindex(vals["unit"]).to_numpy()
        vals = vals.dropna(subset=["period"])
        counts = pd.crosstab(vals["period"], vals["value"])
        counts = counts[counts.sum().sort_values(ascending=False).index]
    else:
        counts = period.dropna().value_counts().sort_index().to_frame("issues")
    full = pd.period_range(stamp.min(), stamp.max(), freq=freq).astype(str)
    if freq == "Y":
        full = [p[:4] for p in full]
    counts = counts.reindex(full, fill_value=0)
    counts.index.name = "month" if freq == "M" else "period"
    sh = shares(counts) if dimension else None
    rows = []
    for col in counts.columns:
        t = trend(counts[col].to_numpy())
        rec = {"category": col, "total": int(counts[col].sum()), **{f"count_{k}": v for k, v in t.items() if k != "n"}}
        if sh is not None:
            ts = trend(sh[col].to_numpy())
            rec.update({f"share_{k}": v for k, v in ts.items() if k != "n"})
        rec["months"] = t["n"]
        rows.append(rec)
    return counts, pd.DataFrame(rows)


# -- maintenance -------------------------------------------------------------------------------------
def _durations(data: StudyData, as_of: pd.Timestamp | None = None) -> tuple[pd.Series, pd.Series, pd.Timestamp]:
    u = data.units
    if as_of is None:
        as_of = pd.concat([u["created_at"], u["closed_at"]]).max()
    # as of the censoring date: closed later means still open then; created later, not yet there
    closed = u["closed_at"].notna() & (u["state"].fillna("closed") != "open") & (u["closed_at"] <= as_of)
    end = u["closed_at"].where(closed, as_of)
    days = (end - u["created_at"]).dt.total_seconds() / 86400.0
    days = days.where(~(u["created_at"] > as_of))
    return days, closed, as_of


def _as_of(as_of: str | None) -> pd.Timestamp | None:
    if not as_of:
        return None
    try:
        ts = pd.Timestamp(as_of)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"--as-of {as_of!r}: not a date (use YYYY-MM-DD)") from exc
    if ts is pd.NaT:
        raise BadInputError(f"--as-of {as_of!r}: not a date (use YYYY-MM-DD)")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def maintenance(
    data: StudyData, dimension: str | None = None, level: int | str | None = 0, *, as_of: str | None = None
) -> pd.DataFrame:
    """Per category (or per repository group without a dimension): issues, closed, open, days
    to close (median and quartiles over closed issues), Kaplan-Meier median time to close
    counting open issues as censored, comments per issue, and fix effort from linked pull
    requests (median lines added+deleted and files changed, where collected)."""
    ts = _as_of(as_of)
    days, closed, _ = _durations(data, ts)
    if days.isna().all():
        raise BadInputError("no creation dates: the labelled issues are references (run `bugatlas collect` to hydrate them)")
    u = data.units.assign(_days=days, _closed=closed)
    if ts is not None:  # issues opened after the censoring date do not exist yet
        u = u[~(u["created_at"] > ts)]
    keyed = data.values(dimension, level) if dimension else data.grouping("repository")
    j = keyed.merge(u, left_on="unit", right_index=True)
    rows = []
    for cat, g in j.groupby("value", sort=False):
        dc = g.loc[g["_closed"], "_days"].dropna()
        curve = kaplan_meier(g["_days"], g["_closed"])
        lines = g["fix_additions"].fillna(0) + g["fix_deletions"].fillna(0)
        has_fix = g["fix_prs"].notna()
        rows.append({
            "category": cat, "issues": len(g), "closed": int(g["_closed"].sum()),
            "open": int((~g["_closed"]).sum()),
            "close_days_median": _q(dc, 0.5), "close_days_q1": _q(dc, 0.25), "close_days_q3": _q(dc, 0.75),
            "km_median_days": km_median(curve),
            "comments_mean": float(g["comments_count"].mean()) if g["comments_count"].notna().any() else None,
            "comments_median": _q(g["comments_count"].dropna(), 0.5),
            "with_fix_pr": int(has_fix.sum()),
            "fix_lines_median": _q(lines[has_fix], 0.5),
            "fix_files_median": _q(g.loc[has_fix, "fix_files"].dropna(), 0.5),
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values("issues", ascending=False, ignore_index=True)


def _q(s: pd.Series, q: float) -> float | None:
    return float(s.quantile(q)) if len(s) else None


def survival(
    data: StudyData, dimension: str | None = None, level: int | str | None = 0, *, top: int = 6,
    as_of: str | None = None,
) -> pd.DataFrame:
    """Kaplan-Meier curves of time to close (open issues censored) for the ``top`` largest
    categories (or repository groups): category, time (days), survival (share still open)."""
    ts = _as_of(as_of)
    days, closed, _ = _durations(data, ts)
    keyed = data.values(dimension, level) if dimension else data.grouping("repository")
    sizes = keyed["value"].value_counts()
    frames = []
    for cat in sizes.index[:top]:
        units = keyed.loc[keyed["value"] == cat, "unit"]
        d, e = days.reindex(units).to_numpy(), closed.reindex(units).to_numpy()
        c = kaplan_meier(d, e)
        last = np.nanmax(d) if np.isfinite(d).any() else None
        if last is not None and (c.empty or last > c["time"].iloc[-1]):
            # the curve goes on, flat, to the last issue followed (all open: flat at 1 throughout)
            s_last = (1.0, 1.0, 1.0) if c.empty else tuple(c[["survival", "low", "high"]].iloc[-1])
            tail = {"time": last, "at_risk": int((d >= last).sum()), "events": 0,
                    "survival": s_last[0], "low": s_last[1], "high": s_last[2]}  # fmt: skip
            c = pd.concat([c, pd.DataFrame([tail])], ignore_index=True) if not c.empty else pd.DataFrame([tail])
        frames.append(c.assign(category=cat))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def label_usage(data: StudyData, *, by: str | None = "repository", top: int = 15) -> pd.DataFrame:
    """Maintainers' labels: how many issues carry each (share of the group's issues), and how
    many issues carry none (the labelling practice a collection filter relies on)."""
    u = data.units[["labels"]].join(data.grouping(by).set_index("unit")["value"].rename("group"), how="inner") \
        if by else data.units[["labels"]].assign(group=ALL)
    size = u.groupby("group").size()
    ex = u.explode("labels").dropna(subset=["labels"])
    counts = ex.groupby(["group", "labels"]).size().rename("issues").reset_index()
    counts = counts.sort_values(["group", "issues"], ascending=[True, False]).groupby("group").head(top)
    none = (u["labels"].map(len) == 0).groupby(u["group"]).sum()
    extra = pd.DataFrame({"group": none.index, "labels": "(no label)", "issues": none.to_numpy()})
    out = pd.concat([counts, extra], ignore_index=True).rename(columns={"labels": "label"})
    out["share"] = out["issues"] / out["group"].map(size).to_numpy()
    return out.sort_values(["group", "issues"], ascending=[True, False], ignore_index=True)


def author_association(data: StudyData, dimension: str | None = None, level: int | str | None = 0) -> pd.DataFrame:
    """Who reports: author association (NONE, CONTRIBUTOR, MEMBER, …) counts per category
    (or per repository group), as a count table."""
    keyed = data.values(dimension, level) if dimension else data.grouping("repository")
    j = keyed.merge(data.units[["author_association"]], left_on="unit", right_index=True)
    j["author_association"] = j["author_association"].fillna("unknown")
    t = pd.crosstab(j["value"], j["author_association"])
    t.index.name = dimension or "repository"
    return t.loc[t.sum(axis=1).sort_values(ascending=False).index]


def overview(data: StudyData) -> dict[str, Any]:
    u = data.units
    return {
        "taxonomy": data.taxonomy,
        "sources": data.sources,
        "records": int(len(u)),
        "issues": int(u[["repo", "issue_number"]].drop_duplicates().shape[0]),
        "by_group": {str(k): int(v) for k, v in u["group"].value_counts().sort_index().items()},
        "dimensions": {d: int(data.values(d, None)["unit"].nunique()) for d in data.dimensions},
        "with_text": int((~u["is_reference"]).sum()),
        "notes": data.notes,
    }
