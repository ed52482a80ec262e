"""CLI: ``bugatlas classify``, ``train``, ``suggest``, ``eval`` (thin over bugatlas.classify.api)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bugatlas.classify.base import DEFAULT_THRESHOLD
from bugatlas.cli_common import DbOption, JsonOption, console, err_console, open_store, print_json

TaxonomyOption = Annotated[str, typer.Option("--taxonomy", "-t", help="Codebook name or path to a YAML codebook.")]


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err_console, transient=False)


def _llm(taxonomy: str, url: str | None, model: str | None, store=None, timeout: float = 120.0,
         retries: int = 3, response_format: str = "auto", max_tokens: int = 400, body_chars: int = 3000,
         cache_file: Path | None = None, logprobs: bool = True):
    if not url:
        return None
    from bugatlas.classify.llm import LLMLabeler
    from bugatlas.errors import BadInputError

    if not model:
        raise BadInputError("--llm-url needs --llm-model (the model name the endpoint serves)")
    return LLMLabeler(taxonomy, url, model, store=store, api_key=os.environ.get("BUGATLAS_LLM_KEY"),
                      timeout=timeout, retries=retries, response_format=response_format,
                      max_tokens=max_tokens, body_chars=body_chars, cache_file=cache_file, logprobs=logprobs)


def _load_model(path: Path, taxonomy: str):  # noqa: ANN202
    from bugatlas.classify.supervised import SupervisedModel
    from bugatlas.errors import BadInputError

    if not path.is_file():
        raise BadInputError(f"--model {path}: no such file")
    wanted = taxonomy_name(taxonomy)  # first: a codebook given by path is then known by its name
    return SupervisedModel.load(path, taxonomy=wanted)


def taxonomy_name(taxonomy: str) -> str:
    from bugatlas.classify.schema import taxonomy_spec

    return taxonomy_spec(taxonomy).name


def register(app: typer.Typer) -> None:
    @app.command("classify")
    def classify_cmd(
        taxonomy: TaxonomyOption,
        input: Annotated[Path | None, typer.Option("--input", "-i", help="Batch mode: issues as JSON Lines (corpus format, .gz ok); the store is not touched.")] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Batch mode: where to write one JSON object of labels per issue.")] = None,
        background: Annotated[list[Path], typer.Option("--background", help="Batch mode: more unlabeled issues (JSON Lines) to fit the text model on.")] = [],  # noqa: B006
        threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Abstain (no label) below this confidence.")] = DEFAULT_THRESHOLD,
        llm_url: Annotated[str | None, typer.Option("--llm-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; asked about dimensions the offline classifiers are unsure of. An API key is read from the environment variable BUGATLAS_LLM_KEY (sent as a Bearer token).")] = None,
        llm_model: Annotated[str | None, typer.Option("--llm-model", help="Model name the endpoint serves.")] = None,
        llm_below: Annotated[float, typer.Option("--llm-below", min=0.0, max=1.01, help="Ask the LLM about a dimension whose offline confidence is below this.")] = 0.6,
        llm_format: Annotated[str, typer.Option("--llm-format", help="auto | json_schema | json_object (llama-cpp-python).")] = "auto",
        llm_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per LLM request.")] = 120.0,
        llm_max_tokens: Annotated[int, typer.Option(min=1, help="Answer length limit.")] = 400,
        llm_body_chars: Annotated[int, typer.Option(min=0, help="How much of the issue body goes into the prompt.")] = 3000,
        llm_retries: Annotated[int, typer.Option(min=0, help="Retries on invalid JSON, 5xx and timeouts.")] = 3,
        llm_logprobs: Annotated[bool, typer.Option("--llm-logprobs/--no-llm-logprobs", help="Take each LLM label's confidence from the tokens' log-probabilities (else the model's stated one). llama-cpp-python's server computes them slowly (tens of seconds an answer on 2 cores): --no-llm-logprobs there.")] = True,
        llm_cache: Annotated[Path | None, typer.Option("--llm-cache", help="Batch mode: SQLite file of the LLM's answers, reused by the next run (an interrupted or failed run resumes). Default: the output's name + .llm-cache.sqlite. The store mode keeps them in the store.")] = None,
        all_issues: Annotated[bool, typer.Option("--all", help="Label every issue with text, not only the filter's failure reports.")] = False,
        limit: Annotated[int | None, typer.Option(help="Label at most this many (unlabeled) issues.")] = None,
        jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Batch mode: worker processes for the offline classifiers (one with --llm-url: the LLM's connection and answer cache belong to one process).")] = min(2, os.cpu_count() or 1),
        model: Annotated[Path | None, typer.Option("--model", help="A supervised model file (from `train --output`) instead of the store's or the shipped one.")] = None,
        shipped: Annotated[bool, typer.Option("--shipped/--no-shipped", help="Use the supervised models that ship with BugAtlas (when no better one is given): this taxonomy's, and liu2025's symptoms and root-cause groups mapped onto yu2026's categories.")] = True,
        domains: Annotated[bool, typer.Option("--domains/--no-domains", help="Move the probabilities of an issue from a repository the codebook's `domains:` name (yu2026: the DeepSeek, Llama and Qwen model-release repositories) to the base rates the study counted there; the models learned from engine issues.")] = True,
        min_kappa: Annotated[float | None, typer.Option("--min-kappa", min=-1.0, max=1.0, help="Per dimension, keep only labels at a confidence where the supervised model's cross-validated calibration agrees with people at this Cohen's kappa; abstain on the rest (they are left to people).")] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Label failure reports with a codebook (rules, text model, optional LLM); every label
        has a confidence and evidence. With --input/--output: the stable batch interface."""
        from bugatlas.classify import api
        from bugatlas.errors import BadInputError

        if (input is None) != (output is None):
            raise BadInputError("batch mode needs both --input and --output")
        if llm_cache is not None and (input is None or not llm_url):
            raise BadInputError("--llm-cache is for batch mode with --llm-url (the store keeps the LLM's answers)")
        if llm_model and not llm_url:  # else silently offline: the user thinks the LLM was asked
            raise BadInputError(f"--llm-model {llm_model} needs --llm-url (the endpoint that serves it)")
        supervised = _load_model(model, taxonomy) if model else None
        if input is not None:
            assert output is not None
            cache_file = llm_cache or output.with_name(output.name + ".llm-cache.sqlite")
            if llm_url:  # checked before the cache file is made beside the output
                if not output.parent.is_dir():
                    raise BadInputError(f"--output {output}: folder {output.parent} does not exist")
                for given, what in ((output, "the --output file"), (input, "an input file"),
                                    *((b, "an input file") for b in background)):
                    if cache_file.resolve() == Path(given).resolve():
                        raise BadInputError(f"--llm-cache {cache_file} is {what}; the cache would destroy it "
                                            "or be destroyed (choose another file)")
            llm = _llm(taxonomy, llm_url, llm_model, None, llm_timeout, llm_retries, llm_format,
                       llm_max_tokens, llm_body_chars, cache_file if llm_url else None, llm_logprobs)
            try:
                with _progress() as bar:
                    task = bar.add_task("classify", total=None)
                    n = api.classify_file(taxonomy, input, output, background=background, threshold=threshold,
                                          llm=llm, llm_below=llm_below, jobs=jobs, supervised=supervised,
                                          use_shipped=shipped, min_kappa=min_kappa, use_domains=domains,
                                          progress=lambda k: bar.advance(task, k))
            finally:
                if llm is not None:
                    llm.close()
                    if llm.stats["requests"] or llm.stats["cache_hits"]:  # not after a usage error
                        err_console.print(f"llm: {llm.stats['requests']} requests, {llm.stats['cache_hits']} "
                                          f"answers from {cache_file}", highlight=False)
            if json:
                print_json({"issues": n, "output": str(output)})
            else:
                console.print(f"{n} issues labeled -> {output}")
            return
        store = open_store(db, create=False)
        llm = _llm(taxonomy, llm_url, llm_model, store, llm_timeout, llm_retries, llm_format,
                   llm_max_tokens, llm_body_chars, logprobs=llm_logprobs)
        with _progress() as bar:
            task = bar.add_task(f"classify {taxonomy}", total=None)

            def tick(k: int, total: int) -> None:
                bar.update(task, total=total)
                bar.advance(task, k)

            res = api.classify_store(store, taxonomy, llm=llm, llm_below=llm_below, threshold=threshold,
                                     all_issues=all_issues, supervised=supervised, use_shipped=shipped,
                                     min_kappa=min_kappa, limit=limit, progress=tick, use_domains=domains)
        if json:
            print_json(res.as_dict())
            return
        none = f" ({res.no_label} of them got no label at all: every dimension abstained)" if res.no_label else ""
        console.print(f"run {res.run_id}: {res.labeled} issues classified{none}, {res.skipped} already classified by "
                      f"this version ({res.version}), {res.candidates} failure reports")
        if res.llm_failed:
            err_console.print(f"warning: the LLM failed on {res.llm_failed} issues, which keep their offline labels and "
                              f"are asked again by the next run; first: {res.llm_errors[0]}", highlight=False)
        if res.unfiltered:
            err_console.print(f"warning: {res.unfiltered} issues are not judged by the filter yet (an interrupted "
                              "`bugatlas filter`, or issues collected since): run `bugatlas filter`, then "
                              "classify again to label their failure reports", highlight=False)
        table = Table("dimension", "abstained")
        for dim, k in res.abstained.items():
            table.add_row(dim, str(k))
        console.print(table)

    @app.command("train")
    def train_cmd(
        taxonomy: TaxonomyOption,
        labels: Annotated[list[Path], typer.Option("--labels", help="Batch mode: human labels (batch format, repeatable); records with \"not_failure\": true are skipped.")] = [],  # noqa: B006
        input: Annotated[list[Path], typer.Option("--input", "-i", help="Batch mode: the labeled issues' text (corpus JSON Lines, .gz ok, repeatable).")] = [],  # noqa: B006
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Batch mode: where to save the supervised model (use it with classify --model).")] = None,
        calibrate: Annotated[bool, typer.Option("--calibrate/--no-calibrate", help="Batch mode: also measure agreement by confidence by 5-fold cross-validation (five more fits), for classify --min-kappa. The store's train does it from 100 labels on.")] = True,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Fit on human labels: the store's (text model + supervised model, used by later classify
        runs), or with --labels/--input/--output a supervised model from files, no store."""
        from bugatlas.classify import api
        from bugatlas.errors import BadInputError

        if labels or input or output:
            if not (labels and input and output):
                raise BadInputError("batch training needs --labels, --input and --output")
            for given in (*labels, *input):  # checked before minutes of fitting, not after
                if output.resolve() == Path(given).resolve():
                    raise BadInputError(f"--output {output} is an input file; saving the model would destroy it")
            if not output.parent.is_dir():
                raise BadInputError(f"--output {output}: folder {output.parent} does not exist")
            from bugatlas.classify.supervised import fit_from_files

            with err_console.status("training") as status:
                sup = fit_from_files(taxonomy, input, labels, calibrate=calibrate,
                                     step=lambda what: status.update(f"training: {what}"))
                sup.save(output)
            if json:
                print_json({"version": sup.version, "n_human": sup.n_human, "heads": sorted(sup.heads),
                            "output": str(output)})
            else:
                console.print(f"{sup.version}: {sup.n_human} labeled issues, heads {', '.join(sorted(sup.heads))} "
                              f"-> {output}")
            return
        store = open_store(db, create=False)
        with err_console.status("training") as status:
            res = api.train_store(store, taxonomy, step=lambda what: status.update(f"training: {what}"))
        if json:
            print_json(res.as_dict())
        else:
            console.print(f"model {res.model_id} ({res.version}): {res.n_human} human-labeled issues, "
                          f"{res.n_weak} weak labels from the rules, {res.n_issues} issues"
                          + (f"; supervised model {res.supervised_version}" if res.supervised_version else ""))

    @app.command("suggest")
    def suggest_cmd(
        taxonomy: TaxonomyOption,
        n: Annotated[int, typer.Option("-n", help="How many issues to suggest.")] = 50,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """The unlabeled issues whose human label would help most (uncertainty sampling)."""
        from bugatlas.classify import api

        store = open_store(db, create=False)
        rows = api.suggest(store, taxonomy, n)
        if json:
            print_json(rows)
            return
        table = Table("issue", "uncertainty", "current guess", "title")
        for r in rows:
            guess = "; ".join(f"{d}: {', '.join(v) or '-'}" for d, v in r["labels"].items())
            table.add_row(f"{r['repo']}#{r['number']}", f"{r['uncertainty']:.2f}", guess, (r["title"] or "")[:70])
        console.print(table)

    @app.command("eval")
    def eval_cmd(
        taxonomy: TaxonomyOption,
        gold: Annotated[Path | None, typer.Option("--gold", help="Human labels (batch format). Default: the store's human labels.")] = None,
        pred: Annotated[Path | None, typer.Option("--pred", help="Machine labels (batch format). Default: the store's classify labels.")] = None,
        curve: Annotated[bool, typer.Option("--curve/--no-curve", help="Learning curve by cross-validation (needs the store).")] = True,
        confusion: Annotated[list[str], typer.Option("--confusion", help="Print the confusion matrix of this dimension (repeatable).")] = [],  # noqa: B006
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Accuracy, macro-F1, Cohen's kappa per dimension and hierarchy level, confusion
        matrix, learning curve (kappa vs number of human labels)."""
        from bugatlas.classify import api
        from bugatlas.classify.schema import taxonomy_spec
        from bugatlas.errors import BadInputError

        known = taxonomy_spec(taxonomy).output_dims
        for dim in confusion:
            if dim not in known:
                raise BadInputError(f"--confusion: {taxonomy_name(taxonomy)} has no dimension {dim!r} "
                                    f"(has: {', '.join(known)})")
        store = None
        if gold is None or pred is None or curve:
            path = db if db is not None else Path(os.environ.get("BUGATLAS_DB") or "bugatlas.db")
            if gold is None or pred is None or path.exists():
                store = open_store(db, create=False)
        report, rows = api.eval_labels(taxonomy, store=store, gold_file=gold, pred_file=pred,
                                       curve=curve and store is not None)
        if json:
            print_json({**report.as_dict(), "learning_curve": rows})
            return
        console.print(f"{report.taxonomy}: {report.n_common} issues with both gold and machine labels "
                      f"({report.n_gold} gold, {report.n_pred} machine)")
        def scores_table(rep, title: str | None = None) -> Table:
            table = Table("dimension", "n", "accuracy", "macro-F1", "kappa", "coverage", "majority (acc)",
                          title=title)
            for dim, s in rep.dimensions.items():
                table.add_row(dim, str(s.n), f"{s.accuracy:.3f}", f"{s.macro_f1:.3f}", f"{s.kappa:.3f}",
                              f"{s.coverage:.2f}", f"{s.majority_label} ({s.majority_accuracy:.3f})")
            return table

        console.print(scores_table(report))
        if report.in_sample:
            err_console.print(f"warning: {report.in_sample} of these gold issues were labeled by a model that "
                              "learned from their human labels: agreement on them is in-sample, not what "
                              "to expect on new issues (see the learning curve, or the table below)",
                              highlight=False)  # fmt: skip
            if report.unseen is not None:
                console.print(scores_table(report.unseen, f"on the {report.unseen.n_gold} gold issues the "
                                                          "model did not learn from"))
        if report.shipped_learned:
            err_console.print(f"note: {report.shipped_learned} of these gold issues are among the shipped model's "
                              "training labels; if --pred came from it (the default), agreement on them is "
                              "in-sample (classify --no-shipped, or --model with a model fitted without them, "
                              "avoids it)", highlight=False)  # fmt: skip
        if report.by_confidence:
            ts = [r["threshold"] for r in next(iter(report.by_confidence.values()))]
            bc = Table("dimension", *[f"≥ {t:.1f}" for t in ts],
                       title="agreement by confidence: kappa (share of issues labeled) if labels below "
                             "the threshold are left to people (classify --threshold)")
            for dim, by_t in report.by_confidence.items():
                bc.add_row(dim, *[f"{r['kappa']:.2f} ({r['coverage']:.0%})" if r["n"] else "—" for r in by_t])
            console.print(bc)
        for dim in confusion:
            s = report.dimensions.get(dim)
            if s is None:
                err_console.print(f"--confusion {dim}: no issue has gold labels in this dimension", highlight=False)
                continue
            cm = Table(f"{dim}: gold \\ predicted", *[c[:14] for c in s.labels + ["(none)"]])
            for label, row in zip(s.labels, s.confusion, strict=True):
                cm.add_row(label, *[str(v) for v in row])
            console.print(cm)
        if rows:
            dims = [d for d in report.dimensions]
            lc = Table("human labels", *[f"kappa {d}" for d in dims], title="learning curve (cross-validated)")
            for r in rows:
                lc.add_row(str(r["n"]), *[f"{r.get(d, float('nan')):.3f}" for d in dims])
            console.print(lc)
