"""`bugatlas report`: the study's analyses as one self-contained HTML page (figures embedded,
plotly's JavaScript inlined, opens from disk with no network), a Markdown version, CSV for
every table and LaTeX for the main ones.

Everything that comes from issues (titles, maintainers' labels, category names from a user's
codebook) is untrusted: the HTML is rendered by Jinja2 with autoescaping, figure data is
embedded as JSON with ``<``, ``>`` and ``&`` escaped, and Markdown escapes its markup."""

from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from bugatlas import __version__
from bugatlas.analyze import analyses as A
from bugatlas.analyze.data import StudyData, load_study
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.report import figures as F
from bugatlas.store import Store

SKIP_DISTRIBUTION = ("model", "architecture")  # shown under evolution / as groups instead


@dataclass
class Table:
    name: str
    caption: str
    frame: pd.DataFrame
    index: bool = False
    main: bool = False  # also written as LaTeX
    percent: tuple[str, ...] = ()


@dataclass
class Section:
    id: str
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, Any]] = field(default_factory=list)  # (id, plotly figure)
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReportResult:
    out: Path
    html: Path
    markdown: Path
    tables: list[Path]
    latex: list[Path]
    figures: int
    sections: list[str]
    audit: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "html": str(self.html), "markdown": str(self.markdown),
                "tables": len(self.tables), "latex": len(self.latex), "figures": self.figures,
                "sections": self.sections, "audit": self.audit}  # fmt: skip


def _pct(x: float | None) -> str:
    return "" if x is None or pd.isna(x) else f"{x:.1%}"


# -- sections -------------------------------------------------------------------------------------
def _overview(data: StudyData) -> Section:
    info = A.overview(data)
    s = Section("overview", "Overview")
    s.text.append(f"Taxonomy {info['taxonomy'] or '(none: raw issues)'}; label source(s): "
                  f"{', '.join(info['sources']) or 'none'}. {info['records']} labelled records on "
                  f"{info['issues']} issues; {info['with_text']} with issue text.")  # fmt: skip
    s.text += info["notes"]
    by_group = data.units.groupby("group").agg(records=("repo", "size"), issues=("issue_number", "size"))
    by_group["issues"] = data.units.drop_duplicates(["repo", "issue_number"]).groupby("group").size()
    by_group["share"] = by_group["records"] / by_group["records"].sum()
    by_group = by_group.sort_values("records", ascending=False)
    by_group.loc["Total"] = [by_group["records"].sum(), by_group["issues"].sum(), 1.0]
    by_group.index.name = "group"
    s.tables.append(Table("overview_groups", "Records per repository group", by_group, index=True, main=True,
                          percent=("share",)))  # fmt: skip
    if data.labels.size:
        dims = pd.DataFrame([{"dimension": d, "labelled records": n, "levels": " > ".join(data.level_names(d)),
                              "categories": len(data.distinct_values(d))}
                             for d, n in info["dimensions"].items()])  # fmt: skip
        s.tables.append(Table("overview_dimensions", "Labelled dimensions", dims))
    return s


def _distribution_sections(data: StudyData, by: str) -> list[Section]:
    out = []
    for dim in data.primary_dimensions:
        if dim in SKIP_DISTRIBUTION:
            continue
        s = Section(f"dist-{dim}", f"Distribution: {dim}")
        levels = A.distribution_levels(data, dim)
        depth = data.depth(dim)
        for i in range(depth):
            d = levels[levels["depth"] == i].drop(columns=["depth", "group"])
            lname = data.level_names(dim)[i]
            d = d.drop(columns=["level"] + (["parent"] if i == 0 else []))
            s.tables.append(Table(f"dist_{dim}_{lname}".replace(" ", "_"), f"{dim}: {lname} (units, share of labelled records, Wilson 95% CI; instances)",
                                  d, main=(i == 0 or depth == 1), percent=("share", "ci_low", "ci_high", "instance_share")))  # fmt: skip
            fig = F.bar(d, f"{dim} — {lname}")
            if fig is not None:
                s.figures.append((f"bar-{dim}-{i}", fig))
        if depth > 1:
            fig = F.sunburst(A.hierarchy(data, dim), f"{dim}: hierarchy (labels)")
            if fig is not None:
                s.figures.append((f"sunburst-{dim}", fig))
        if data.units["group"].nunique() > 1:
            g = A.distribution(data, dim, 0, by=by)
            pivot = g.pivot_table(index="category", columns="group", values="units", fill_value=0, aggfunc="sum")
            pivot = pivot.loc[pivot.sum(axis=1).sort_values(ascending=False).index]
            share = pivot / g.groupby("group")["labelled"].first()
            both = pivot.astype(int).astype(str) + " (" + (share * 100).round(1).astype(str) + "%)"
            s.tables.append(Table(f"dist_{dim}_by_{by}", f"{dim} (top level) per {by}: records (share of the group's labelled records)",
                                  both, index=True, main=True))  # fmt: skip
            fig = F.grouped_shares(g, f"{dim} per {by} (share)")
            if fig is not None:
                s.figures.append((f"groups-{dim}", fig))
        out.append(s)
    return out


def _crosstab_section(data: StudyData) -> Section | None:
    sym = A.find_dimension(data, A.SYMPTOM_DIMENSIONS)
    cause = A.find_dimension(data, A.CAUSE_DIMENSIONS)
    if not sym or not cause:
        return None
    s = Section("crosstab", f"{sym} × {cause}: cross-tabulation and diagnostic heuristics")
    t = A.crosstab(data, sym, cause, row_level=0, col_level=0, count="instances")
    s.tables.append(Table("crosstab_symptom_cause", f"{sym} × {cause} (top levels; label pairs)", A.with_totals(t),
                          index=True, main=True))  # fmt: skip
    s.figures.append(("heatmap-crosstab", F.heatmap(t, f"{sym} × {cause} (label pairs)")))
    for lvl in range(1, data.depth(cause)):  # every deeper level (Yu et al.'s Table 2 is level 2)
        name = data.level_names(cause)[lvl]
        t2 = A.crosstab(data, cause, sym, row_level=lvl, col_level=0, count="units")
        last = lvl == data.depth(cause) - 1
        s.tables.append(Table("crosstab_symptom_cause_leaf" if last else f"crosstab_cause_level{lvl + 1}_symptom",
                              f"{cause} ({name}) × {sym} (records)", A.with_totals(t2), index=True, main=not last))  # fmt: skip
    dg = A.diagnostics(data, sym, cause, top=3)
    s.tables.append(Table("diagnostics", "Given a symptom, the most likely causes: P(cause | symptom), Wilson 95% CI, lift over the base rate",
                          dg, main=True, percent=("p_cause_given_symptom", "ci_low", "ci_high")))  # fmt: skip
    for sname, g in dg.groupby("symptom", sort=False):
        first = g.iloc[0]
        others = "; ".join(f"{r.cause} {r.p_cause_given_symptom:.0%}" for r in g.iloc[1:].itertuples())
        s.text.append(f"Given {sname} ({int(first.symptom_units)} records): most likely {first.cause} "
                      f"({first.p_cause_given_symptom:.0%}, 95% CI {first.ci_low:.0%}–{first.ci_high:.0%}, "
                      f"lift {first.lift:.2f})" + (f"; then {others}." if others else "."))  # fmt: skip
    return s


def _commonality_section(data: StudyData, by: str) -> Section | None:
    if data.units["group"].nunique() < 2 and by == "repository":
        return None
    s = Section("commonality", f"Commonality across {by} groups")
    for dim in [d for d in (A.find_dimension(data, A.SYMPTOM_DIMENSIONS), A.find_dimension(data, A.CAUSE_DIMENSIONS)) if d]:
        table, test = A.commonality(data, dim, 0, by=by)
        if test is None:
            continue
        verdict = "differ significantly" if test.p_value < 0.05 else "do not differ significantly"
        s.text.append(f"{dim}: the {by} groups {verdict} (chi-square {test.chi2:.1f}, df {test.dof}, "
                      f"p = {test.p_value:.2g}, Cramér's V = {test.cramers_v:.3f}, n = {test.n}"
                      + (f"; {test.low_expected_share:.0%} of cells expect fewer than 5, read p with care" if test.low_expected_share > 0.2 else "")
                      + ").")  # fmt: skip
        dev = A.residual_findings(test)
        for r in dev.head(5).itertuples():
            s.text.append(f"{r.group} has {'more' if r.direction == 'over' else 'fewer'} {r.category} than "
                          f"expected ({r.observed:.0f} vs {r.expected:.1f}; adjusted residual {r.residual:+.2f}).")  # fmt: skip
        s.tables.append(Table(f"commonality_{dim}_residuals", f"{dim}: adjusted standardized residuals per {by} (|r| > 1.96: deviates at 5%)",
                              test.residuals.round(2), index=True, main=True))  # fmt: skip
        s.tables.append(Table(f"commonality_{dim}_tests", f"{dim}: chi-square test", pd.DataFrame([{
            "dimension": dim, "chi2": test.chi2, "dof": test.dof, "p_value": test.p_value,
            "cramers_v": test.cramers_v, "n": test.n, "cells_expected_below_5": test.low_expected_share}])))  # fmt: skip
        s.figures.append((f"residuals-{dim}", F.heatmap(test.residuals, f"{dim}: adjusted residuals per {by}", diverging=True, fmt="f")))
    return s if s.tables else None


def _lifecycle_section(data: StudyData) -> Section | None:
    stage = A.find_dimension(data, A.STAGE_DIMENSIONS)
    if not stage:
        return None
    s = Section("lifecycle", f"Lifecycle: by {stage}")
    chain: list[tuple[str, Any]] = [(stage, None)]
    for dim in [d for d in (A.find_dimension(data, A.SYMPTOM_DIMENSIONS), A.find_dimension(data, A.CAUSE_DIMENSIONS)) if d and d != stage]:
        table, test = A.lifecycle(data, dim, 0, stage=stage)
        sh = A.shares(table)
        s.tables.append(Table(f"lifecycle_{dim}", f"{dim} by {stage}: records", A.with_totals(table), index=True, main=True))
        s.tables.append(Table(f"lifecycle_{dim}_shares", f"{dim} by {stage}: share of the {stage}'s records", sh.round(4), index=True,
                              percent=tuple(map(str, sh.columns))))  # fmt: skip
        if test is not None:
            s.text.append(f"{dim} by {stage}: chi-square {test.chi2:.1f}, df {test.dof}, p = {test.p_value:.2g}, Cramér's V = {test.cramers_v:.3f}.")
        chain.append((dim, 0))
    if len(chain) > 1:
        s.figures.append(("sankey-lifecycle", F.sankey(A.flows(data, chain), " → ".join(d for d, _ in chain))))
    return s


def _evolution_section(data: StudyData) -> Section | None:
    s = Section("evolution", "Evolution")
    version = A.find_dimension(data, A.VERSION_DIMENSIONS)
    for dim in [d for d in (A.find_dimension(data, A.SYMPTOM_DIMENSIONS), A.find_dimension(data, A.CAUSE_DIMENSIONS)) if d]:
        if version:
            v = A.by_version(data, dim, 0, version=version)
            s.tables.append(Table(f"versions_{dim}", f"{dim} (top level) share per {version}, ordered within each series",
                                  v, percent=tuple(c for c in v.columns if c.startswith("share: "))))  # fmt: skip
            frame = v.set_index("version")[[c for c in v.columns if c.startswith("share: ")]]
            frame.columns = [c.removeprefix("share: ") for c in frame.columns]
            s.figures.append((f"versions-{dim}", F.lines(frame, f"{dim} share by {version}", yformat=".0%")))
    if data.units["created_at"].notna().any():
        counts, tr = A.monthly(data)
        s.figures.append(("monthly-issues", F.lines(counts, "records per month")))
        s.tables.append(Table("monthly_trend", "Monthly records: Mann-Kendall tau and OLS slope per month", tr))
        if data.units["group"].nunique() > 1:
            c, t = A.monthly(data, "repository")
            s.tables.append(Table("monthly_repository", "Records per month per repository group", c, index=True))
            s.tables.append(Table("monthly_repository_trends", "Per repository group: trends of monthly counts and shares", t, main=True))
            s.figures.append(("monthly-repository", F.lines(c, "records per month per repository group")))
        for dim in [d for d in (A.find_dimension(data, A.SYMPTOM_DIMENSIONS), A.find_dimension(data, A.CAUSE_DIMENSIONS)) if d]:
            c, t = A.monthly(data, dim, 0)
            s.tables.append(Table(f"monthly_{dim}", f"{dim} per month (records)", c, index=True))
            s.tables.append(Table(f"monthly_{dim}_trends", f"{dim}: trends of monthly counts and shares", t, main=True))
            s.figures.append((f"monthly-{dim}", F.lines(A.shares(c).rolling(3, min_periods=1).mean(), f"{dim}: monthly share (3-month mean)", yformat=".0%")))
    elif not version:
        return None
    return s if (s.tables or s.figures) else None


def _maintenance_section(data: StudyData) -> Section | None:
    if data.units["created_at"].isna().all():
        return None
    s = Section("maintenance", "Maintenance: time to close, discussion, fix effort, labelling")
    keys = [None] + [d for d in (A.find_dimension(data, A.SYMPTOM_DIMENSIONS), A.find_dimension(data, A.CAUSE_DIMENSIONS)) if d]
    for dim in keys:
        m = A.maintenance(data, dim, 0)
        name = dim or "repository"
        s.tables.append(Table(f"maintenance_{name}", f"Time to close (days; open issues censored in the Kaplan-Meier median), comments and fix effort per {name}",
                              m, main=True))  # fmt: skip
        s.figures.append((f"km-{name}", F.survival(A.survival(data, dim, 0), f"Kaplan-Meier: share of issues still open, per {name}")))
    if not data.units["fix_prs"].notna().any():
        s.text.append("No linked pull requests in the store: fix effort needs `bugatlas collect` with pull requests.")
    lab = A.label_usage(data)
    s.tables.append(Table("maintainer_labels", "Maintainers' labels per repository group (share of the group's issues)", lab, percent=("share",)))
    s.figures.append(("labels-maintainers", F.label_bars(lab, "maintainers' labels: share of each group's issues")))
    aa = A.author_association(data)
    s.tables.append(Table("author_association", "Author association per repository group", aa, index=True))
    s.figures.append(("authors-association", F.stacked(aa, "who reports: author association per repository group")))
    sym = A.find_dimension(data, A.SYMPTOM_DIMENSIONS)
    if sym:
        s.tables.append(Table(f"author_association_{sym}", f"Author association per {sym}", A.author_association(data, sym, 0), index=True))
    return s


def _examples(data: StudyData, section: Section, *, per_category: int = 3) -> None:
    """Quote the most discussed issue titles per top-level symptom or category (untrusted
    text: escaped on output)."""
    sym = A.find_dimension(data, A.SYMPTOM_DIMENSIONS) or A.find_dimension(data, A.CAUSE_DIMENSIONS)
    u = data.units
    if not sym or u["title"].isna().all():
        return
    vals = data.values(sym, 0).merge(u[["title", "html_url", "repo", "issue_number", "comments_count"]],
                                     left_on="unit", right_index=True)  # fmt: skip
    # the most discussed reports of each category: the ones maintainers and users know
    vals = vals[vals["title"].notna()].sort_values(["comments_count", "repo", "issue_number"],
                                                   ascending=[False, True, True], na_position="last")  # fmt: skip
    for cat, g in vals.groupby("value", sort=False):
        for r in g.head(per_category).itertuples():
            section.examples.append({"category": cat, "title": r.title, "url": r.html_url or "",
                                     "ref": f"{r.repo}#{r.issue_number}"})  # fmt: skip


def _probe_section(store: Store, data: StudyData) -> Section | None:
    """Failures the probe stage found on live engines, beside the mined symptom distribution
    (both in liu2025 symptoms). Skipped when the probe stage or its findings are absent."""
    try:
        from bugatlas.probe.storage import probe_findings_frame
    except ImportError:
        return None
    try:
        f = probe_findings_frame(store)
    except Exception:  # store written before the probe stage existed
        return None
    if f.empty:
        return None
    s = Section("probe", "Probe findings beside the mined issues")
    runs = f["probe_run_id"].nunique()
    s.text.append(f"{len(f)} failures found by {runs} probe run(s) against live engines "
                  f"({', '.join(sorted(map(str, f['engine'].fillna('unknown').unique())))}).")  # fmt: skip
    counts = f.groupby("symptom").size().rename("probe findings").to_frame()
    counts["probe share"] = counts["probe findings"] / counts["probe findings"].sum()
    if data.taxonomy == "liu2025" and data.has("symptom"):
        mined = A.distribution(data, "symptom", 0).set_index("category")
        counts = counts.join(mined[["units", "share"]].rename(columns={"units": "mined issues", "share": "mined share"}),
                             how="outer").fillna(0)  # fmt: skip
    for col in ("probe findings", "mined issues"):
        if col in counts:
            counts[col] = counts[col].astype(int)
    counts = counts.sort_values("probe findings", ascending=False, kind="stable")
    counts.index.name = "symptom"
    s.tables.append(Table("probe_symptoms", "Probe findings by liu2025 symptom (and the mined issues' shares)",
                          counts, index=True, main=True, percent=("probe share", "mined share")))  # fmt: skip
    share_cols = [c for c in ("probe share", "mined share") if c in counts]
    s.figures.append(("probe-symptoms", F.stacked(counts[share_cols].T, "symptom shares: probe findings vs mined issues")))
    detail = f[["engine", "model", "suite", "check_id", "oracle", "symptom", "unexpected_output", "message"]].copy()
    detail["message"] = detail["message"].astype(str).str.slice(0, 240)
    s.tables.append(Table("probe_findings", "Every probe finding (message truncated)", detail))
    return s


def _agreement_section(store: Store, taxonomy: str | None) -> Section | None:
    """Inter-rater agreement of the annotate stage's samples in this taxonomy (Cohen's kappa
    per annotator pair, Fleiss' kappa, Krippendorff's alpha per dimension and level)."""
    if not taxonomy:
        return None
    try:
        from bugatlas.annotate.agreement import agreement, headline
    except ImportError:
        return None
    try:
        names = [r["name"] for r in store.query("SELECT name FROM ann_samples WHERE taxonomy = ? ORDER BY id", (taxonomy,))]
    except Exception:  # store without the annotate tables
        return None
    rows = []
    for name in names:
        try:
            rep = agreement(store, name)
        except Exception as exc:  # a sample nobody has annotated yet, or an unknown codebook
            rows.append({"sample": name, "dimension": "", "level": "", "items": 0, "note": str(exc)[:200]})
            continue
        for h in headline(rep):
            if not h["items"]:
                continue
            rows.append({"sample": name, "annotators": ", ".join(rep["annotators"]), **{
                k: ("; ".join(f"{a}: {v:.3f}" for a, v in h[k].items() if v is not None) if isinstance(h[k], dict) else h[k])
                for k in ("dimension", "level", "items", "cohen_kappa", "observed_agreement", "fleiss_kappa",
                          "krippendorff_alpha", "macro_category_kappa")}})  # fmt: skip
    if not rows:
        return None
    s = Section("agreement", "Labelling agreement (annotate stage)")
    s.text.append("Latest done annotation per annotator; kappa per annotator pair; multi-label dimensions "
                  "compare label sets, with the macro kappa over categories.")  # fmt: skip
    s.tables.append(Table("agreement", "Inter-rater agreement per sample, dimension and level", pd.DataFrame(rows), main=True))
    return s


def _audit_section(store: Store, taxonomy: str | None, papers: list[str] | None, files: list[Path]) -> tuple[Section | None, dict | None]:
    from bugatlas.analyze.audit import audit, audit_summary, published

    known = published()["papers"]
    if papers is None:  # the papers whose released dataset is this study's taxonomy
        papers = [p for p, info in known.items() if info.get("taxonomy") == taxonomy]
    unknown = [p for p in papers if p not in known]
    if unknown:
        raise BadInputError(f"--audit {unknown[0]}: known papers are {', '.join(known)}")
    if not papers:
        return None, None
    frame = audit(store, papers=papers, files=files)
    checked = frame[~frame["status"].isin(["not checked"])]
    if checked.empty:
        return None, None
    summary = audit_summary(frame)
    s = Section("audit", "Published numbers vs the released datasets")
    for paper, counts in summary.items():
        s.text.append(f"{paper}: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + ".")
    diff = frame[frame["status"] == "differs"]
    s.tables.append(Table("audit_differences", "Every printed number the released dataset does not reproduce", diff, main=True))
    s.tables.append(Table("audit_all", "All printed numbers, recounted", frame))
    return s, summary


# -- rendering ------------------------------------------------------------------------------------
def _fmt_cell(v: Any, pct: bool) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
        return ""
    if pct and isinstance(v, int | float):
        return f"{v:.1%}"
    if isinstance(v, float):
        return f"{v:.0f}" if v.is_integer() and abs(v) >= 1 else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _rows(t: Table) -> tuple[list[str], list[list[str]]]:
    f = t.frame.reset_index() if t.index else t.frame
    cols = [str(c) for c in f.columns]
    rows = [[_fmt_cell(v, str(c) in t.percent) for c, v in zip(f.columns, row, strict=True)] for row in f.itertuples(index=False)]
    return cols, rows


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md_escape(text: Any) -> str:
    """Markdown-escape untrusted text: markup characters backslashed, HTML entities encoded,
    newlines flattened (a title cannot break a table row or open a tag)."""
    s = html.escape(" ".join(str(text).split()), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", s)


def _markdown(title: str, sections: list[Section], meta: dict[str, Any]) -> str:
    lines = [f"# {md_escape(title)}", "", f"Generated by BugAtlas {__version__} on {meta['generated']}.", ""]
    for s in sections:
        lines += [f"## {md_escape(s.title)}", ""]
        lines += [md_escape(t) + "\n" for t in s.text]
        for t in s.tables:
            cols, rows = _rows(t)
            show = rows[:60]
            lines += [f"**{md_escape(t.caption)}** (`tables/{t.name}.csv`)", "",
                      "| " + " | ".join(md_escape(c) for c in cols) + " |",
                      "|" + "---|" * len(cols)]  # fmt: skip
            lines += ["| " + " | ".join(md_escape(v) for v in r) + " |" for r in show]
            if len(rows) > len(show):
                lines.append(f"\n({len(rows) - len(show)} more rows in the CSV)")
            lines.append("")
        if s.figures:
            lines.append(f"_{len([f for f in s.figures if f[1] is not None])} figure(s) in index.html._\n")
        if s.examples:
            lines += ["### Example reports", ""]
        for e in s.examples:
            url = e["url"] if e["url"].startswith("https://") else ""
            lines.append(f"- {md_escape(e['category'])}: {md_escape(e['title'])} ({md_escape(e['ref'])}"
                         + (f", <{url.replace('>', '%3E')}>" if url else "") + ")")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}  # fmt: skip


def latex_escape(text: Any) -> str:
    """Text for a LaTeX caption: pandas escapes the cells and headers but not the caption,
    where "%" comments out the closing brace and "_" leaves text mode."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex(t: Table) -> str:
    cols, rows = _rows(t)
    frame = pd.DataFrame(rows, columns=cols)
    return frame.to_latex(index=False, escape=True, caption=latex_escape(t.caption), label=f"tab:{t.name}",
                          longtable=len(rows) > 40)  # fmt: skip


def _figure_json(fig) -> str:
    # plotly JSON, made safe inside <script>: no "</script>", no HTML parsing surprises
    s = fig.to_json()
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(title: str, sections: list[Section], meta: dict[str, Any]) -> str:
    import jinja2
    from plotly.offline import get_plotlyjs

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bugatlas.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
    )
    figs = []
    views = []
    for s in sections:
        tables = []
        for t in s.tables:
            cols, rows = _rows(t)
            tables.append({"name": t.name, "caption": t.caption, "columns": cols, "rows": rows[:200],
                           "more": max(0, len(rows) - 200)})  # fmt: skip
        fids = []
        for fid, fig in s.figures:
            if fig is None:
                continue
            figs.append({"id": fid, "json": _figure_json(fig)})
            fids.append(fid)
        views.append({"id": s.id, "title": s.title, "text": s.text, "tables": tables, "figures": fids,
                      "examples": s.examples})  # fmt: skip
    template = env.get_template("report.html.j2")
    return template.render(title=title, sections=views, figures=figs, meta=meta,
                           plotly_js=jinja2.utils.markupsafe.Markup(get_plotlyjs().replace("</script", "<\\/script")))  # fmt: skip


# -- entry point --------------------------------------------------------------------------------------
def build_sections(data: StudyData, *, by: str = "repository") -> list[Section]:
    sections: list[Section] = [_overview(data)]
    if data.labels.size:
        sections += _distribution_sections(data, by)
        for fn in (_crosstab_section, _lifecycle_section, _evolution_section):
            sec = fn(data)
            if sec is not None:
                sections.append(sec)
        sec = _commonality_section(data, by)
        if sec is not None:
            sections.append(sec)
    else:
        ev = _evolution_section(data)
        if ev is not None:
            sections.append(ev)
    m = _maintenance_section(data)
    if m is not None:
        sections.append(m)
    if sections and data.labels.size:
        _examples(data, sections[0])
    return sections


def build_report(
    store: Store,
    out: str | Path,
    *,
    taxonomy: str | None,
    source: str | list[str] | None = None,
    title: str | None = None,
    by: str = "repository",
    restrict: str | None = None,
    attach: dict[str, list[str]] | None = None,
    names: dict[str, str] | None = None,
    audit_papers: list[str] | None = None,
    audit_files: list[Path] | None = None,
    audit: bool = True,
) -> ReportResult:
    """Write index.html, report.md, tables/*.csv and tables/*.tex into ``out``."""
    from datetime import UTC, datetime

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BugAtlasError(f"--out {out}: cannot create the folder ({exc.strerror})") from exc
    for f in audit_files or []:  # a file the audit cannot read was silently left out
        from bugatlas.importers.liu2025 import sniff

        if not Path(f).is_file():
            raise BadInputError(f"--audit-file {f}: no such file")
        if not sniff(Path(f)):
            raise BadInputError(f"--audit-file {f}: not Liu et al.'s released dataset CSV "
                                "(the only file the audit reads raw counts from)")
    if taxonomy is None and store.count_issues(include_references=False) == 0:
        raise BadInputError(f"{store.path}: no issues with text and no --taxonomy: nothing to report")
    data = load_study(store, taxonomy, source=source, restrict=restrict, attach=attach, names=names)
    taxonomy = data.taxonomy  # a codebook given as a YAML path: the name its labels are stored under
    sections = build_sections(data, by=by)
    agreement = _agreement_section(store, taxonomy)
    if agreement is not None:
        sections.append(agreement)
    probe = _probe_section(store, data)
    if probe is not None:
        sections.append(probe)
    audit_summary = None
    if audit:
        sec, audit_summary = _audit_section(store, taxonomy, audit_papers, list(audit_files or []))
        if sec is not None:
            sections.append(sec)
    title = title or f"BugAtlas study: {taxonomy or 'issues'}"
    meta = {"generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "version": __version__,
            "db": str(store.path), "taxonomy": taxonomy, "sources": data.sources}  # fmt: skip
    tables_dir = out / "tables"
    csvs, texs = [], []
    html_path = out / "index.html"
    md_path = out / "report.md"
    # Everything is written beside the report and swapped in when complete: a failed or
    # interrupted build leaves the previous report whole, and a rebuild leaves no stale tables.
    part_dir, old_dir = out / ".tables.part", out / ".tables.old"
    html_part, md_part = out / ".index.part.html", out / ".report.part.md"
    try:
        try:
            shutil.rmtree(part_dir, ignore_errors=True)
            part_dir.mkdir()
            for s in sections:
                for t in s.tables:
                    t.frame.to_csv(part_dir / f"{t.name}.csv", index=t.index)
                    csvs.append(tables_dir / f"{t.name}.csv")
                    if t.main:
                        (part_dir / f"{t.name}.tex").write_text(_latex(t), encoding="utf-8")
                        texs.append(tables_dir / f"{t.name}.tex")
            html_part.write_text(render_html(title, sections, meta), encoding="utf-8")
            md_part.write_text(_markdown(title, sections, meta), encoding="utf-8")
            for final in (html_path, md_path):
                if final.is_dir():
                    raise IsADirectoryError(21, "Is a directory", str(final))
            shutil.rmtree(old_dir, ignore_errors=True)
            if tables_dir.exists():
                tables_dir.rename(old_dir)
            try:
                part_dir.rename(tables_dir)
            except OSError:
                if old_dir.exists():
                    old_dir.rename(tables_dir)
                raise
            html_part.replace(html_path)
            md_part.replace(md_path)
            shutil.rmtree(old_dir, ignore_errors=True)
        finally:
            for p in (html_part, md_part):
                p.unlink(missing_ok=True)
            shutil.rmtree(part_dir, ignore_errors=True)
    except OSError as exc:
        raise BugAtlasError(f"--out {out}: cannot write {exc.filename or out} ({exc.strerror})") from exc
    nfig = sum(1 for s in sections for _, f in s.figures if f is not None)
    result = ReportResult(out=out, html=html_path, markdown=md_path, tables=csvs, latex=texs, figures=nfig,
                          sections=[s.id for s in sections], audit=audit_summary)  # fmt: skip
    (out / "report.json").write_bytes(orjson.dumps(result.as_dict() | {"meta": meta}, option=orjson.OPT_INDENT_2))
    return result

