"""Annotators' queues and their append-only annotations.

Every save inserts a row; nothing is overwritten, so two browser tabs saving the same issue
at once both land in the history and the later one is the annotator's current answer.
"""

from __future__ import annotations

from typing import Any

import orjson

from bugatlas.annotate import codebook as cbm
from bugatlas.annotate.sampling import Sample
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.store import Store
from bugatlas.store.store import now_iso

STATUSES = ("draft", "done")


class ForbiddenError(BugAtlasError):
    """Somebody asked for work that is not theirs (blindness and integrity)."""

    exit_code = 3


def queue_for(store: Store, sample: Sample, annotator: str) -> list[dict[str, Any]]:
    """The annotator's own assignments in queue order, with the status of their latest save."""
    rows = store.query(
        """SELECT a.id AS assignment_id, a.round, a.position, i.id AS item_id, i.repo,
                  i.issue_number, iss.title,
                  (SELECT status FROM ann_annotations n WHERE n.assignment_id = a.id
                   ORDER BY n.id DESC LIMIT 1) AS status,
                  (SELECT unsure FROM ann_annotations n WHERE n.assignment_id = a.id
                   ORDER BY n.id DESC LIMIT 1) AS unsure
           FROM ann_assignments a JOIN ann_items i ON i.id = a.item_id
           LEFT JOIN issues iss ON iss.repo = i.repo AND iss.number = i.issue_number
           WHERE i.sample_id = ? AND a.annotator = ?
           ORDER BY a.round = 'main', a.position""",
        (sample.id, annotator),
    )
    for r in rows:
        r["status"] = r["status"] or "todo"
        r["unsure"] = bool(r["unsure"])
    return rows


def own_assignment(store: Store, sample: Sample, assignment_id: int, annotator: str) -> dict[str, Any]:
    """The assignment, if it belongs to ``annotator`` in this sample; ForbiddenError otherwise
    (the same error whether it exists or not, so ids of others' work leak nothing)."""
    rows = store.query(
        "SELECT a.id AS assignment_id, a.annotator, a.round, a.position, i.id AS item_id, i.repo, "
        "i.issue_number FROM ann_assignments a JOIN ann_items i ON i.id = a.item_id "
        "WHERE a.id = ? AND i.sample_id = ?", (assignment_id, sample.id))
    if not rows or rows[0]["annotator"] != annotator:
        raise ForbiddenError(f"assignment {assignment_id} is not in {annotator}'s queue")
    return rows[0]


def clean_labels(cb: Any, sample: Sample, labels: dict[str, Any]) -> dict[str, list[str]]:
    """Validate {dimension: value | [values]} against the codebook; names or ids accepted,
    names stored. Single-label dimensions take at most one value."""
    if not isinstance(labels, dict):
        raise BadInputError("labels must be an object {dimension: [category, ...]}")
    out: dict[str, list[str]] = {d: [] for d in sample.dimensions}
    for dim, values in labels.items():
        if dim not in sample.dimensions:
            raise BadInputError(f"dimension {dim!r} is not annotated in sample {sample.name}")
        if values is None or values == "":
            values = []
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadInputError(f"{dim}: values must be category names")
        names = []
        for v in values:
            name = cbm.known_value(cb, dim, v)
            if name is None:
                raise BadInputError(f"{dim}: {v!r} is not a category of {cb.name}")
            if name not in names:
                names.append(name)
        if len(names) > 1 and not cbm.is_multi(cb, dim):
            raise BadInputError(f"{dim}: takes one category, got {len(names)}")
        out[dim] = sorted(names)
    return out


def save_annotation(
    store: Store, sample: Sample, assignment_id: int, annotator: str, labels: dict[str, Any], *,
    note: str = "", unsure: bool = False, status: str = "draft", source: str = "app",
    client: str | None = None, codebook: Any = None,
) -> dict[str, Any]:
    """Append one save of the annotator's labels for an assigned item; returns the saved row."""
    own_assignment(store, sample, assignment_id, annotator)
    if status not in STATUSES:
        raise BadInputError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    cb = cbm.load(codebook or sample)
    clean = clean_labels(cb, sample, labels)
    note = (note or "")[:20000]
    created = now_iso()
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO ann_annotations (assignment_id, labels, note, unsure, status, source, "
            "client, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (assignment_id, orjson.dumps(clean).decode(), note, int(bool(unsure)), status,
             source, (client or "")[:100] or None, created))
    return {"id": int(cur.lastrowid), "assignment_id": assignment_id, "labels": clean,
            "note": note, "unsure": bool(unsure), "status": status, "created_at": created}


def latest_for_assignment(store: Store, assignment_id: int) -> dict[str, Any] | None:
    rows = store.query(
        "SELECT id, labels, note, unsure, status, source, created_at FROM ann_annotations "
        "WHERE assignment_id = ? ORDER BY id DESC LIMIT 1", (assignment_id,))
    if not rows:
        return None
    r = rows[0]
    r["labels"] = orjson.loads(r["labels"])
    r["unsure"] = bool(r["unsure"])
    return r


def history(store: Store, assignment_id: int) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT id, labels, note, unsure, status, source, client, created_at FROM ann_annotations "
        "WHERE assignment_id = ? ORDER BY id", (assignment_id,))
    for r in rows:
        r["labels"] = orjson.loads(r["labels"])
        r["unsure"] = bool(r["unsure"])
    return rows


def latest_annotations(store: Store, sample: Sample, *, round: str | None = None,
                       done_only: bool = False) -> list[dict[str, Any]]:
    """Each annotator's current (latest) annotation of each item, one row per assignment."""
    sql = """SELECT i.id AS item_id, i.repo, i.issue_number, a.annotator, a.round,
                    n.id AS annotation_id, n.labels, n.note, n.unsure, n.status, n.created_at
             FROM ann_annotations n JOIN ann_assignments a ON a.id = n.assignment_id
             JOIN ann_items i ON i.id = a.item_id
             WHERE i.sample_id = ? AND n.id = (SELECT MAX(id) FROM ann_annotations m
                                               WHERE m.assignment_id = a.id)"""
    args: list[Any] = [sample.id]
    if round:
        sql += " AND a.round = ?"
        args.append(round)
    if done_only:
        sql += " AND n.status = 'done'"
    rows = store.query(sql + " ORDER BY i.position, a.annotator", args)
    for r in rows:
        r["labels"] = orjson.loads(r["labels"])
        r["unsure"] = bool(r["unsure"])
    return rows


def progress(store: Store, sample: Sample) -> list[dict[str, Any]]:
    return store.query(
        """SELECT a.annotator, COUNT(*) AS assigned,
                  SUM((SELECT status FROM ann_annotations n WHERE n.assignment_id = a.id
                       ORDER BY n.id DESC LIMIT 1) = 'done') AS done
           FROM ann_assignments a JOIN ann_items i ON i.id = a.item_id
           WHERE i.sample_id = ? GROUP BY a.annotator ORDER BY a.annotator""", (sample.id,))
