"""The library entry points behind ``bugatlas classify / train / suggest / eval``."""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bugatlas.classify.base import (
    DEFAULT_THRESHOLD,
    Prediction,
    Thresholds,
    at_own_level,
    check_names,
    level_probs,
)
from bugatlas.classify.batch import LabelRecord, LabelWriter, read_issues, read_label_records
from bugatlas.classify.combine import Donor, Ensemble, donors_for, has_text
from bugatlas.classify.evaluate import EvalReport, evaluate, learning_curve
from bugatlas.classify.model import TextModel
from bugatlas.classify.rules import RuleClassifier
from bugatlas.classify.schema import TaxonomySpec, check_same_codebook, taxonomy_spec
from bugatlas.classify.supervised import MIN_LABELS, SupervisedModel, shipped_model
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.store import Store
from bugatlas.store.records import Issue, Label
from bugatlas.store.store import now_iso

SOURCE = "bugatlas:classify"
Progress = Callable[[int], None]


def to_record(pred: Prediction) -> LabelRecord:
    return LabelRecord(repo=pred.repo, number=pred.number, taxonomy=pred.taxonomy,
                       labels={d: list(v) for d, v in pred.labels.items()},
                       confidence=dict(pred.confidence), evidence=dict(pred.evidence),
                       source=dict(pred.source_kind))


# -- the classifier -----------------------------------------------------------------------
def build_classifier(
    taxonomy: str,
    *,
    store: Store | None = None,
    fit_on: Sequence[Issue] = (),
    llm: Any = None,
    threshold: float = DEFAULT_THRESHOLD,
    use_trained: bool = True,
    llm_below: float = 0.6,
    supervised: SupervisedModel | None = None,
    use_shipped: bool = True,
    donors: Sequence[Donor] | None = None,
    use_domains: bool = True,
) -> Ensemble:
    """Rules + text model + supervised model (+ LLM).

    The text model is the newest one ``train`` saved in the store for this taxonomy; without
    one it is fitted here on ``fit_on`` (unlabeled issues, weakly labeled by the rules). The
    supervised model is ``supervised`` when given, else whichever of the store's (``train``)
    and the package's (fitted on BugAtlas's labeled training set) learned from more labels.
    With ``use_shipped``, another taxonomy's shipped model whose codebook maps onto this one
    (liu2025 -> yu2026 symptom and root-cause categories) gives a dimension's top level where
    no supervised model answers it, and is mixed in (``LENT_WEIGHT``) where one does;
    ``donors`` gives them instead. With ``use_domains``, an issue of a repository the codebook's
    ``domains:`` name gets that domain's base rates at the top levels (classify/domains.py)."""
    spec = taxonomy_spec(taxonomy)
    rules = RuleClassifier(spec.name)
    model = load_trained(store, spec.name) if (store is not None and use_trained) else None
    if model is not None:
        model.rules = rules
    if supervised is None:
        candidates = [m for m in (
            load_trained(store, spec.name, kind=SupervisedModel) if (store is not None and use_trained) else None,
            shipped_model(spec.name) if use_shipped else None) if m is not None]
        supervised = max(candidates, key=lambda m: m.n_human, default=None)
    ens = Ensemble(spec.name, rules=rules, model=model, supervised=supervised, llm=llm,
                   threshold=threshold, llm_below=llm_below,
                   donors=donors if donors is not None else donors_for(spec.name) if use_shipped else (),
                   domains=None if use_domains else ())
    if model is None and fit_on:
        ens.fit([i for i in fit_on if has_text(i)])
    return ens


def classify_file(
    taxonomy: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    background: Sequence[str | Path] = (),
    threshold: float = DEFAULT_THRESHOLD,
    llm: Any = None,
    llm_below: float = 0.6,
    progress: Progress | None = None,
    chunk: int = 1000,
    jobs: int = 1,
    supervised: SupervisedModel | None = None,
    use_shipped: bool = True,
    min_kappa: float | None = None,
    donors: Sequence[Donor] | None = None,
    use_domains: bool = True,
) -> int:
    """The batch interface: label every issue of ``input_path`` (corpus JSON Lines) into
    ``output_path`` without a store. The text model is fitted on the input plus any
    ``background`` files (unlabeled issues: more text to learn the rules' vocabulary from).
    ``min_kappa``: per dimension, abstain below the confidence at which the supervised
    model's calibration reached this Cohen's kappa (``threshold`` for other dimensions)."""
    spec = taxonomy_spec(taxonomy)
    for path in (input_path, *background):
        if Path(output_path).resolve() == Path(path).resolve():
            raise BadInputError(f"--output {output_path} is an input file; writing it would destroy the issues")
    issues = list(read_issues(input_path))
    fit_on = list(issues)
    for extra in background:
        fit_on += list(read_issues(extra))
    ens = build_classifier(spec.name, fit_on=fit_on, llm=llm, threshold=threshold, llm_below=llm_below,
                           supervised=supervised, use_shipped=use_shipped, donors=donors, use_domains=use_domains)
    if min_kappa is not None:
        ens.threshold = calibrated_thresholds(ens, min_kappa, threshold)
    with LabelWriter(output_path, spec.single_valued) as out, parallel_predictor(ens, jobs=jobs) as predict:
        for start in range(0, len(issues), chunk):
            part = issues[start : start + chunk]
            for pred in predict(part):
                out.write(to_record(pred))
            if progress:
                progress(len(part))
        return out.count


_WORKER_ENS: Ensemble | None = None


def _worker_start(parent: int) -> None:
    # the CLI stops on SIGTERM like on Ctrl-C (an exception, so the run is recorded); a pool
    # worker inherits that handler, but Pool.terminate() ends idle workers with SIGTERM and
    # expects them to die: with the exception each printed a traceback, and one raised while
    # it held the task queue's lock left the next worker waiting and the batch hung for good
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Ctrl-C reaches the whole process group: the parent alone handles it (and terminates the
    # pool); each worker raising KeyboardInterrupt printed its own traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _POOL_SIGNALS)  # blocked while the pool forked
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    # a parent killed outright (SIGKILL, the OOM killer) never terminates the pool: its workers
    # went on with the chunks already queued (still there 20 s later in the test). Linux can
    # send each SIGTERM (default action here) when the parent goes; elsewhere, as before
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


# held back while the pool forks: the CLI's handler raising in a fork hook was dropped (the
# batch went on), and raised between two forks it left the workers forked so far behind. The
# signals are blocked (the workers inherit that until _worker_start) and, as another thread
# (the progress bar's) can still take them, the parent's handlers only note them meanwhile
_POOL_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _note_signals(came: list[int]) -> dict[int, Any]:
    import threading

    if threading.current_thread() is not threading.main_thread():  # handlers are set there only
        return {}
    return {s: signal.signal(s, lambda signum, frame: came.append(signum)) for s in _POOL_SIGNALS}


def _fork_pool(context: Any, jobs: int) -> tuple[Any, int | None]:
    """``jobs`` forked workers, with SIGTERM/SIGINT held while they fork (see _POOL_SIGNALS),
    and the signal that came meanwhile, if any: the caller raises it once it holds the pool,
    so that stopping terminates the workers."""
    came: list[int] = []
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _POOL_SIGNALS)
    handlers = _note_signals(came)
    try:
        pool = context.Pool(jobs, initializer=_worker_start, initargs=(os.getpid(),))
    finally:
        # unblock first: a signal held pending (the pool's threads started with it blocked) is
        # noted by our handler, not raised here, where the caller would never get the pool
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return pool, (came[0] if came else None)


def _predict_chunk(issues: list[Issue]) -> list[Prediction]:
    assert _WORKER_ENS is not None
    return _WORKER_ENS.predict(issues)


@contextmanager
def parallel_predictor(ens: Ensemble, *, jobs: int = 2, chunk: int = 250
                       ) -> Iterator[Callable[[Sequence[Issue]], list[Prediction]]]:
    """A function that does ``ens.predict`` over ``jobs`` worker processes, the same workers
    for every call in the block (forked once: the fitted model is shared, not copied, and what
    a worker warms up, such as RE2's lazily built DFAs, serves every later call). Falls back to
    one process where fork is unavailable or the LLM is used (its cache and connection belong
    to this process)."""
    import multiprocessing as mp

    if jobs <= 1 or ens.llm is not None or "fork" not in mp.get_all_start_methods():
        yield lambda issues: ens.predict(list(issues))
        return
    global _WORKER_ENS
    pool = None

    def predict(issues: Sequence[Issue]) -> list[Prediction]:
        nonlocal pool
        global _WORKER_ENS
        issues = list(issues)
        if len(issues) <= chunk:  # not worth a round trip (nor, on the first call, a fork)
            return ens.predict(issues)
        if pool is None:
            _WORKER_ENS = ens  # what the forked workers find
            pool, pending = _fork_pool(mp.get_context("fork"), jobs)
            if pending is not None:  # delivered now, with the pool known (terminated on the way out)
                signal.raise_signal(pending)
        parts = pool.map(_predict_chunk, [issues[i : i + chunk] for i in range(0, len(issues), chunk)])
        return [p for part in parts for p in part]

    try:
        yield predict
    finally:
        if pool is not None:
            pool.terminate()  # as Pool's own `with` does
        _WORKER_ENS = None


def predict_parallel(ens: Ensemble, issues: Sequence[Issue], *, jobs: int = 2, chunk: int = 250
                     ) -> list[Prediction]:
    """``ens.predict`` over ``jobs`` processes (see :func:`parallel_predictor`; an input of one
    chunk or less is predicted here, without forking)."""
    with parallel_predictor(ens, jobs=jobs, chunk=chunk) as predict:
        return predict(issues)


# -- store: which issues, labels in and out -----------------------------------------------
def models_learned_from(ens: Ensemble) -> set[tuple[str, int]]:
    """Issues whose human labels the ensemble's supervised model, or a donor whose model it
    uses (for a dimension its own supervised model does not answer), learned from."""
    seen = set(ens.supervised.trained_on) if ens.supervised is not None else set()
    for donor in ens.lending_donors():
        if donor.classifier.supervised is not None:
            seen |= donor.classifier.supervised.trained_on
    return seen


def failure_issues(store: Store, *, all_issues: bool = False) -> list[Issue]:
    """The issues ``classify`` labels: the filter stage's failure reports when it has run (the
    view ``failure_reports``: judged ``failure`` and kept by the study's rules; else its
    ``issue-kind`` labels), else every issue with text."""
    issues = [i for i in store.iter_issues() if has_text(i)]
    if all_issues:
        return issues
    rows = []
    if _filter_has_run(store):
        rows = store.query("SELECT repo, number, 'failure' AS kind FROM failure_reports")
        if not rows:  # the filter ran and its rules keep no issue: nothing to label
            return []
    if not rows:  # no filter table: the issue-kind labels (any source), if any
        rows = store.query("SELECT repo, issue_number AS number, value AS kind FROM labels "
                           "WHERE taxonomy = 'issue-kind' AND dimension = 'kind'")
    if not rows:
        return issues
    failures = {(r["repo"], r["number"]) for r in rows if r["kind"] == "failure"}
    return [i for i in issues if i.key in failures]


def human_labels(store: Store, taxonomy: str, *, sources: Sequence[str] | None = None
                 ) -> dict[tuple[str, int], dict[str, list[str]]]:
    """Human labels of a taxonomy, per issue and dimension (all human sources merged); a
    category with children stored at the leaf dimension too (mapped labels) at its own level."""
    spec = taxonomy_spec(taxonomy)
    out: dict[tuple[str, int], dict[str, list[str]]] = {}
    for lab in store.iter_labels(taxonomy, source_kind="human"):
        if sources and lab.source not in sources:
            continue
        dims = out.setdefault((lab.repo, lab.issue_number), {})
        vals = dims.setdefault(lab.dimension, [])
        if lab.value not in vals:
            vals.append(lab.value)
    return {key: at_own_level(spec, dims) for key, dims in out.items()}


def machine_labels(store: Store, taxonomy: str, *, source: str = SOURCE
                   ) -> dict[tuple[str, int], dict[str, list[str]]]:
    return machine_labels_with_confidence(store, taxonomy, source=source)[0]


def machine_labels_with_confidence(store: Store, taxonomy: str, *, source: str = SOURCE
                                   ) -> tuple[dict[tuple[str, int], dict[str, list[str]]],
                                              dict[tuple[str, int], dict[str, float]]]:
    """The store's machine labels and, per issue and dimension, the confidence of its first
    label (the one eval scores)."""
    out: dict[tuple[str, int], dict[str, list[str]]] = {}
    conf: dict[tuple[str, int], dict[str, float]] = {}
    for lab in store.iter_labels(taxonomy, source=source):
        if lab.source_kind == "human":
            continue
        key = (lab.repo, lab.issue_number)
        out.setdefault(key, {}).setdefault(lab.dimension, []).append(lab.value)
        if lab.confidence is not None:
            conf.setdefault(key, {}).setdefault(lab.dimension, float(lab.confidence))
    return out, conf


def _labels_of(pred: Prediction, run_id: int | None) -> list[Label]:
    out = []
    for dim, values in pred.labels.items():
        for v in values:
            out.append(Label(repo=pred.repo, issue_number=pred.number, taxonomy=pred.taxonomy,
                             dimension=dim, value=v, source_kind=pred.source_kind.get(dim, "model"),
                             source=SOURCE, confidence=pred.confidence.get(dim),
                             evidence=pred.evidence.get(dim) or [], run_id=run_id))
    return out


@dataclass
class ClassifyResult:
    run_id: int
    version: str
    candidates: int
    skipped: int
    labeled: int
    abstained: dict[str, int]
    by_source_kind: dict[str, int]
    # issues with text the filter has not judged yet (an interrupted `filter`, issues collected
    # since): not candidates until it has, so a run now leaves them out
    unfiltered: int = 0
    # issues the LLM failed on (their offline labels are stored; the next run asks again)
    llm_failed: int = 0
    llm_errors: list[str] = field(default_factory=list)  # the first 20
    # classified issues that got no label in any dimension (every dimension abstained)
    no_label: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _filter_has_run(store: Store) -> bool:
    """Whether the filter stage has judged any issue (its table exists and holds a row)."""
    has_table = store.query("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'issue_kinds'")
    return bool(has_table and store.query("SELECT 1 AS x FROM issue_kinds LIMIT 1"))


def unfiltered_issues(store: Store) -> int:
    """Issues with text that a filter run has not judged, when the filter has run at all
    (before any filter run every issue is a candidate, so none is left out)."""
    if not _filter_has_run(store):
        return 0
    return store.query(
        "SELECT COUNT(*) AS n FROM issues i WHERE i.is_reference = 0 AND i.is_pull_request = 0 "
        "AND (COALESCE(i.title, '') != '' OR COALESCE(i.body, '') != '') AND NOT EXISTS "
        "(SELECT 1 FROM issue_kinds k WHERE k.repo = i.repo AND k.number = i.number)")[0]["n"]


def classify_store(
    store: Store,
    taxonomy: str,
    *,
    llm: Any = None,
    llm_below: float = 0.6,
    threshold: float = DEFAULT_THRESHOLD,
    all_issues: bool = False,
    limit: int | None = None,
    batch: int = 200,
    progress: Callable[[int, int], None] | None = None,
    supervised: SupervisedModel | None = None,
    use_shipped: bool = True,
    min_kappa: float | None = None,
    use_domains: bool = True,
) -> ClassifyResult:
    """Label every failure report in the store. Resumable: issues this classifier version
    already labeled are skipped; each batch is written in one transaction."""
    spec = taxonomy_spec(taxonomy)
    candidates = failure_issues(store, all_issues=all_issues)
    ens = build_classifier(spec.name, store=store, fit_on=candidates, llm=llm, threshold=threshold,
                           llm_below=llm_below, supervised=supervised, use_shipped=use_shipped,
                           use_domains=use_domains)
    version = ens.version
    if min_kappa is not None:
        ens.threshold = calibrated_thresholds(ens, min_kappa, threshold)
        version += f"+min-kappa-{min_kappa:g}"  # other labels than a plain run: not "already done"
    done = {(r["repo"], r["number"]) for r in store.query(
        "SELECT repo, number FROM classify_done WHERE taxonomy = ? AND source = ? AND version = ?",
        (spec.name, SOURCE, version))}
    todo = [i for i in candidates if i.key not in done]
    if limit is not None:
        todo = todo[:limit]
    params = {"taxonomy": spec.name, "version": version,
              "threshold": ens.threshold.as_dict() if isinstance(ens.threshold, Thresholds) else threshold,
              "min_kappa": min_kappa,
              "llm": getattr(llm, "name", None), "all_issues": all_issues}
    abstained: dict[str, int] = {d: 0 for d in spec.output_dims}
    no_label = 0
    kinds: dict[str, int] = {}
    errors: list[str] = []
    llm_failed: set[tuple[str, int]] = set()

    def on_llm_error(issue: Issue, exc: Exception) -> None:
        llm_failed.add(issue.key)
        errors.append(f"{issue.repo}#{issue.number}: {exc}")

    seen_by_models = models_learned_from(ens)
    with store.run("classify", params) as run:
        if progress:
            progress(0, len(todo))
        for start in range(0, len(todo), batch):
            part = todo[start : start + batch]
            preds = ens.predict(part, on_llm_error=on_llm_error)
            labels = [lab for p in preds for lab in _labels_of(p, run.id)]
            if seen_by_models:
                # issues whose human labels the model learned from: eval reports them apart
                run.summary.setdefault("learned_from", []).extend(
                    [i.repo, i.number] for i in part if i.key in seen_by_models)
            for p in preds:
                for d in spec.output_dims:
                    abstained[d] += not p.labels.get(d)
                no_label += not any(p.labels.values())
                for k in p.source_kind.values():
                    kinds[k] = kinds.get(k, 0) + 1
            with store.transaction() as conn:
                conn.executemany(
                    "DELETE FROM labels WHERE taxonomy = ? AND source = ? AND repo = ? AND issue_number = ?",
                    [(spec.name, SOURCE, i.repo, i.number) for i in part])
                store.add_labels(labels)
                # an issue the LLM failed on is not done by this version (LLM included): the
                # next run asks again instead of skipping it with the offline labels only
                conn.executemany(
                    "INSERT OR REPLACE INTO classify_done VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(spec.name, SOURCE, i.repo, i.number, version, run.id, now_iso()) for i in part
                     if i.key not in llm_failed])
                if "learned_from" in run.summary:  # with the labels: a killed run keeps it true
                    store.save_run_summary(run.id, run.summary)
            if progress:
                progress(len(part), len(todo))
        run.summary.update({"candidates": len(candidates), "skipped": len(candidates) - len(todo)
                            if limit is None else len(done), "labeled": len(todo),
                            "abstained": abstained, "no_label": no_label, "llm_failed": len(llm_failed),
                            "llm_errors": errors[:20]})
    return ClassifyResult(run_id=run.id, version=version, candidates=len(candidates),
                          skipped=len(done & {i.key for i in candidates}), labeled=len(todo),
                          abstained=abstained, by_source_kind=kinds,
                          unfiltered=0 if all_issues else unfiltered_issues(store),
                          llm_failed=len(llm_failed), llm_errors=errors[:20], no_label=no_label)


# -- training -------------------------------------------------------------------------------
@dataclass
class TrainResult:
    model_id: int
    version: str
    n_human: int
    n_weak: int
    n_issues: int
    supervised_version: str | None = None  # also fitted with >= MIN_LABELS labeled issues

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


MIN_CALIBRATION_LABELS = 100  # train_store calibrates the supervised model from this many


def calibrated_thresholds(ens: Ensemble, min_kappa: float, default: float) -> Thresholds:
    """Thresholds that keep, per dimension, only labels whose confidence the supervised
    model's calibration says agree with people at Cohen's kappa >= ``min_kappa``."""
    if ens.supervised is None:
        raise BadInputError(f"--min-kappa needs a supervised model of {ens.spec.name} with its calibration "
                            "(the shipped one, `train`, or --model); "
                            + (f"the {', '.join(d.name for d in ens.donors)} model lent for some dimensions "
                               f"was not calibrated on {ens.spec.name} labels" if ens.donors
                               else "--no-shipped left the shipped one out" if shipped_model(ens.spec.name)
                               else f"none is shipped for {ens.spec.name}"))
    try:
        return ens.supervised.thresholds(min_kappa, default=default)
    except BugAtlasError as exc:
        raise BadInputError(f"--min-kappa: {exc}") from exc


def train_store(store: Store, taxonomy: str, *, min_labels: int = 5,
                step: Callable[[str], None] | None = None) -> TrainResult:
    """Fit the text model on the human labels in the store (issues with text), plus the
    rules' weak labels on the other failure reports, and (with enough labels) the supervised
    model on the labeled issues alone; save them for later ``classify`` runs. ``step`` hears
    each stage of the work (the supervised model's calibration is five more fits)."""
    spec = taxonomy_spec(taxonomy)
    gold = human_labels(store, spec.name)
    issues = failure_issues(store)
    by_key = {i.key: i for i in issues}
    for key in gold:  # a human-labeled issue is used even if the filter did not keep it
        if key not in by_key:
            issue = store.get_issue(*key)
            if issue is not None and has_text(issue):
                by_key[key] = issue
    labeled = [k for k in gold if k in by_key]
    if len(labeled) < min_labels:
        raise BugAtlasError(
            f"taxonomy {spec.name}: {len(labeled)} issues with text have human labels; "
            f"train needs at least {min_labels} (add labels with the annotate stage or Store.add_labels)")
    items = list(by_key.values())
    labels = [gold.get(i.key) for i in items]
    with store.run("train", {"taxonomy": spec.name, "n_human": len(labeled)}) as run:
        if step:
            step(f"text model on {len(items)} issues")
        model = TextModel(spec.name, rules=RuleClassifier(spec.name))
        model.fit(items, labels)
        rules, model.rules = model.rules, None  # the rules are rebuilt from data at load time
        blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        model.rules = rules
        sup = None
        if len(labeled) >= MIN_LABELS:
            sup_issues, sup_gold = [by_key[k] for k in labeled], [gold[k] for k in labeled]
            if step:
                step(f"supervised model on {len(labeled)} labeled issues")
            sup = SupervisedModel(spec.name, rules=model.rules).fit(sup_issues, sup_gold)
            if len(labeled) >= MIN_CALIBRATION_LABELS:  # fewer: too few per fold to trust the table
                sup.calibrate(sup_issues, sup_gold, step=step)
        insert = ("INSERT INTO classify_models (taxonomy, version, created_at, n_human, n_weak, params, run_id, blob) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        with store.transaction() as conn:  # both models or neither
            cur = conn.execute(insert, (
                spec.name, model.version, now_iso(), model.n_human, model.n_weak,
                orjson.dumps({"alpha": model.alpha, "human_weight": model.human_weight}).decode(), run.id, blob))
            model_id = cur.lastrowid
            if sup is not None:
                conn.execute(insert, (spec.name, sup.version, now_iso(), sup.n_human, 0,
                                      orjson.dumps({"C": sup.C}).decode(), run.id, sup.dumps()))
        run.summary.update({"model_id": model_id, "n_human": model.n_human, "n_weak": model.n_weak,
                            "supervised": sup.version if sup else None})
    return TrainResult(model_id=int(model_id), version=model.version, n_human=model.n_human,
                       n_weak=model.n_weak, n_issues=len(items),
                       supervised_version=sup.version if sup else None)


def load_trained(store: Store, taxonomy: str, *, kind: type = TextModel) -> Any:
    """The newest model of ``kind`` (TextModel or SupervisedModel) ``train`` saved for this
    taxonomy, or None. The store is the user's own file: unpickling it is as trusted as the
    study itself."""
    supervised = kind is SupervisedModel
    row = store.conn.execute(
        f"SELECT blob FROM classify_models WHERE taxonomy = ? AND version {'' if supervised else 'NOT'} "
        "LIKE 'supervised-%' ORDER BY id DESC LIMIT 1", (taxonomy,)).fetchone()
    if row is None:
        return None
    if supervised:
        return SupervisedModel.loads(row[0], f"{store.path}: classify_models")
    model = pickle.loads(row[0])
    if not isinstance(model, TextModel):
        raise BugAtlasError(f"{store.path}: classify_models holds something that is not a text model")
    check_same_codebook(model.spec, f"{store.path}: classify_models")
    return model


# -- suggest ---------------------------------------------------------------------------------
def suggest(store: Store, taxonomy: str, n: int = 50, *, dims: Sequence[str] | None = None
            ) -> list[dict[str, Any]]:
    """Uncertainty sampling: the unlabeled failure reports whose labels the classifier is
    least sure of (smallest top-1/top-2 margin, averaged over ``dims``), best first."""
    spec = taxonomy_spec(taxonomy)
    labeled = set(human_labels(store, spec.name))
    pool = [i for i in failure_issues(store) if i.key not in labeled]
    if not pool:
        return []
    ens = build_classifier(spec.name, store=store, fit_on=pool)
    dims = list(dims or [d for d in ("symptom", "root_cause") if d in spec.dims] or list(spec.dims))
    out = []
    for issue, pred in zip(pool, ens.predict(pool), strict=True):
        margins = {d: round(top_margin(spec, d, pred), 4) for d in dims}
        out.append({"repo": issue.repo, "number": issue.number, "title": issue.title,
                    "uncertainty": round(1 - sum(margins.values()) / len(margins), 4),
                    "margins": margins, "labels": {d: deepest_labels(spec, d, pred) for d in dims}})
    out.sort(key=lambda r: (-r["uncertainty"], r["repo"], r["number"]))
    return out[:n]


def top_margin(spec: TaxonomySpec, dim: str, pred: Prediction) -> float:
    """Top-1 minus top-2 probability at the dimension's top level, the one decide() commits to
    first (yu2026's symptom category, liu2025's symptom and root-cause group); small = unsure."""
    sc = pred.scores.get(dim)
    if sc is None:
        return 0.0
    probs = sorted(level_probs(spec, dim, sc, spec.dims[dim].out_dims[0]).values(), reverse=True) + [0.0, 0.0]
    return probs[0] - probs[1]


def deepest_labels(spec: TaxonomySpec, dim: str, pred: Prediction) -> list[str]:
    """The labels of the deepest level of ``dim`` that has any (a yu2026 issue labeled only at
    its symptom category shows that category, not an empty leaf)."""
    for out_dim in reversed(spec.dims[dim].out_dims):
        if pred.labels.get(out_dim):
            return list(pred.labels[out_dim])
    return []


# -- eval ------------------------------------------------------------------------------------
def _records_map(records: Iterable[LabelRecord]) -> dict[tuple[str, int], dict[str, list[str]]]:
    return {r.key: r.labels for r in records}


def eval_labels(
    taxonomy: str,
    *,
    store: Store | None = None,
    gold_file: str | Path | None = None,
    pred_file: str | Path | None = None,
    source: str = SOURCE,
    curve: bool = True,
    folds: int = 5,
) -> tuple[EvalReport, list[dict[str, Any]]]:
    """Machine labels (``pred_file``, else the store's classify labels) against human labels
    (``gold_file``, else the store's human labels); plus the learning curve when the gold
    issues' texts are available (in the store)."""
    spec = taxonomy_spec(taxonomy)
    if gold_file is not None:
        gold = {k: at_own_level(spec, v) for k, v in
                _records_map(read_label_records(gold_file, taxonomy=spec.name)).items()}
    elif store is not None:
        gold = human_labels(store, spec.name)
    else:
        raise BadInputError("eval needs human labels: --gold FILE or a store with human labels")
    if not gold:
        raise BadInputError(f"--gold {gold_file}: no labels in it" if gold_file is not None else
                            f"{store.path if store is not None else 'the store'}: no human {spec.name} labels "
                            "to compare with (add them with the annotate stage, `gold`, or Store.add_labels)")
    if pred_file is not None:
        records = read_label_records(pred_file, taxonomy=spec.name)
        pred = _records_map(records)
        confidence = {r.key: r.confidence for r in records if r.confidence}
    elif store is not None:
        pred, confidence = machine_labels_with_confidence(store, spec.name, source=source)
    else:
        raise BadInputError("eval needs machine labels: --pred FILE or a store that `classify` has labeled")
    _check_names(spec, gold, "gold")
    report = evaluate(spec, gold, pred, confidence=confidence or None)
    learned = learned_from(store, spec.name, source=source) if pred_file is None and store is not None else set()
    seen = {k for k in gold if k in learned and k in pred}
    if pred_file is not None:
        # the shipped model, and another taxonomy's shipped model that lends through a mapping
        # (liu2025's symptoms and root-cause groups in a yu2026 run)
        shipped = models_learned_from(Ensemble(spec.name, supervised=shipped_model(spec.name),
                                               donors=donors_for(spec.name)))
        report.shipped_learned = sum(1 for k in gold if k in pred and k in shipped)
    if seen:
        report.in_sample = len(seen)
        unseen_gold = {k: v for k, v in gold.items() if k not in seen}
        report.unseen = evaluate(spec, unseen_gold, {k: v for k, v in pred.items() if k not in seen},
                                 confidence=confidence or None) if unseen_gold else None
    rows: list[dict[str, Any]] = []
    if curve and store is not None:
        items, golds = [], []
        for key, labs in gold.items():
            issue = store.get_issue(*key)
            if issue is not None and has_text(issue):
                items.append(issue)
                golds.append(labs)
        if len(items) >= 2 * folds:
            background = [i for i in failure_issues(store) if i.key not in gold][:3000]
            rows = learning_curve(spec, items, golds, _curve_fitter(spec, background),
                                  folds=folds, dims=[d for d in report.dimensions])
    return report, rows


def learned_from(store: Store, taxonomy: str, *, source: str = SOURCE) -> set[tuple[str, int]]:
    """Issues whose stored machine labels came from a supervised model that had learned from
    the human labels of that same issue (recorded by each classify run)."""
    machine = ("FROM labels WHERE taxonomy = ? AND source = ? AND source_kind != 'human' "
               "AND run_id IS NOT NULL")
    seen_by_run = {
        r["id"]: {(str(k[0]), int(k[1])) for k in orjson.loads(r["summary"] or "{}").get("learned_from") or []}
        for r in store.query(f"SELECT id, summary FROM runs WHERE id IN (SELECT run_id {machine})",
                             (taxonomy, source))}  # fmt: skip
    if not any(seen_by_run.values()):
        return set()
    rows = store.query(f"SELECT DISTINCT repo, issue_number, run_id {machine}", (taxonomy, source))
    return {(r["repo"], r["issue_number"]) for r in rows
            if (r["repo"], r["issue_number"]) in seen_by_run.get(r["run_id"], set())}


def _curve_fitter(spec: TaxonomySpec, background: Sequence[Issue]):
    """What ``train`` fits, on a subset of the labels (never the shipped model: it may have
    seen the test issues)."""
    def fit_predict(train_items, train_gold, test_items):
        rules = RuleClassifier(spec.name)
        model = TextModel(spec.name, rules=rules)
        model.fit(list(train_items) + list(background), list(train_gold) + [None] * len(background))
        labeled = [(i, g) for i, g in zip(train_items, train_gold, strict=True) if g]
        sup = (SupervisedModel(spec.name, rules=rules).fit([i for i, _ in labeled], [g for _, g in labeled])
               if len(labeled) >= MIN_LABELS else None)
        ens = Ensemble(spec.name, rules=rules, model=model, supervised=sup)
        return [p.labels for p in ens.predict(test_items)]
    return fit_predict


def _check_names(spec: TaxonomySpec, labels: dict, what: str) -> None:
    for key, dims in labels.items():
        for dim, values in dims.items():
            check_names(spec, dim, values, f"{what} labels of {key[0]}#{key[1]}")
