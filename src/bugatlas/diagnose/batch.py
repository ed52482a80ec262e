"""Log-only predictions for many issues, in the batch format classify uses:
``{"repo", "number", "taxonomy", "labels": {dimension: value(s)}, "confidence": {dimension: p}}``.

Only the error log in each issue body is read (fenced blocks and traceback lines; never the title
or the prose), so the scores measure what a log alone tells. An issue without a log, or whose
log matches nothing, gets no label for that dimension.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bugatlas.diagnose.parse import ParsedLog, clip_log, extract_log, parse_log
from bugatlas.diagnose.predict import DIMENSIONS, number_as_in_log, predict
from bugatlas.errors import BadInputError

SOURCE = "diagnose-log"


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Batch records of ``--input``; a record :func:`predict_batch` would refuse is refused here,
    naming the file and line."""
    from bugatlas.importers.base import iter_jsonl_objects

    for loc, rec in iter_jsonl_objects(path, require=("repo", "number"), option="--input"):
        problem = _record_problem(rec)
        if problem:
            raise BadInputError(f"--input: {path}: {loc}: {problem}")
        yield rec


def _record_problem(rec: dict[str, Any]) -> str | None:
    try:
        int(rec["number"])
    except (TypeError, ValueError):
        return f"number {rec['number']!r} is not an issue number"
    if rec.get("body") is not None and not isinstance(rec["body"], str):
        return f"body is {type(rec['body']).__name__}, expected text"
    return None


def predict_record(rec: dict[str, Any], codebook: Any) -> dict[str, Any]:
    """One line of the batch format (classify's ``LabelRecord`` shape, plus ``has_log`` and
    ``signature``). Abstained dimensions are written as classify writes them: ``[]`` for a
    multi-label dimension, ``null`` for a single-valued one."""
    # what parse_log reads, for predict too; lines numbered as in the extracted log
    log, head_lines, skipped = clip_log(extract_log(rec.get("body") or ""))
    parsed = parse_log(log) if log else ParsedLog(recognized=False)
    preds = predict(parsed, log, codebook) if log else {}
    number_as_in_log(parsed, preds, head_lines, skipped)
    labels: dict[str, Any] = {}
    confidence: dict[str, float] = {}
    evidence: dict[str, list[str]] = {}
    for dim_name in DIMENSIONS:
        if dim_name not in codebook.dimensions:
            continue
        dim = codebook.dimension(dim_name)
        for level in dim.levels:  # every level of the dimension, abstained unless predicted
            labels[level] = [] if dim.multi_label else None
        pred = preds.get(dim_name)
        if pred is None or pred.category is None:
            continue
        # Hierarchical dimensions: each level in its own store dimension (root_cause_group, …).
        for name in pred.path:
            store_dim = dim.level_name(name)
            labels[store_dim] = [name] if dim.multi_label else name
            confidence[store_dim] = pred.confidence
        evidence[dim_name] = [f"{e.line_no}: {e.text}" for e in pred.evidence[:3]]
    return {
        "repo": rec["repo"], "number": int(rec["number"]), "taxonomy": codebook.name,
        "labels": labels, "confidence": confidence, "evidence": evidence,
        "source": {"classifier": SOURCE, "input": "error log of the body only"},
        "has_log": bool(log), "signature": parsed.signature,
    }  # fmt: skip


def predict_batch(records: Iterable[dict[str, Any]], taxonomy: str, store: Any = None) -> Iterator[dict[str, Any]]:
    """Predict each record. A record without ``body`` (a key list such as the dev-set sample) is
    looked up in ``store``; it must be there."""
    from bugatlas.diagnose.predict import get_codebook

    cb = get_codebook(taxonomy)
    for n, rec in enumerate(records, 1):
        problem = _record_problem(rec)
        if problem:
            raise BadInputError(f"record {n}: {problem}")
        if "body" not in rec:
            issue = store.get_issue(rec["repo"], int(rec["number"])) if store is not None else None
            if issue is None or issue.is_reference:
                where = "the store" if store is not None else "the record (no --db store to look it up)"
                raise BadInputError(f"record {n} ({rec['repo']}#{rec['number']}): no body in {where}")
            rec = {**rec, "title": issue.title, "body": issue.body}
        yield predict_record(rec, cb)
