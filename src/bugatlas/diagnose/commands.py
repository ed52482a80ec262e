"""CLI of the diagnose stage: `bugatlas index build|status`, `bugatlas diagnose`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from bugatlas.cli_common import DbOption, JsonOption, console, err_console, open_store, print_json
from bugatlas.errors import BadInputError
from bugatlas.files import replaced_when_complete
from bugatlas.store.store import default_db_path

index_app = typer.Typer(help="Search index for `bugatlas diagnose` (lexical, signatures, semantic).",
                        no_args_is_help=True)


@index_app.command("build")
def index_build(
    db: DbOption = None,
    refit: Annotated[bool, typer.Option("--refit", help="Refit the semantic (LSA) model on the current store.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Index new and changed issues (incremental; resumes where an interrupted build stopped)."""
    from bugatlas.diagnose.index import SearchIndex

    store = open_store(db, create=False)
    with store.run("index build", {"refit": refit}) as run:
        stats = SearchIndex(store).build(refit=refit, progress=not json_out and sys.stderr.isatty())
        run.summary.update(stats.as_dict())
    if json_out:
        print_json(stats.as_dict())
        return
    console.print(
        f"indexed {stats.indexed} issues ({stats.unchanged} unchanged, {stats.removed} removed) "
        f"in {stats.seconds:.1f} s; {stats.with_log} with a log, {stats.recognized} with a parsed signature; "
        f"vectors {stats.vectorized}{' (model refitted)' if stats.refitted else ''}"
    )


@index_app.command("status")
def index_status(db: DbOption = None, json_out: JsonOption = False) -> None:
    """What the index holds and whether it is up to date with the store."""
    from bugatlas.diagnose.index import SearchIndex

    store = open_store(db, create=False)
    st = SearchIndex(store).status()
    if json_out:
        print_json(st)
        return
    table = Table(show_header=False)
    for key, value in st.items():
        table.add_row(key, escape(str(value)))
    console.print(table)
    if not st["up_to_date"]:
        console.print("[yellow]not up to date: run `bugatlas index build`[/]")


def diagnose_cmd(
    file: Annotated[str | None, typer.Argument(help="Log file, or - for stdin.", show_default=False)] = None,
    command: Annotated[str | None, typer.Option("--command", help="Run this command and diagnose its output.")] = None,
    taxonomy: Annotated[str, typer.Option("--taxonomy", help="Codebook: liu2025 | yu2026 | a YAML path.")] = "liu2025",
    k: Annotated[int, typer.Option("-k", "--top", help="How many similar issues.", min=0)] = 5,
    batch: Annotated[bool, typer.Option("--batch", help="Log-only predictions for a JSONL of issues.")] = False,
    input_path: Annotated[Path | None, typer.Option("--input", help="--batch: issues JSONL (repo, number, body; without body: looked up in --db).")] = None,
    output_path: Annotated[Path | None, typer.Option("--output", help="--batch: predictions JSONL.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="--command: seconds before it is stopped.")] = 600.0,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Diagnose an error log: parsed failure, likely symptom and root cause, similar known issues
    and how they were resolved, next steps. Fully offline."""
    from bugatlas.diagnose.diagnose import capture_command, diagnose

    if batch:
        if file is not None or command is not None:
            raise BadInputError("--batch reads --input, not a FILE or --command")
        _batch(input_path, output_path, taxonomy, db)
        return
    if input_path is not None or output_path is not None:
        raise BadInputError("--input and --output are for --batch; a single log goes to standard output")
    cmd_info = None
    if command is not None:
        if file is not None:
            raise BadInputError("give a FILE or --command, not both")
        text, cmd_info = capture_command(command, timeout)
    elif file is None or file == "-":
        if file is None and sys.stdin.isatty():
            raise BadInputError("give a log FILE, - for stdin, or --command")
        # bytes, decoded like a FILE: a log with invalid UTF-8 must not carry surrogates into --json
        stdin = getattr(sys.stdin, "buffer", None)
        text = stdin.read().decode("utf-8", errors="replace") if stdin is not None else sys.stdin.read()
    else:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise BadInputError(f"{file}: cannot read ({exc.strerror or exc})") from exc
    db_path = db or default_db_path()
    store = open_store(db_path) if Path(db_path).exists() else None
    try:
        result = diagnose(text, store, taxonomy=taxonomy, k=k)
    finally:
        if store is not None:
            store.close()
    result.command = cmd_info
    if cmd_info and cmd_info.get("timed_out"):
        result.notes.append(f"--command was stopped after --timeout {timeout:g} s; the output until then was diagnosed")
    if json_out:
        print_json(result.to_dict())
    else:
        render(result)


def _batch(input_path: Path | None, output_path: Path | None, taxonomy: str, db: Path | None) -> None:
    from bugatlas.diagnose.batch import predict_batch, read_jsonl

    if input_path is None or output_path is None:
        raise BadInputError("--batch needs --input issues.jsonl and --output labels.jsonl")
    if not output_path.parent.is_dir():
        raise BadInputError(f"--output {output_path}: directory {output_path.parent} does not exist")
    records = list(read_jsonl(input_path))  # reads it all first: a bad line fails before writing
    db_path = db or default_db_path()
    store = open_store(db_path) if Path(db_path).exists() else None
    n_labeled = 0
    try:
        with replaced_when_complete(output_path) as fh:
            for row in predict_batch(records, taxonomy, store):
                n_labeled += any(row["labels"].values())
                fh.write(orjson.dumps(row) + b"\n")
    finally:
        if store is not None:
            store.close()
    err_console.print(f"{output_path}: {len(records)} issues, {n_labeled} with a log-only prediction")


def render(d) -> None:
    p = d.parsed
    if p.recognized:
        lines = [f"[bold]{escape(p.title or '')}[/]  ({p.family})",
                 f"signature: [cyan]{escape(p.signature or '')}[/]",
                 f"exception: {escape(p.exception_type or '')}: {escape((p.message or '')[:300])}"]
        if p.line_no is not None:
            lines.append(f"at line {p.line_no + 1}: [dim]{escape((p.line or '')[:200])}[/]")
        if len(p.chain) > 1:
            lines.append("chain: " + " → ".join(escape(f"{e.type}") for e in p.chain))
    else:
        lines = ["[bold yellow]no known pattern[/]: no traceback, CUDA/NCCL error, assert, abort, segfault, OOM or import error found"]
    lines.append(f"engine: {p.engine or 'unknown'}   component: {p.component or 'unknown'}")
    if p.versions:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in p.versions.items()))
    console.print(Panel("\n".join(lines), title="parsed failure", expand=False))
    if p.frames:
        t = Table(title="frames that matter", show_lines=False)
        for col in ("file", "line", "function", "code"):
            t.add_column(col)
        for f in p.frames:
            t.add_row(escape(f.file[-70:]), str(f.line or ""), escape(f.func),
                      escape((f.code or "")[:60]), style="bold" if f.project else "dim")
        console.print(t)
    t = Table(title=f"likely cause ({d.taxonomy})")
    for col in ("dimension", "prediction", "confidence", "decided by"):
        t.add_column(col)
    for dim, pred in d.predictions.items():
        if pred.category:
            shown: dict[int | None, str] = {}
            for e in pred.evidence:  # one row per log line, whatever number of signals it matched
                shown.setdefault(e.line_no, e.text)
            ev = "\n".join(escape(f"L{ln}: {txt[:70]}") for ln, txt in list(shown.items())[:3])
            t.add_row(dim, escape(" › ".join(pred.path)), f"{pred.confidence:.2f}", ev)
        else:
            t.add_row(dim, "[yellow]no known pattern[/]", "-", "nothing in the log matches this dimension's signals")
    console.print(t)
    if d.similar:
        t = Table(title="most similar known issues")
        for col in ("issue", "state", "resolution", "match", "title"):
            t.add_column(col)
        for s in d.similar:
            how = s.resolution.get("summary", "")
            if s.resolution.get("fixed_version"):
                how += f", fixed in {s.resolution['fixed_version']}"
            match = ("same signature, " if s.same_signature else "") + "+".join(s.matched_by)
            ref = escape(f"{s.repo}#{s.number}")
            t.add_row(f"[link={s.url}]{ref}[/link]" if s.url else ref, s.state or "", escape(how),
                      match, escape((s.title or "")[:70]))
        console.print(t)
    if d.next_steps:
        console.print(Panel("\n".join(f"{i}. {escape(s)}" for i, s in enumerate(d.next_steps, 1)),
                            title="next steps", expand=False))
    for note in d.notes:
        err_console.print(f"[dim]note: {escape(note)}[/]")
    console.print(f"[bold]{escape(d.verdict)}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("diagnose")(diagnose_cmd)
