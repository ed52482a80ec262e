"""`bugatlas import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bugatlas.cli_common import DbOption, JsonOption, console, err_console, open_store, print_json
from bugatlas.importers.base import FORMATS, import_paths


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_cmd(
        paths: Annotated[list[Path], typer.Argument(help="Files or folders to import.")],
        fmt: Annotated[
            str | None,
            typer.Option("--format", help=f"Force a format: {', '.join(FORMATS)}. Default: detect."),
        ] = None,
        skip_bad: Annotated[
            bool, typer.Option("--skip-bad", help="Import the good records; list the bad ones at the end.")
        ] = False,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Import GitHub issue dumps, the Liu et al. 2025 CSV or Open-LLM-Failures JSON."""
        with open_store(db) as store:
            results = import_paths(store, paths, fmt=fmt, skip_bad=skip_bad, progress=not as_json)
        if as_json:
            print_json([r.as_dict() for r in results])
            return
        for r in results:
            skipped = f", {len(r.bad)} skipped" if r.bad else ""
            console.print(f"{r.path}: {r.format}: {r.records} records, {r.issues} issues, {r.labels} labels{skipped}",
                          highlight=False)
        bad = [b for r in results for b in r.bad]
        for b in bad:
            err_console.print(f"skipped: {b}", markup=False, highlight=False)
        if bad:
            err_console.print(f"{len(bad)} bad record(s) skipped")
