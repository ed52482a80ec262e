"""`bugatlas filter` (judge issues), `bugatlas filter train`, `bugatlas filter eval`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bugatlas.cli_common import DbOption, JsonOption, console, err_console, open_store, print_json
from bugatlas.errors import BadInputError
from bugatlas.files import replaced_when_complete

filter_app = typer.Typer(
    help="Which issues are failure reports: study rules (stage 1) + a text classifier (stage 2).",
    invoke_without_command=True,
)

InputOpt = Annotated[Path | None, typer.Option("--input", help="Issues JSONL (corpus format; .gz ok). Without it: the store.")]
RulesOpt = Annotated[str | None, typer.Option("--rules", help="Stage-1 rules: default, yu2026, liu2025 or a YAML path.")]
ModelOpt = Annotated[Path | None, typer.Option("--model", help="Classifier file (default: BUGATLAS_FILTER_MODEL, then the trained user model, then the shipped one).")]


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err_console, transient=True)  # fmt: skip


@filter_app.callback()
def filter_cmd(
    ctx: typer.Context,
    input: InputOpt = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where --input's kinds go (JSONL; default stdout).")] = None,
    rules: RulesOpt = None,
    model: ModelOpt = None,
    explain: Annotated[bool, typer.Option("--explain", help="Add probabilities, rule result and keywords to each record.")] = False,
    repo: Annotated[list[str] | None, typer.Option("--repo", help="Only these repositories (store mode).")] = None,
    redo: Annotated[bool, typer.Option("--redo", help="Judge again issues already judged by this model and rules.")] = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Judge issues: failure | feature | question | documentation | other, with a confidence.

    With --input, reads issues from a JSONL file and writes one JSON object per issue
    ({"repo", "number", "kind", "confidence"}) without touching the store. Otherwise judges every
    issue in the store, writing the issue_kinds table, the failure_reports view and issue-kind labels."""
    if ctx.invoked_subcommand is not None:
        return
    from bugatlas.filter.pipeline import filter_file, filter_store

    if input is not None:
        # --output is written beside itself and renamed at the end: bad input leaves it as it was.
        with replaced_when_complete(output) if output else nullcontext(sys.stdout.buffer) as out, \
                _progress() as bar:
            task = bar.add_task("filtering", total=None)
            summary = filter_file(input, out, model_path=model, rules=rules, explain=explain,
                                  progress=lambda n: bar.update(task, completed=n))  # fmt: skip
        if output:
            print_json(summary) if json else console.print(
                f"{summary['issues']} issues -> {output}: {summary['kinds']}", highlight=False)
        return
    with open_store(db, create=False) as store, _progress() as bar:
        task = bar.add_task("filtering", total=None)
        summary = filter_store(store, model_path=model, rules=rules, repos=repo, redo=redo,
                               progress=lambda n, t: bar.update(task, completed=n, total=t))  # fmt: skip
    if json:
        print_json(summary)
    else:
        console.print(f"judged {summary['judged']} issues (skipped {summary['skipped_already_judged']} already judged) "
                      f"with {summary['model']}, rules {summary['rules']}: {summary['kinds']}; "
                      f"{summary['rule_pass']} of them pass the rules; the store holds {summary['failure_reports']} "
                      "failure reports (judged failure and kept by the rules)", highlight=False)  # fmt: skip


def _gold_from(corpus: Path | None, db: Path | None):  # noqa: ANN202
    from bugatlas.filter.evaluate import gold_set
    from bugatlas.filter.pipeline import _labels, read_jsonl

    if corpus is not None:
        recs = []
        for r in read_jsonl(corpus, option="--corpus"):
            r["labels"] = _labels(r.get("labels"))
            recs.append(r)
        return gold_set(recs), str(corpus)
    with open_store(db, create=False) as store:
        return gold_set(list(store.iter_issues())), str(store.path)


def _grid(name: str):  # noqa: ANN202
    from bugatlas.filter.evaluate import DEFAULT_GRID
    from bugatlas.filter.model import ModelParams

    if name == "default":
        return DEFAULT_GRID
    if name == "fast":
        return [ModelParams()]
    raise BadInputError(f"--grid: expected default or fast, got {name!r}")


@filter_app.command("train")
def train_cmd(
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Issues JSONL with maintainers' labels (else the store's issues).")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Model file to write (default: the user model, used by `bugatlas filter` from then on).")] = None,
    grid: Annotated[str, typer.Option("--grid", help="default: choose parameters by 5-fold CV; fast: default parameters.")] = "default",
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Train the issue-kind classifier on issues whose maintainers' labels give their kind."""
    from bugatlas.filter.evaluate import select_and_train
    from bugatlas.filter.model import USER_MODEL, corpus_digest

    gold, where = _gold_from(corpus, db)
    if len(gold) < 20:
        raise BadInputError(f"{where}: only {len(gold)} issues with a maintainer kind label; need at least 20")
    err_console.print(f"training on {len(gold)} issues from {where}: {gold.counts()}", highlight=False)
    with _too_few_per_kind(where, gold):
        model, scores = select_and_train(gold, _grid(grid), meta={
            "corpus": Path(where).name, "corpus_digest": corpus_digest(zip(gold.repos, gold.numbers, strict=True))})
    path = model.save(output or USER_MODEL)
    info = {"model": str(path), "bytes": path.stat().st_size, "params": model.meta["params"],
            "trained_on": model.meta["trained_on"], "class_counts": model.meta["class_counts"],
            "selection_cv_macro_f1": model.meta.get("selection_cv_macro_f1")}  # fmt: skip
    print_json(info) if json else console.print(f"wrote {path} ({info['bytes']:,} bytes); params {info['params']}", highlight=False)


def cv_table(results: dict[str, Any], title: str) -> Table:
    m, b = results["model"], results["majority"]
    t = Table(title=title)
    for col in ("class", "support", "precision", "recall", "F1", "majority F1"):
        t.add_column(col)
    for c, s in m.per_class.items():
        t.add_row(c, str(s.support), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", f"{b.per_class[c].f1:.3f}")
    t.add_row("[bold]macro[/bold]", str(sum(s.support for s in m.per_class.values())), "", "",
              f"[bold]{m.macro_f1:.3f}[/bold]", f"{b.macro_f1:.3f}")  # fmt: skip
    return t


@filter_app.command("eval")
def eval_cmd(
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Issues JSONL with maintainers' labels (else the store's issues).")] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Stratified CV folds.")] = 5,
    grid: Annotated[str, typer.Option("--grid", help="default: nested CV over the parameter grid; fast: one parameter set.")] = "fast",
    no_strip: Annotated[bool, typer.Option("--no-strip", help="Keep issue-template title prefixes (for comparison).")] = False,
    kinds: Annotated[list[str] | None, typer.Option("--kind", help="Only issues of these gold kinds (e.g. failure feature question).")] = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Cross-validate the classifier against maintainers' labels (macro-F1, per class, vs majority)."""
    from bugatlas.filter.evaluate import cross_validate, gold_set

    gold, where = _gold_from(corpus, db)
    if kinds:
        keep = [i for i, k in enumerate(gold.kinds) if k in kinds]
        gold = gold_set([{"repo": gold.repos[i], "number": gold.numbers[i], "title": gold.titles[i],
                          "body": gold.bodies[i], "labels": [_label_for(gold.kinds[i])]} for i in keep])  # fmt: skip
    with _too_few_per_kind(where, gold, "add labelled issues or leave rare kinds out with --kind"):
        res = cross_validate(gold, grid=_grid(grid), folds=folds, strip=not no_strip,
                             progress=lambda s: err_console.print(s, highlight=False))  # fmt: skip
    if json:
        print_json({"corpus": where, "issues": len(gold), "classes": gold.counts(), "strip_prefixes": not no_strip,
                    **{k: v.to_dict() for k, v in res.items()}})  # fmt: skip
        return
    console.print(cv_table(res, f"{folds}-fold CV on {len(gold)} issues ({where}); prefixes "
                                f"{'kept' if no_strip else 'stripped'}"))  # fmt: skip


@contextmanager
def _too_few_per_kind(where: str, gold: Any, hint: str = "add labelled issues") -> Iterator[None]:
    """scikit-learn's refusals (fewer issues than folds, one kind only, a kind too rare to
    calibrate) as one line naming the data and its kinds."""
    try:
        yield
    except ValueError as exc:
        raise BadInputError(f"{where}: cannot cross-validate {len(gold)} issues of kinds {gold.counts()} "
                            f"({str(exc).splitlines()[0]}); {hint}") from None  # fmt: skip


def _label_for(kind: str) -> str:
    from bugatlas.filter.text import text_config

    return next(l for l, k in text_config()["maintainer_kinds"].items() if k == kind)


def register(app: typer.Typer) -> None:
    app.add_typer(filter_app, name="filter")
