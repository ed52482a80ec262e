"""`bugatlas report --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bugatlas.cli_common import DbOption, JsonOption, console, open_store, print_json


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html, report.md, tables/*.csv|tex.")],
        taxonomy: Annotated[str | None, typer.Option("--taxonomy", "-t", help="Taxonomy to report (omit: the raw issues only).")] = None,
        source: Annotated[str | None, typer.Option("--source", help="Label source or kind (default: the single / largest human source).")] = None,
        title: Annotated[str | None, typer.Option("--title")] = None,
        by: Annotated[str, typer.Option("--by", help="Group for per-group tables and commonality tests.")] = "repository",
        only: Annotated[str | None, typer.Option("--only", help="SQL returning (repo, number) of the issues to keep.")] = None,
        audit_paper: Annotated[list[str] | None, typer.Option("--audit", help="Papers to audit (default: those whose dataset is this taxonomy).")] = None,
        audit_file: Annotated[list[Path] | None, typer.Option("--audit-file", help="Released dataset file for raw counts (Liu CSV).")] = None,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Write the study report: self-contained HTML (opens from disk), Markdown, CSV and LaTeX tables."""
        from bugatlas.report.build import build_report

        with open_store(db, create=False) as store:
            result = build_report(store, out, taxonomy=taxonomy, source=source, title=title, by=by,
                                  restrict=only, audit_papers=audit_paper or None, audit_files=audit_file or [])  # fmt: skip
        if as_json:
            print_json(result.as_dict())
            return
        console.print(f"wrote {result.html} ({result.figures} figures), {result.markdown}, "
                      f"{len(result.tables)} CSV and {len(result.latex)} LaTeX tables in {result.out / 'tables'}")  # fmt: skip
