"""`bugatlas probe` and `bugatlas probe-findings`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bugatlas.cli_common import DbOption, JsonOption, console, err_console, open_store, print_json
from bugatlas.errors import BadInputError, BugAtlasError


def register(app: typer.Typer) -> None:
    @app.command("probe")
    def probe_cmd(
        base_url: Annotated[str, typer.Option("--base-url", help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1")],
        model: Annotated[str | None, typer.Option("--model", help="Model name (default: the first of GET /models).")] = None,
        suite: Annotated[str, typer.Option("--suite", help="Built-in suite (default, quick) or a suite YAML file.")] = "default",
        timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds allowed for every request (and every stream).")] = 60.0,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override a check parameter: CHECK.PARAM=VALUE (repeatable).")] = None,
        only: Annotated[list[str] | None, typer.Option("--only", help="Run only this check id (repeatable).")] = None,
        junit: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML here (for CI).")] = None,
        store_: Annotated[bool, typer.Option("--store", help="Save failures as findings in the study store (implied by --db or BUGATLAS_DB).")] = False,
        db: DbOption = None,
        as_json: JsonOption = False,
        list_checks: Annotated[bool, typer.Option("--list", help="List the suite's checks and exit.")] = False,
    ) -> None:
        """Probe a running inference server with oracles beyond crashes; exit 1 on failures.

        Each failure is classified as a liu2025 symptom; checks the server cannot support are
        skipped with the reason."""
        from bugatlas.probe.output import render_table, report_json, write_junit
        from bugatlas.probe.runner import parse_overrides, run_probe
        from bugatlas.probe.suite import load_suite

        if junit is not None and not junit.parent.is_dir():  # checked before a run of minutes, not after
            raise BadInputError(f"--junit {junit}: directory {junit.parent} does not exist")
        if junit is not None and junit.is_dir():
            raise BadInputError(f"--junit {junit}: is a directory; give a file such as {junit / 'probe.xml'}")
        s = load_suite(suite)
        overrides = parse_overrides(set_ or [])
        for cid, params in overrides.items():
            s.check(cid).params.update(params)
        if list_checks:
            if as_json:
                print_json({"suite": s.name, "source": s.source, "checks": [
                    {"id": c.id, "oracle": c.oracle, "symptom": c.symptom, "unexpected_output": c.unexpected_output,
                     "title": c.title, "params": s.params_for(c)} for c in s.checks]})  # fmt: skip
                return
            table = Table(title=f"suite {s.name} ({s.source})", title_justify="left")
            for col in ("check", "oracle", "symptom", "title"):
                table.add_column(col)
            for c in s.checks:
                table.add_row(c.id, c.oracle, c.symptom + (f" / {c.unexpected_output}" if c.unexpected_output else ""), c.title)
            console.print(table)
            return
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=err_console, transient=True, disable=as_json) as progress:  # fmt: skip
            task = progress.add_task("connecting", total=len(s.checks))
            report = run_probe(base_url, suite=s, model=model, timeout=timeout, only=only,
                               on_start=lambda cid: progress.update(task, description=f"check {cid}"),
                               on_result=lambda r: progress.advance(task))  # fmt: skip
        junit_error = None
        if junit:
            try:
                write_junit(report, junit)
            except OSError as exc:  # the run's results are still stored and shown below
                junit_error = BugAtlasError(f"--junit {junit}: cannot write ({exc.strerror or exc})")
        if store_ or db is not None:
            from bugatlas.probe.storage import save_probe_report

            with open_store(db) as st, st.run("probe", {"base_url": base_url, "model": report.model,
                                                        "suite": s.source}) as run:  # fmt: skip
                pid = save_probe_report(st, report, run_id=run.id)
                run.summary.update(probe_run_id=pid, **report.counts())
            if not as_json:
                console.print(f"stored as probe run {pid} in {st.path} ({len(report.failures())} findings)")
        if as_json:
            print_json(report_json(report))
        else:
            render_table(report, console)
        if junit_error is not None:
            raise junit_error
        if not report.ok:
            raise typer.Exit(1)

    @app.command("probe-findings")
    def findings_cmd(db: DbOption = None, as_json: JsonOption = False,
                     latest: Annotated[bool, typer.Option("--latest", help="Only the newest run per server and model.")] = False) -> None:  # fmt: skip
        """List the failures stored by `bugatlas probe --store`, with their liu2025 symptoms."""
        from bugatlas.probe.storage import probe_findings_frame

        with open_store(db, create=False) as st:
            df = probe_findings_frame(st, latest_only=latest)
        if as_json:
            print_json(df.to_dict(orient="records"))
            return
        table = Table(title=f"{len(df)} probe findings", title_justify="left")
        for col in ("run", "server", "model", "check", "symptom", "message"):
            table.add_column(col)
        for row in df.itertuples():
            sym = row.symptom + (f" / {row.unexpected_output}" if row.unexpected_output else "")
            table.add_row(str(row.probe_run_id), row.base_url, str(row.model), row.check_id, sym, row.message)
        console.print(table)
