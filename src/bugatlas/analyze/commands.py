"""`bugatlas analyze WHAT`: each analysis of the library as a command printing a table
(``--json`` for machines, ``--csv FILE`` or ``--csv -`` for spreadsheets)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from bugatlas.analyze import analyses as A
from bugatlas.analyze.data import load_study
from bugatlas.cli_common import DbOption, JsonOption, console, err_console, open_store, print_json
from bugatlas.errors import BadInputError

TaxOpt = Annotated[str, typer.Option("--taxonomy", "-t", help="Taxonomy whose labels to analyse (e.g. liu2025, yu2026-artifact).")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="Label source or kind (human, rule, model, llm, dataset:liu2025, all). Default: the single source, else the largest human one.")]
DimOpt = Annotated[str | None, typer.Option("--dimension", "-d", help="Dimension (symptom, root_cause, component, phase, stage, …).")]
LevelOpt = Annotated[str | None, typer.Option("--level", "-l", help="Level of a hierarchical dimension: 0 = top, -1 = leaf, or its name.")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Group by repository (engine / model series), repo, owner, or a dimension (model, stage, …).")]
CsvOpt = Annotated[str | None, typer.Option("--csv", help="Write the table as CSV to FILE ('-' for stdout).")]
RestrictOpt = Annotated[str | None, typer.Option("--only", help="Keep only issues returned by this SQL (repo, number), e.g. 'SELECT repo, number FROM failure_reports'.")]


def _level(level: str | None) -> int | str | None:
    if level is None:
        return None
    return int(level) if level.lstrip("-").isdigit() else level


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def records(frame: pd.DataFrame, index: bool = False) -> list[dict[str, Any]]:
    f = frame.reset_index() if index else frame
    return [{str(k): _clean(v) for k, v in row.items()} for row in f.to_dict(orient="records")]


def _fmt(v: Any) -> str:
    v = _clean(v)
    if v is None:
        return ""
    if isinstance(v, float):
        if v != 0 and abs(v) < 0.001:
            return f"{v:.2e}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def write_csv(frame: pd.DataFrame, csv: str, *, index: bool = False) -> None:
    """``--csv FILE`` (or ``-`` for standard output)."""
    text = frame.to_csv(index=index)
    if csv == "-":
        sys.stdout.write(text)
        return
    try:
        Path(csv).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"--csv {csv}: cannot write the file ({exc.strerror})") from exc
    err_console.print(f"wrote {csv}")


def emit(frame: pd.DataFrame, *, as_json: bool, csv: str | None, title: str, index: bool = False,
         extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    if csv:
        write_csv(frame, csv, index=index)
        if csv == "-":
            return
    if as_json:
        print_json({"title": title, "rows": records(frame, index), **(extra or {})})
        return
    f = frame.reset_index() if index else frame
    table = Table(title=title, title_justify="left")
    for col in f.columns:
        table.add_column(str(col), overflow="fold")
    for row in f.itertuples(index=False):
        table.add_row(*[_fmt(v) for v in row])
    console.print(table)
    for k, v in (extra or {}).items():
        console.print(f"{k}: {_fmt(v)}")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Analyse a labelled study: distributions, cross-tabs, tests, trends, maintenance, audit.",
                      no_args_is_help=True)  # fmt: skip
    app.add_typer(sub, name="analyze")

    def study(db, taxonomy, source, only=None):
        store = open_store(db, create=False)
        return store, load_study(store, taxonomy, source=source, restrict=only)

    @sub.command("overview")
    def overview_cmd(taxonomy: TaxOpt, source: SourceOpt = None, only: RestrictOpt = None,
                     db: DbOption = None, as_json: JsonOption = False) -> None:  # fmt: skip
        """Records, issues, groups and labelled dimensions of a study."""
        store, data = study(db, taxonomy, source, only)
        info = A.overview(data)
        if as_json:
            print_json(info)
            return
        for k, v in info.items():
            console.print(f"[bold]{k}[/bold]: {v}", highlight=False)

    @sub.command("distribution")
    def distribution_cmd(taxonomy: TaxOpt, dimension: DimOpt = "symptom", level: LevelOpt = None,
                         by: ByOpt = None, all_levels: Annotated[bool, typer.Option("--all-levels", help="Every level of the hierarchy.")] = False,
                         source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                         as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Counts, shares and Wilson 95% intervals of a dimension's categories (overall or --by group)."""
        _, data = study(db, taxonomy, source, only)
        frame = (A.distribution_levels(data, dimension, by=by) if all_levels
                 else A.distribution(data, dimension, _level(level), by=by))  # fmt: skip
        emit(frame, as_json=as_json, csv=csv, title=f"{taxonomy}: {dimension}")

    @sub.command("crosstab")
    def crosstab_cmd(taxonomy: TaxOpt,
                     rows: Annotated[str, typer.Option("--rows", help="Row dimension.")] = "symptom",
                     cols: Annotated[str, typer.Option("--cols", help="Column dimension.")] = "root_cause",
                     row_level: Annotated[str | None, typer.Option("--row-level")] = "0",
                     col_level: Annotated[str | None, typer.Option("--col-level")] = "0",
                     count: Annotated[str, typer.Option("--count", help="units (records having both) or instances (label pairs).")] = "units",
                     source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                     as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Cross-tabulation of two dimensions (e.g. symptom × root-cause group) with totals."""
        _, data = study(db, taxonomy, source, only)
        for opt, name in (("--rows", rows), ("--cols", cols)):
            if not data.has(name) and name not in A.GROUPINGS:  # else the error named --by
                raise BadInputError(f"{opt} {name!r}: use repository, repo, owner or a dimension "
                                    f"({', '.join(data.dimensions)})")
        t = A.with_totals(A.crosstab(data, rows, cols, row_level=_level(row_level), col_level=_level(col_level), count=count))
        emit(t, as_json=as_json, csv=csv, title=f"{taxonomy}: {rows} × {cols} ({count})", index=True)

    @sub.command("diagnostics")
    def diagnostics_cmd(taxonomy: TaxOpt,
                        symptom: Annotated[str | None, typer.Option("--symptom-dimension")] = None,
                        cause: Annotated[str | None, typer.Option("--cause-dimension")] = None,
                        symptom_level: Annotated[str | None, typer.Option("--symptom-level")] = "0",
                        cause_level: Annotated[str | None, typer.Option("--cause-level")] = "0",
                        top: Annotated[int, typer.Option("--top")] = 3,
                        source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                        as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Given a symptom, the most likely root causes: P(cause | symptom) with Wilson 95% and lift."""
        _, data = study(db, taxonomy, source, only)
        f = A.diagnostics(data, symptom, cause, symptom_level=_level(symptom_level),
                          cause_level=_level(cause_level), top=top)  # fmt: skip
        emit(f, as_json=as_json, csv=csv, title=f"{taxonomy}: given a symptom, the likely causes")

    @sub.command("commonality")
    def commonality_cmd(taxonomy: TaxOpt, dimension: DimOpt = "symptom", level: LevelOpt = "0",
                        by: Annotated[str, typer.Option("--by")] = "repository",
                        source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                        as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Chi-square test across groups, Cramér's V, and the cells that deviate (adjusted residuals)."""
        _, data = study(db, taxonomy, source, only)
        table, test = A.commonality(data, dimension, _level(level), by=by)
        if test is None:
            raise BadInputError(f"--by {by}: fewer than two groups or categories to compare")
        extra = {"chi2": test.chi2, "dof": test.dof, "p_value": test.p_value, "cramers_v": test.cramers_v,
                 "cells_expected_below_5": test.low_expected_share}  # fmt: skip
        if as_json and csv != "-":  # --csv - wins over --json, as for every other analysis
            if csv:
                write_csv(test.residuals.round(2), csv, index=True)
            print_json({**test.as_dict(), "deviations": records(A.residual_findings(test))})
            return
        emit(test.residuals.round(2), as_json=False, csv=csv, title=f"{taxonomy}: adjusted residuals, {by} × {dimension}", index=True, extra=extra)

    @sub.command("lifecycle")
    def lifecycle_cmd(taxonomy: TaxOpt, dimension: DimOpt = "symptom", level: LevelOpt = "0",
                      stage: Annotated[str | None, typer.Option("--stage-dimension", help="Default: stage or phase.")] = None,
                      source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                      as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """A dimension by lifecycle stage / phase: counts, row shares, chi-square."""
        _, data = study(db, taxonomy, source, only)
        table, test = A.lifecycle(data, dimension, _level(level), stage=stage)
        extra = {"chi2": test.chi2, "p_value": test.p_value, "cramers_v": test.cramers_v} if test else {}
        emit(A.with_totals(table), as_json=as_json, csv=csv, title=f"{taxonomy}: {dimension} by stage", index=True, extra=extra)

    @sub.command("versions")
    def versions_cmd(taxonomy: TaxOpt, dimension: DimOpt = "symptom", level: LevelOpt = "0",
                     version: Annotated[str | None, typer.Option("--version-dimension", help="Default: model.")] = None,
                     source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                     as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Evolution by model version / release: category shares per version within each series."""
        _, data = study(db, taxonomy, source, only)
        emit(A.by_version(data, dimension, _level(level), version=version), as_json=as_json, csv=csv,
             title=f"{taxonomy}: {dimension} by version")  # fmt: skip

    @sub.command("monthly")
    def monthly_cmd(taxonomy: Annotated[str | None, typer.Option("--taxonomy", "-t", help="Omit for all issues with text.")] = None,
                    dimension: DimOpt = None, level: LevelOpt = "0",
                    trends: Annotated[bool, typer.Option("--trends", help="Print the trend tests instead of the counts.")] = False,
                    source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                    as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Monthly counts (per category) and Mann-Kendall / linear trends of counts and shares."""
        _, data = study(db, taxonomy, source, only)
        counts, tr = A.monthly(data, dimension, _level(level))
        if trends:
            emit(tr, as_json=as_json, csv=csv, title="trends (Mann-Kendall tau, OLS slope per month)")
        else:
            emit(counts, as_json=as_json, csv=csv, title="issues per month", index=True)

    @sub.command("maintenance")
    def maintenance_cmd(taxonomy: Annotated[str | None, typer.Option("--taxonomy", "-t", help="Omit for all issues with text (per repository).")] = None,
                        dimension: DimOpt = None, level: LevelOpt = "0",
                        as_of: Annotated[str | None, typer.Option("--as-of", help="Censoring date for open issues (default: latest date in the data).")] = None,
                        source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                        as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Time to close (median, quartiles, Kaplan-Meier median), comments, fix effort per category."""
        _, data = study(db, taxonomy, source, only)
        emit(A.maintenance(data, dimension, _level(level), as_of=as_of), as_json=as_json, csv=csv,
             title="maintenance (days to close, comments, fix effort)")  # fmt: skip

    @sub.command("labels")
    def labels_cmd(taxonomy: Annotated[str | None, typer.Option("--taxonomy", "-t")] = None,
                   by: ByOpt = "repository", top: Annotated[int, typer.Option("--top")] = 15,
                   source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                   as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Maintainers' label usage per group (and the share of issues with no label)."""
        _, data = study(db, taxonomy, source, only)
        emit(A.label_usage(data, by=by, top=top), as_json=as_json, csv=csv, title="maintainers' labels")

    @sub.command("authors")
    def authors_cmd(taxonomy: Annotated[str | None, typer.Option("--taxonomy", "-t")] = None,
                    dimension: DimOpt = None, level: LevelOpt = "0",
                    source: SourceOpt = None, only: RestrictOpt = None, db: DbOption = None,
                    as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Author association (NONE, CONTRIBUTOR, MEMBER, …) per category or repository."""
        _, data = study(db, taxonomy, source, only)
        emit(A.author_association(data, dimension, _level(level)), as_json=as_json, csv=csv,
             title="author association", index=True)  # fmt: skip

    @sub.command("audit")
    def audit_cmd(paper: Annotated[list[str] | None, typer.Option("--paper", help="liu2025, yu2026 (default: both).")] = None,
                  file: Annotated[list[Path] | None, typer.Option("--file", help="A released dataset file, for counts the store cannot hold (raw CSV pairs).")] = None,
                  only_differences: Annotated[bool, typer.Option("--differences", help="Only the numbers that differ.")] = False,
                  db: DbOption = None, as_json: JsonOption = False, csv: CsvOpt = None) -> None:  # fmt: skip
        """Compare the numbers the papers print with what their released datasets give."""
        from bugatlas.analyze.audit import audit
        from bugatlas.importers.liu2025 import sniff

        for f in file or []:  # a mistyped or other file was ignored: the audit fell back to the store's counts
            if not f.is_file():
                raise BadInputError(f"--file {f}: no such file")
            if not sniff(f):
                raise BadInputError(f"--file {f}: not Liu et al.'s released dataset CSV "
                                    "(the only file the audit reads raw counts from)")
        store = open_store(db, create=False)
        frame = audit(store, papers=paper or None, files=file or [])
        if only_differences:
            frame = frame[frame["status"] == "differs"]
        emit(frame, as_json=as_json, csv=csv, title="published numbers vs released datasets")
