"""`bugatlas stats` and `bugatlas export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bugatlas.cli_common import DbOption, JsonOption, console, open_store, print_json
from bugatlas.store.export import EXPORT_FORMATS, export_store
from bugatlas.store.stats import store_stats


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats_cmd(db: DbOption = None, as_json: JsonOption = False,
                  top_labels: Annotated[int, typer.Option(help="Maintainers' labels to list.")] = 15) -> None:  # fmt: skip
        """Counts by repository, state, year, maintainers' label and label source."""
        with open_store(db, create=False) as store:
            stats = store_stats(store, top_labels=top_labels)
        if as_json:
            print_json(stats)
            return
        prs = stats["pull_requests_among_issues"]
        console.print(f"[bold]{stats['issues']}[/] issues with text, {stats['references']} references only, "
                      + (f"{prs} pull requests (from /issues dumps, not counted as issues), " if prs else "")
                      + f"{stats['labels']} labels, store {stats['db_path']}")  # fmt: skip
        for key, title in (("by_repository", "issues by repository"),
                           ("references_by_repository", "references (no text yet) by repository"),
                           ("by_state", "issues by state"), ("by_year", "issues by year"),
                           ("by_maintainer_label", "issues by maintainers' label")):  # fmt: skip
            if not stats[key]:
                continue
            table = Table(title=title, title_justify="left")
            table.add_column(title.split(" by ")[-1])
            table.add_column("count", justify="right")
            for name, n in stats[key].items():
                table.add_row(str(name), str(n))
            console.print(table)
        table = Table(title="labels by taxonomy and source", title_justify="left")
        for col in ("taxonomy", "source_kind", "source", "issues", "records", "labels"):
            table.add_column(col, justify="right" if col in {"issues", "records", "labels"} else "left")
        for row in stats["label_sources"]:
            table.add_row(*(str(row[c]) for c in ("taxonomy", "source_kind", "source", "issues", "records", "labels")))
        console.print(table)

    @app.command("export")
    def export_cmd(
        out: Annotated[Path, typer.Argument(help="Output folder.")],
        fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(EXPORT_FORMATS)}.")] = "jsonl",
        taxonomy: Annotated[str | None, typer.Option(help="Only labels of this taxonomy.")] = None,
        db: DbOption = None,
    ) -> None:
        """Write issues.<fmt> and labels.<fmt> for use elsewhere."""
        with open_store(db, create=False) as store:
            written = export_store(store, out, fmt=fmt, taxonomy=taxonomy)
        for path, n in written.items():
            console.print(f"{path}: {n} rows")
