"""Judging issues: stage 1 rules + stage 2 classifier, over files or the study store."""

from __future__ import annotations

import ast
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import orjson

from bugatlas.errors import BadInputError
from bugatlas.filter.model import IssueKindModel, default_model_path, load_model
from bugatlas.filter.rules import FilterRules, load_rules
from bugatlas.filter.text import maintainer_kind, strip_template_prefix

TAXONOMY = "issue-kind"
DIMENSION = "kind"


@dataclass
class IssueKind:
    repo: str
    number: int
    kind: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)
    rule_pass: bool | None = None
    keywords: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    maintainer_kind: str | None = None

    def batch_record(self, explain: bool = False) -> dict[str, Any]:
        """The stable batch-interface object (plus the reasons with ``explain``)."""
        d: dict[str, Any] = {"repo": self.repo, "number": self.number, "kind": self.kind,
                             "confidence": self.confidence}  # fmt: skip
        if explain:
            d.update(probabilities=self.probabilities, rule_pass=self.rule_pass, keywords=self.keywords,
                     rule_reasons=self.reasons, maintainer_kind=self.maintainer_kind)  # fmt: skip
        return d


def model_id(path: Path) -> str:
    h = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return f"{path.name.split('.')[0]}@{h}"


def _get(issue: Any, key: str) -> Any:
    return issue.get(key) if isinstance(issue, dict) else getattr(issue, key, None)


def _labels(value: Any) -> list[str]:
    """Label names from a list of names, a list of GitHub label objects, or a list's repr."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value) if value.strip().startswith("[") else [value]
        except (ValueError, SyntaxError):
            return [value]
    return [str(v.get("name")) if isinstance(v, dict) else str(v) for v in value]


def judge(issues: Iterable[Any], *, model: IssueKindModel | None = None, rules: FilterRules | None = None,
          batch_size: int = 512) -> Iterator[IssueKind]:
    """Judge issues (dicts in the corpus format or Issue records) in batches.

    The classifier reads only ``title`` and ``body``; ``labels`` and ``state`` feed the study's
    stage-1 rules and the ``maintainer_kind`` column kept for evaluation."""
    model = model or load_model()
    rules = rules or load_rules()
    batch: list[Any] = []

    def flush() -> Iterator[IssueKind]:
        preds = model.predict([_get(i, "title") for i in batch], [_get(i, "body") for i in batch])
        for issue, p in zip(batch, preds, strict=True):
            labels = _labels(_get(issue, "labels"))
            r = rules.check(_get(issue, "title"), _get(issue, "body"), labels, _get(issue, "state"))
            if not (str(_get(issue, "title") or "").strip() or str(_get(issue, "body") or "").strip()):
                # nothing reported (the model's base rate said "feature"): not a failure report
                p = replace(p, kind="other", confidence=1.0, probabilities={"other": 1.0})
            yield IssueKind(repo=str(_get(issue, "repo")).lower(), number=int(_get(issue, "number")),
                            kind=p.kind, confidence=p.confidence, probabilities=p.probabilities,
                            rule_pass=r.passed, keywords=r.keywords, reasons=r.reasons,
                            maintainer_kind=maintainer_kind(labels))  # fmt: skip
        batch.clear()

    for issue in issues:
        if _get(issue, "repo") is None or _get(issue, "number") is None:
            raise BadInputError(f"issue without repo/number: {str(issue)[:120]}")
        batch.append(issue)
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


def read_jsonl(path: Path, option: str = "--input") -> Iterator[dict[str, Any]]:
    """Issues from a JSONL file (gzip'd if it ends in .gz); one bad line fails with its number."""
    from bugatlas.importers.base import iter_jsonl_objects

    for loc, rec in iter_jsonl_objects(path, require=("repo", "number"), option=option):
        problem = _field_problem(rec)
        if problem:
            raise BadInputError(f"{option}: {path}: {loc}: {problem}")
        yield rec


def _field_problem(rec: dict[str, Any]) -> str | None:
    """What is wrong with a batch record's fields (None when the pipeline can judge it)."""
    number = rec["number"]
    if isinstance(number, str) and number.strip().isdigit():  # "12" from a CSV-born dump: fine
        number = int(number)
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        return f"field 'number': expected a positive integer, got {number!r}"
    if not isinstance(rec["repo"], str) or not rec["repo"].strip():
        return f"field 'repo': expected OWNER/NAME, got {rec['repo']!r}"
    for key in ("title", "body", "state"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return f"field {key!r}: expected a string, got {type(rec[key]).__name__}"
    if rec.get("labels") is not None and not isinstance(rec["labels"], list | str):
        return f"field 'labels': expected a list of names, got {type(rec['labels']).__name__}"
    return None


def filter_file(input: Path, output: IO[bytes], *, model_path: Path | None = None, rules: str | None = None,
                explain: bool = False, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """``--input issues.jsonl --output kinds.jsonl``: never touches the store."""
    model = load_model(model_path)
    counts: Counter[str] = Counter()
    n = 0
    for k in judge(read_jsonl(input), model=model, rules=load_rules(rules)):
        output.write(orjson.dumps(k.batch_record(explain)) + b"\n")
        counts[k.kind] += 1
        n += 1
        if progress:
            progress(n)
    if n == 0:
        raise BadInputError(f"--input: {input}: no issues in the file (empty)")
    return {"issues": n, "kinds": dict(counts)}


def filter_store(store: Any, *, model_path: Path | None = None, rules: str | None = None,
                 repos: list[str] | None = None, redo: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Judge every issue with text in the store (not pull requests); writes ``issue_kinds`` and ``issue-kind`` labels.

    Issues already judged by the same model and rules are skipped unless ``redo`` (a re-run
    resumes where an interrupted one stopped). Each batch is written in one transaction."""
    from bugatlas.store import Label

    mpath = Path(model_path) if model_path else default_model_path()
    model = load_model(mpath)
    rules_obj = load_rules(rules)
    mid = model_id(mpath)
    source = f"filter:{mid}"
    done: set[tuple[str, int]] = set()
    if not redo:
        done = {(r["repo"], r["number"]) for r in store.query(
            "SELECT repo, number FROM issue_kinds WHERE model = ? AND rules = ?", (mid, rules_obj.key))}  # fmt: skip
    # A REST dump of /issues holds pull requests too: they are not issue reports.
    candidates = [i for i in store.iter_issues(repos=repos)
                  if not i.is_reference and not i.is_pull_request and (i.title or i.body)]  # fmt: skip
    todo = [i for i in candidates if (i.repo, i.number) not in done]
    counts: Counter[str] = Counter()
    rule_pass = 0
    with store.run("filter", {"model": mid, "rules": rules_obj.key, "redo": redo, "repos": repos}) as run:
        from bugatlas.store.store import now_iso

        buf: list[IssueKind] = []

        def write() -> None:
            created = now_iso()
            with store.transaction():
                store.conn.executemany(
                    """INSERT OR REPLACE INTO issue_kinds (repo, number, kind, confidence, probabilities,
                           rule_pass, rule_evidence, rules, maintainer_kind, model, run_id, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [(k.repo, k.number, k.kind, k.confidence, orjson.dumps(k.probabilities).decode(),
                      None if k.rule_pass is None else int(k.rule_pass),
                      orjson.dumps({"keywords": k.keywords, "reasons": k.reasons}).decode(),
                      rules_obj.key, k.maintainer_kind, mid, run.id, created) for k in buf])  # fmt: skip
                # one judgment per issue: a retrained model's label replaces the older model's
                store.conn.executemany(
                    "DELETE FROM labels WHERE taxonomy = ? AND source_kind = 'model' AND source LIKE 'filter:%' "
                    "AND repo = ? AND issue_number = ?", [(TAXONOMY, k.repo, k.number) for k in buf])  # fmt: skip
                store.add_labels([
                    Label(repo=k.repo, issue_number=k.number, taxonomy=TAXONOMY, dimension=DIMENSION,
                          value=k.kind, source_kind="model", source=source, confidence=k.confidence,
                          evidence=[f"title: {strip_template_prefix(i.title)[:160]}"] + [f"keyword: {w}" for w in k.keywords],
                          run_id=run.id)
                    for k, i in zip(buf, issues_buf, strict=True)])  # fmt: skip
            buf.clear()
            issues_buf.clear()

        issues_buf: list[Any] = []
        for n, (issue, k) in enumerate(zip(todo, judge(todo, model=model, rules=rules_obj), strict=True), 1):
            buf.append(k)
            issues_buf.append(issue)
            counts[k.kind] += 1
            rule_pass += bool(k.rule_pass)
            if len(buf) >= 500:
                write()
            if progress:
                progress(n, len(todo))
        if buf:
            write()
        # what later stages take (the failure_reports view): judged failure AND kept by the rules,
        # over the whole store; rule_pass counts judged issues of any kind the rules keep
        reports = store.query("SELECT COUNT(*) AS n FROM failure_reports")[0]["n"]
        summary = {"judged": len(todo), "skipped_already_judged": len(candidates) - len(todo), "kinds": dict(counts),
                   "rule_pass": rule_pass, "failure_reports": reports, "model": mid, "rules": rules_obj.name}  # fmt: skip
        run.summary = summary
    return summary
