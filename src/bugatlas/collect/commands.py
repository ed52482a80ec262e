"""`bugatlas collect`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bugatlas.cli_common import DbOption, JsonOption, console, open_store, print_json
from bugatlas.errors import BadInputError


def register(app: typer.Typer) -> None:
    @app.command("collect")
    def collect_cmd(
        repos: Annotated[list[str] | None, typer.Argument(
            help="Repositories as OWNER/NAME (e.g. vllm-project/vllm).", show_default=False)] = None,
        since: Annotated[str | None, typer.Option(
            "--since", help="Only issues updated at or after this date (YYYY-MM-DD or ISO time).")] = None,
        until: Annotated[str | None, typer.Option(
            "--until", help="Only issues updated at or before this date.")] = None,
        state: Annotated[str, typer.Option("--state", help="all | open | closed")] = "all",
        labels: Annotated[str | None, typer.Option(
            "--labels", help="Comma-separated label names: issues with any of them.")] = None,
        limit: Annotated[int | None, typer.Option(
            "--limit", help="At most N issues per repository this run (the next run continues).")] = None,
        base_url: Annotated[str, typer.Option(
            "--base-url", envvar="GITHUB_API_URL",
            help="API root: https://api.github.com, https://HOST/api/v3, or a local stand-in.")] = "https://api.github.com",
        archive: Annotated[bool, typer.Option(
            "--archive", help="Keep every raw answer in the store (for --replay).")] = False,
        replay: Annotated[Path | None, typer.Option(
            "--replay", help="Rebuild the data offline from the archive in this store file or "
                             "exported .jsonl[.gz] (the --db file itself rebuilds in place).")] = None,
        export_archive_to: Annotated[Path | None, typer.Option(
            "--export-archive", help="Write the store's archive to this .jsonl[.gz] file (to ship "
                                     "with a study for --replay).")] = None,
        hydrate: Annotated[bool, typer.Option(
            "--hydrate", help="Fetch the text of issues imported as references (Liu et al., "
                              "Open-LLM-Failures); REPOS narrows which.")] = False,
        status: Annotated[bool, typer.Option(
            "--status", help="Show each crawl's watermark, interrupted crawls and archive size.")] = False,
        page_size: Annotated[int, typer.Option("--page-size", help="Issues per GraphQL page (1-100).")] = 100,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds before a request is retried.")] = 60.0,
        max_retries: Annotated[int, typer.Option(
            "--max-retries", help="Retries of a request after 5xx, timeouts or secondary limits.")] = 6,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Collect issues, comments, labels and fixing pull requests from GitHub (GraphQL, 100
        issues a request). Incremental and resumable; tokens from GITHUB_TOKEN or GITHUB_TOKENS."""
        from bugatlas.collect import (
            collect_repos,
            export_archive,
            hydrate_references,
            replay_archive,
        )

        modes = sum([replay is not None, hydrate, export_archive_to is not None, status])
        if modes > 1:
            raise BadInputError("--replay, --hydrate, --export-archive and --status: choose one")
        if status:
            from bugatlas.collect import collect_status

            with open_store(db, create=False) as store:
                rows = collect_status(store)
            if as_json:
                print_json(rows)
                return
            if not rows:
                console.print("no crawls yet (bugatlas collect OWNER/REPO)")
            for r in rows:
                filters = ", ".join(f"{k}={v}" for k, v in r["filters"].items()) or "no filters"
                state = "interrupted: the next run resumes" if r["interrupted"] else "complete"
                console.print(f"{r['repo']} ({filters}): {r['issues_stored']} issues stored, up to date "
                              f"to {r['watermark'] or '-'}, {state}; {r['archived']} archived answers")  # fmt: skip
            return
        client_options = {"timeout": timeout, "max_retries": max_retries}
        if export_archive_to is not None:
            with open_store(db, create=False) as store:
                n = export_archive(store, export_archive_to, repos=repos or None)
            if as_json:
                print_json({"path": str(export_archive_to), "answers": n})
            else:
                console.print(f"wrote {n} archived answers to {export_archive_to}")
            return
        with open_store(db) as store:
            if replay is not None:
                result = replay_archive(store, replay, repos=repos or None)
                if as_json:
                    print_json(result.as_dict())
                else:
                    console.print(f"replayed {result.responses} archived answers: {result.issues} issues, "
                                  f"{result.comments} comments, {result.pull_requests} pull requests "
                                  f"into {store.path}")  # fmt: skip
                return
            if hydrate:
                result = hydrate_references(store, repos or None, base_url=base_url, archive=archive,
                                            progress=not as_json, client_options=client_options)  # fmt: skip
            else:
                if not repos:
                    raise BadInputError("no repositories given (e.g. bugatlas collect vllm-project/vllm)")
                result = collect_repos(
                    store, repos, since=since, until=until, state=state,
                    labels=labels.split(",") if labels else None, limit=limit, base_url=base_url,
                    archive=archive, page_size=page_size, progress=not as_json,
                    client_options=client_options)  # fmt: skip
        if as_json:
            print_json(result.as_dict())
            return
        for r in result.repos:
            if hydrate:
                if r.error:
                    console.print(f"{r.repo}: skipped, {r.error} ({r.total} references stay)")
                    continue
                console.print(f"{r.repo}: {r.issues} of {r.total} references hydrated"
                              f"{f', {r.missing} not found' if r.missing else ''}, {r.comments} comments, "
                              f"{r.requests} requests")  # fmt: skip
            else:
                more = "" if r.complete else " (stopped by --limit; run again to continue)"
                console.print(f"{r.repo}: {r.issues} issues, {r.comments} comments, "
                              f"{r.pull_requests} pull requests, {r.requests} requests, "
                              f"up to date to {r.watermark or '-'}{more}")  # fmt: skip
        s = result.stats
        console.print(f"{s.get('requests', 0)} requests, {s.get('points', 0)} points, "
                      f"{s.get('retries', 0)} retries, waited {s.get('waited_seconds', 0)} s, "
                      f"rate limit remaining {s.get('rate_remaining')}")  # fmt: skip
