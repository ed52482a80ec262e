"""CLI for the annotation stage: sample, assign, annotate (web app), agreement, gold,
disagreements, labelstudio export/import. Thin over the library in this package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bugatlas.cli_common import DbOption, JsonOption, console, err_console, open_store, print_json

SampleOption = Annotated[
    str | None, typer.Option("--sample", help="Sample name (default: the most recent sample).")
]


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def register(app: typer.Typer) -> None:
    _register_labelstudio(app)

    @app.command("sample")
    def sample_cmd(
        taxonomy: Annotated[str, typer.Option("--taxonomy", help="Codebook name or YAML path.")],
        per: Annotated[str, typer.Option("--per", help="Stratify by: repo, year, none, or an issues column (state, author_association, …).")] = "repo",
        confidence: Annotated[float, typer.Option("--confidence", help="Confidence level for Cochran's formula.")] = 0.95,
        margin: Annotated[float, typer.Option("--margin", help="Margin of error for Cochran's formula.")] = 0.05,
        size: Annotated[int | None, typer.Option("--size", help="Fixed total size instead of Cochran's, allocated proportionally to strata.")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same store: same sample).")] = 0,
        name: Annotated[str | None, typer.Option("--name", help="Sample name (default: the taxonomy name).")] = None,
        repos: Annotated[str | None, typer.Option("--repos", help="Only these repositories (comma-separated OWNER/NAME).")] = None,
        label: Annotated[str | None, typer.Option("--label", help="Only issues carrying this label: TAXONOMY:DIMENSION=VALUE.")] = None,
        dimensions: Annotated[str | None, typer.Option("--dimensions", help="Dimensions to annotate (comma-separated; default all).")] = None,
        replace: Annotated[bool, typer.Option("--replace", help="Replace an existing sample of that name (refused once it holds annotations).")] = False,
        failure_reports: Annotated[bool, typer.Option("--failure-reports", help="Only issues the filter stage judged failure reports (run `bugatlas filter` first).")] = False,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Draw a stratified random sample sized by Cochran's formula (per stratum, with finite
        population correction) and record it in the store."""
        from bugatlas.annotate.sampling import draw_sample

        with open_store(db, create=False) as store:
            s = draw_sample(store, taxonomy, name=name, per=per, confidence=confidence,
                            margin=margin, size=size, seed=seed, repos=_csv(repos) or None,
                            label=label, dimensions=_csv(dimensions) or None, replace=replace,
                            failure_reports=failure_reports)
        if as_json:
            print_json({"sample": s.name, "taxonomy": s.taxonomy, "size": s.size,
                        "dimensions": s.dimensions, "strata": s.strata, "seed": s.seed})
            return
        how = f"Cochran {s.confidence:.0%} confidence, ±{s.margin:.0%}" if s.confidence else "fixed size"
        t = Table(title=f"sample {s.name} ({s.taxonomy}; {how}; seed {s.seed})")
        t.add_column(f"stratum ({s.strata_by})")
        t.add_column("population", justify="right")
        t.add_column("sample", justify="right")
        for st in s.strata:
            t.add_row(st["stratum"], str(st["population"]), str(st["size"]))
        t.add_row("total", str(sum(x["population"] for x in s.strata)), str(s.size))
        console.print(t)

    @app.command("assign")
    def assign_cmd(
        annotators: Annotated[str, typer.Option("--annotators", help="Comma-separated annotator names.")],
        k: Annotated[int, typer.Option("--k", help="Annotators per issue.")] = 2,
        pilot: Annotated[int, typer.Option("--pilot", help="First N issues go to every annotator as a calibration round.")] = 0,
        arbitrator: Annotated[str | None, typer.Option("--arbitrator", help="Arbitrator name(s), comma-separated.")] = None,
        owner: Annotated[str | None, typer.Option("--owner", help="Study owner name(s): sees progress and live agreement.")] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Seed (default: the sample's).")] = None,
        sample: SampleOption = None,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Give each sampled issue to k annotators, balanced (load and pairs)."""
        from bugatlas.annotate.assign import assign

        with open_store(db, create=False) as store:
            summary = assign(store, sample, _csv(annotators), k=k, pilot=pilot, seed=seed,
                             arbitrator=_csv(arbitrator), owner=_csv(owner))
        if as_json:
            print_json(summary)
            return
        t = Table(title=f"assignments of sample {summary['sample']} ({summary['items']} issues)")
        t.add_column("annotator")
        t.add_column("pilot", justify="right")
        t.add_column("main", justify="right")
        for a, c in summary["annotators"].items():
            t.add_row(a, str(c["pilot"]), str(c["main"]))
        console.print(t)
        for pair, n in summary["pairs"].items():
            console.print(f"  pair {pair}: {n} shared issues")

    @app.command("annotate")
    def annotate_cmd(
        port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
        host: Annotated[str, typer.Option("--host", help="Interface to bind; 127.0.0.1 keeps the app on this machine. Binding to another interface exposes sign-in-by-name to that network.")] = "127.0.0.1",
        suggestions: Annotated[bool | None, typer.Option("--suggestions/--no-suggestions", help="Show machine suggestions to annotators (off by default; the owner can switch it in the app).")] = None,
        sample: SampleOption = None,
        db: DbOption = None,
    ) -> None:
        """Serve the annotation web app: blind queues, arbitration, live agreement."""
        from bugatlas.annotate.app import serve
        from bugatlas.annotate.assign import roles
        from bugatlas.annotate.sampling import get_sample, update_settings

        with open_store(db, create=False) as store:
            s = get_sample(store, sample)
            if suggestions is not None:
                update_settings(store, s, show_suggestions=suggestions)
            r = roles(store, s)
            console.print(f"sample {s.name} ({s.taxonomy}): annotators {', '.join(sorted(r['annotator'])) or '(none: run bugatlas assign)'}; "
                          f"arbitrators {', '.join(sorted(r['arbitrator'])) or '(none)'}; owners {', '.join(sorted(r['owner'])) or '(none)'}")
            if host not in ("127.0.0.1", "localhost", "::1"):
                err_console.print(f"warning: listening on {host}: anyone who can reach it can sign in "
                                  "by a study name; use it only on a trusted network")
            console.print(f"open http://{host}:{port}/ and sign in by name (Ctrl+C stops; work is saved as it is made)")
            serve(store, s.name, host=host, port=port)

    @app.command("agreement")
    def agreement_cmd(
        taxonomy: Annotated[str | None, typer.Option("--taxonomy", help="Check the sample is of this taxonomy.")] = None,
        round: Annotated[str, typer.Option("--round", help="main | pilot | all")] = "main",
        include_drafts: Annotated[bool, typer.Option("--include-drafts", help="Count annotations not marked done.")] = False,
        sample: SampleOption = None,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Cohen's kappa per annotator pair, Fleiss' kappa and Krippendorff's alpha, per
        dimension and hierarchy level, with counts and confusion matrices."""
        from bugatlas.annotate.agreement import agreement, headline
        from bugatlas.annotate.sampling import get_sample
        from bugatlas.errors import BadInputError

        with open_store(db, create=False) as store:
            s = _sample_for(store, sample, taxonomy, get_sample, BadInputError)
            report = agreement(store, s, round="" if round == "all" else round,
                               include_drafts=include_drafts)
        if as_json:
            print_json(report)
            return
        rows = headline(report)
        # One annotator pair: its Cohen κ and agreement sit in the main table. More pairs get a
        # table of their own, a pair per line (in one cell they wrapped unreadably at 80 columns).
        by_pair = any(len(row["cohen_kappa"]) > 1 for row in rows)
        t = Table(title=f"agreement: sample {report['sample']} ({report['taxonomy']}, round {round}, "
                        f"{report['items_annotated']} issues annotated)")
        cols = ("dimension", "level", "items") + (() if by_pair else ("Cohen κ", "agree")) + ("Fleiss κ", "Kripp. α")
        for col in cols:
            t.add_column(col, justify="left" if col in ("dimension", "level") else "right")
        pt = Table(title="Cohen κ and observed agreement per annotator pair")
        for col in ("dimension", "level", "pair", "Cohen κ", "agree"):
            pt.add_column(col, justify="right" if col in ("Cohen κ", "agree") else "left",
                          overflow="fold")
        multi = False
        for row in rows:
            pairs, agree = row["cohen_kappa"], row["observed_agreement"]
            multi |= row["multi_label"]
            dim = row["dimension"] + ("*" if row["multi_label"] else "")
            pair_cells = ((_fmt(next(iter(pairs.values()))) if pairs else "—"),
                          (f"{next(iter(agree.values())):.0%}" if agree else "—"))
            t.add_row(dim, row["level"], str(row["items"]), *(() if by_pair else pair_cells),
                      _fmt(row["fleiss_kappa"]), _fmt(row["krippendorff_alpha"]))
            for i, (p, v) in enumerate(pairs.items()):
                pt.add_row(dim if i == 0 else "", row["level"] if i == 0 else "", p, _fmt(v) or "—",
                           f"{agree[p]:.0%}", end_section=i == len(pairs) - 1)
        console.print(t)
        if by_pair:
            console.print(pt)
        if multi:
            console.print("* multi-label: the set of categories compared as one value (per-category "
                          "kappa in --json)")
        console.print(f"annotators: {', '.join(report['annotators']) or 'none yet'}; "
                      "confusion matrices and per-category kappa: --json")

    @app.command("disagreements")
    def disagreements_cmd(
        sample: SampleOption = None,
        include_resolved: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """The arbitration queue: finished issues whose annotators disagree or were unsure."""
        from bugatlas.annotate.gold import disagreements

        with open_store(db, create=False) as store:
            rows = disagreements(store, sample, include_resolved=include_resolved)
        if as_json:
            print_json(rows)
            return
        for r in rows:
            state = "resolved" if r["resolved"] else "open"
            why = ", ".join(r["conflicts"]) + (" (unsure)" if r["flagged"] else "")
            console.print(f"[{state}] {r['repo']}#{r['issue_number']}: {why}")
            for a, ann in r["annotations"].items():
                console.print(f"    {a}: {ann['labels']}" + (f"  note: {ann['note']}" if ann["note"] else ""))
        console.print(f"{len(rows)} issue(s)")

    @app.command("gold")
    def gold_cmd(
        export: Annotated[Path | None, typer.Option("--export", help="Write final labels to FILE (.jsonl, .json, .csv).")] = None,
        sample: SampleOption = None,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Finalize: agreed and arbitrated issues become gold labels (source_kind human,
        source gold) in the store; optionally export them."""
        from bugatlas.annotate.gold import export_gold, finalize

        with open_store(db, create=False) as store:
            counts = finalize(store, sample)
            if export:
                counts["exported"] = export_gold(store, sample, export)
                counts["file"] = str(export)
        if as_json:
            print_json(counts)
            return
        console.print(
            f"{counts['items']} issues: {counts['agreed']} agreed, {counts['arbitrated']} arbitrated, "
            f"{counts['awaiting_arbitration']} awaiting arbitration, {counts['incomplete']} not finished"
            + (f", {counts['single_annotator']} labeled by one annotator only (not agreed, not gold)"
               if counts["single_annotator"] else "") + "; "
            f"{counts['gold_labels']} gold labels"
            + (f"; {counts['exported']} rows written to {counts['file']}" if export else ""))


def _register_labelstudio(app: typer.Typer) -> None:
    ls = typer.Typer(help="Label Studio interchange: tasks + Taxonomy config out, JSON export in.",
                     no_args_is_help=True)
    app.add_typer(ls, name="labelstudio")

    @ls.command("export")
    def ls_export(
        out_dir: Annotated[Path, typer.Argument(help="Folder for tasks.json and config.xml.")],
        with_annotations: Annotated[bool, typer.Option("--with-annotations", help="Include each annotator's latest annotation, when it is marked done (drafts are left out).")] = False,
        sample: SampleOption = None,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Export the sample as Label Studio tasks and a labeling config (Taxonomy tags)."""
        from bugatlas.annotate.labelstudio import export_tasks

        with open_store(db, create=False) as store:
            res = export_tasks(store, sample, out_dir, with_annotations=with_annotations)
        if as_json:
            print_json(res)
            return
        console.print(f"{res['tasks']} tasks, {res['annotations']} annotations -> {out_dir}/tasks.json; "
                      f"labeling config -> {out_dir}/config.xml")

    @ls.command("import")
    def ls_import(
        file: Annotated[Path, typer.Argument(help="Label Studio JSON export (or a tasks.json with annotations).")],
        taxonomy: Annotated[str | None, typer.Option("--taxonomy", help="Taxonomy, when the sample must be created.")] = None,
        annotator_map: Annotated[str | None, typer.Option("--annotator-map", help="Rename Label Studio user ids: 1=alice,2=bob.")] = None,
        sample: SampleOption = None,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Import a Label Studio JSON export as annotations (annotator ids preserved)."""
        from bugatlas.annotate.labelstudio import import_export
        from bugatlas.errors import BadInputError

        mapping = {}
        for pair in _csv(annotator_map):
            if "=" not in pair:
                raise BadInputError(f"--annotator-map {annotator_map}: expected ID=NAME pairs")
            k, v = pair.split("=", 1)
            mapping[k.strip()] = v.strip()
        with open_store(db, create=False) as store:
            res = import_export(store, file, sample=sample, taxonomy=taxonomy, annotator_map=mapping)
        if as_json:
            print_json(res)
            return
        console.print(f"{res['annotations']} annotations imported into sample {res['sample']} from "
                      f"{res['tasks']} tasks (annotators: {', '.join(res['annotators']) or 'none'}; "
                      f"{res['already_imported']} already there, {res['skipped_cancelled']} cancelled skipped)")


def _sample_for(store, sample, taxonomy, get_sample, BadInputError):  # noqa: N803
    from bugatlas.annotate import codebook as cbm

    s = get_sample(store, sample)
    if taxonomy and cbm.file_of(taxonomy):  # a YAML codebook: samples record its name
        taxonomy = cbm.load(taxonomy).name
    if taxonomy and taxonomy != s.taxonomy:
        rows = store.query("SELECT name FROM ann_samples WHERE taxonomy = ? ORDER BY id DESC", (taxonomy,))
        if sample or not rows:
            raise BadInputError(f"--taxonomy {taxonomy}: sample {s.name} is of {s.taxonomy}")
        s = get_sample(store, rows[0]["name"])
    return s
