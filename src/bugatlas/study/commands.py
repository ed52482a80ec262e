"""`bugatlas run STUDY.yaml`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bugatlas.cli_common import JsonOption, console, err_console, print_json


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        study: Annotated[Path, typer.Argument(help="Study file (YAML): sources, filter, taxonomy, classify, analysis, audit, report.")],
        force: Annotated[bool, typer.Option("--force", help="Run every step again, even those done for the same inputs.")] = False,
        start: Annotated[str | None, typer.Option("--from", help="Run again from this step on (import, collect, hydrate, filter, map, classify, report).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Run the pipeline a study file describes and write its report (resumable: steps done for the same inputs are skipped)."""
        from bugatlas.study.runner import run_study

        say = None if as_json else (lambda msg: err_console.print(msg, markup=False, highlight=False))
        st, results = run_study(study, force=force, start=start, progress=say)
        if as_json:
            print_json({"study": st.name, "store": str(st.store_path), "report": str(st.report_dir),
                        "steps": [r.as_dict() for r in results]})  # fmt: skip
            return
        console.print(f"study {st.name}: report in {st.report_dir / 'index.html'} (store {st.store_path})", highlight=False)
