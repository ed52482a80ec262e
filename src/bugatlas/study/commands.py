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
        summary = st.report_dir / "report.json"
        if summary.exists():  # the headline numbers, so the terminal tells what the report says
            import orjson

            info = orjson.loads(summary.read_bytes())
            groups = st.report_dir / "tables" / "overview_groups.csv"
            if groups.exists():
                rows = [line.split(",") for line in groups.read_text(encoding="utf-8").splitlines()[1:]]
                console.print("records: " + ", ".join(f"{r[0]} {r[1]}" for r in rows), highlight=False, markup=False)
            for paper, counts in (info.get("audit") or {}).items():
                console.print(f"audit {paper}: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                              + " (tables/audit_differences.csv)", highlight=False, markup=False)  # fmt: skip
