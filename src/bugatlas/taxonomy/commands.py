"""`bugatlas taxonomy list|show|validate|map`: thin shell over :mod:`bugatlas.taxonomy`."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.tree import Tree

from bugatlas.cli_common import DbOption, JsonOption, console, err_console, open_store, print_json
from bugatlas.errors import BadInputError
from bugatlas.files import replaced_when_complete
from bugatlas.taxonomy import codebook_files, load_codebook, validate_codebook

taxonomy_app = typer.Typer(help="Codebooks (taxonomies as data): list, show, validate, map labels.",
                           no_args_is_help=True)  # fmt: skip


@taxonomy_app.command("list")
def list_cmd(json: JsonOption = False) -> None:
    """List the codebooks usable by name (built-in and BUGATLAS_CODEBOOKS folders)."""
    rows = []
    for name, path in sorted(codebook_files().items()):
        cb = load_codebook(path)
        rows.append({"name": name, "title": cb.title, "builtin": cb.builtin, "path": str(path),
                     "dimensions": {d.name: len(d.leaves()) for d in cb.dimensions.values()}})  # fmt: skip
    if json:
        print_json(rows)
        return
    t = Table("name", "title", "dimensions (leaves)", "origin")
    for r in rows:
        dims = ", ".join(f"{k} ({v})" for k, v in r["dimensions"].items())
        t.add_row(r["name"], r["title"], dims, "built-in" if r["builtin"] else r["path"])
    console.print(t)


@taxonomy_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="Codebook name or YAML path.")],
    dimension: Annotated[str | None, typer.Option("--dimension", "-d", help="Only this dimension.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Include include/exclude notes, signals and next steps.")] = False,
    json: JsonOption = False,
) -> None:
    """Print a codebook: every category with its definition (tree per dimension)."""
    cb = load_codebook(name)
    dims = list(cb.dimensions.values())
    if dimension:
        if dimension not in cb.dimensions:
            raise BadInputError(f"--dimension: codebook {cb.name!r} has no dimension {dimension!r} "
                                f"(has: {', '.join(cb.dimensions)})")  # fmt: skip
        dims = [cb.dimensions[dimension]]
    if json:
        data = cb.to_dict()
        data["dimensions"] = {k: v for k, v in data["dimensions"].items() if k in {d.name for d in dims}}
        print_json(data)
        return
    console.print(f"[bold]{cb.name}[/bold] - {cb.title}")
    if cb.citation:
        console.print(f"[dim]{cb.citation}[/dim]")
    for d in dims:
        label = (f"[bold cyan]{d.name}[/bold cyan] ({'multi-label' if d.multi_label else 'single-label'}; "
                 f"{len(d.categories)} categories, {len(d.leaves())} leaves; levels: {', '.join(d.levels)})")  # fmt: skip
        tree = Tree(label)
        nodes = {None: tree}
        for c in d.categories.values():
            counts = [f"{k.split('_')[0]} {v}" for k, v in
                      (("published_count", c.published_count), ("dataset_count", c.dataset_count)) if v is not None]  # fmt: skip
            mark = " [yellow](unverified)[/yellow]" if not c.verified else ""
            head = f"[bold]{c.name}[/bold] [dim]{c.id}{' · ' + ', '.join(counts) if counts else ''}[/dim]{mark}"
            node = nodes[c.parent].add(head + (f"\n{c.definition}" if c.definition else ""))
            if full:
                for key, items in (("include", c.include), ("exclude", c.exclude),
                                   ("signals", c.signals), ("next steps", c.next_steps)):  # fmt: skip
                    if items:
                        sub = node.add(f"[dim]{key}[/dim]")
                        for it in items:
                            sub.add(it, highlight=False)
            nodes[c.id] = node
        console.print(tree)


@taxonomy_app.command("validate")
def validate_cmd(
    files: Annotated[list[str] | None, typer.Argument(help="Codebook names or YAML paths (default: all known).")] = None,
    json: JsonOption = False,
) -> None:
    """Check codebooks: unique ids, every parent exists, names unique per dimension, valid regexes."""
    targets = files or [str(p) for p in codebook_files().values()]
    report = {t: validate_codebook(t) for t in targets}
    if json:
        print_json({t: {"ok": not p, "problems": p} for t, p in report.items()})
    else:
        for t, problems in report.items():
            if problems:
                for p in problems:  # one line each, also when piped (no wrapping at 80 columns)
                    err_console.print(p, highlight=False, markup=False, soft_wrap=True)
            else:
                console.print(f"ok  {t}", highlight=False, soft_wrap=True)
    if any(report.values()):
        raise typer.Exit(2)


def _print_map_report(report, target, json: bool) -> None:  # noqa: ANN001
    from bugatlas.taxonomy import load_codebook

    tgt = load_codebook(target)
    if json:
        print_json(report.to_dict(tgt))
        return
    console.print(f"{report.records} labeled records; labels mapped per dimension: "
                  f"{dict(report.mapped)}; unmapped: {sum(report.unmapped.values())}", highlight=False)  # fmt: skip
    for (dim, value), n in sorted(report.unmapped.items()):
        err_console.print(f"unmapped {dim}: {value!r} ({n} labels)", highlight=False, markup=False, soft_wrap=True)
    t = Table("dimension", "top-level category", f"mapped ({report.source})", f"published ({tgt.name})", "difference")
    for r in report.comparison(tgt):
        pub = "-" if r["published"] is None else str(r["published"])
        diff = "-" if r["difference"] is None else f"{r['difference']:+d}"
        t.add_row(r["dimension"], r["category"], str(r["mapped"]), pub, diff)
    console.print(t)


@taxonomy_app.command("map")
def map_cmd(
    source: Annotated[str, typer.Option("--from", help="Source codebook (name or YAML path); it declares the mapping.")],
    target: Annotated[str, typer.Option("--to", help="Target codebook.")],
    input: Annotated[Path | None, typer.Option("--input", help="Map a JSONL label file (classify batch format) instead of the store.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where --input's mapped records go (JSONL; default stdout).")] = None,
    source_kind: Annotated[str | None, typer.Option("--source-kind", help="Only map labels of this kind (human, rule, model, llm).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, write nothing.")] = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Convert labels between codebooks (store labels, with provenance, or a JSONL file)."""
    from bugatlas.taxonomy.mapping import MapReport, get_mapping, map_records, map_store_labels

    if input is not None:
        get_mapping(source, target)  # first: a codebook's fault is not blamed on --input
        import orjson

        from bugatlas.importers.base import iter_jsonl_objects

        if not input.is_file():
            raise BadInputError(f"--input: file not found: {input}")
        if output is not None and not dry_run and output.resolve() == input.resolve():
            raise BadInputError(f"--output {output} is the --input file; writing it would replace the labels being mapped")
        report = MapReport(source, target)

        def records():  # one reader for every batch file: .gz too, errors name file and line
            for _, obj in iter_jsonl_objects(input, option="--input"):
                yield obj

        # written beside --output and renamed when complete: a bad record leaves no half file
        sink = nullcontext(None) if dry_run else replaced_when_complete(output) if output else \
            nullcontext(sys.stdout.buffer)
        try:
            with sink as out:
                for rec in map_records(records(), source, target, report):
                    if out is not None:
                        out.write(orjson.dumps(rec) + b"\n")
        except BadInputError as exc:
            if str(exc).startswith(("--input", "--output")):
                raise
            raise BadInputError(f"--input: {input}: {exc}") from None
        report.source, report.target = load_codebook(source).name, load_codebook(target).name
        if output or json or dry_run:
            _print_map_report(report, target, json)
        return
    with open_store(db, create=False) as store:
        report = map_store_labels(store, source, target, source_kind=source_kind, dry_run=dry_run)
    _print_map_report(report, target, json)


def register(app: typer.Typer) -> None:
    app.add_typer(taxonomy_app, name="taxonomy")

