"""Arbitration and final (gold) labels.

An item is *complete* when every annotator assigned to it has a latest annotation marked
done. A complete item whose annotators (two or more) gave the same categories in every
dimension, and nobody flagged unsure, is *agreed*; one labeled by a single annotator is not
(it keeps that annotator's labels, but is not gold unless an arbitrator decides it); otherwise it waits in the arbitration queue until an
arbitrator records final labels for it. Final labels (append-only in ``ann_final``; the
latest per item and dimension wins) are written to the shared ``labels`` table as the study's
gold labels: ``source_kind="human"``, ``source="gold"``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import orjson

from bugatlas.annotate import codebook as cbm
from bugatlas.annotate.assign import roles
from bugatlas.annotate.sampling import Sample, get_sample, sample_items
from bugatlas.annotate.work import ForbiddenError, clean_labels
from bugatlas.errors import BadInputError
from bugatlas.files import replaced_when_complete
from bugatlas.store import Label, Store
from bugatlas.store.store import now_iso

GOLD_SOURCE = "gold"


def _resolve(store: Store, sample: Sample | str | None) -> Sample:
    return sample if isinstance(sample, Sample) else get_sample(store, sample)


def item_states(store: Store, sample: Sample) -> dict[int, dict[str, Any]]:
    """Per item: assigned annotators, their latest annotations, conflicts, finals."""
    items = {i["id"]: {**i, "assigned": [], "latest": {}, "finals": {}, "arbitrated": set()}
             for i in sample_items(store, sample)}
    for item_id, ann in store.conn.execute(
        "SELECT a.item_id, a.annotator FROM ann_assignments a JOIN ann_items i ON i.id = a.item_id "
        "WHERE i.sample_id = ? ORDER BY a.annotator", (sample.id,)):
        items[item_id]["assigned"].append(ann)
    for item_id, ann, labels, note, unsure, status in store.conn.execute(
        """SELECT a.item_id, a.annotator, n.labels, n.note, n.unsure, n.status
           FROM ann_annotations n JOIN ann_assignments a ON a.id = n.assignment_id
           JOIN ann_items i ON i.id = a.item_id
           WHERE i.sample_id = ? AND n.id = (SELECT MAX(id) FROM ann_annotations m
                                             WHERE m.assignment_id = a.id)""", (sample.id,)):
        items[item_id]["latest"][ann] = {"labels": orjson.loads(labels), "note": note,
                                         "unsure": bool(unsure), "status": status}
    for item_id, dim, labels, method, arb, note in store.conn.execute(
        """SELECT f.item_id, f.dimension, f.labels, f.method, f.arbitrator, f.note FROM ann_final f
           JOIN ann_items i ON i.id = f.item_id WHERE i.sample_id = ? ORDER BY f.id""", (sample.id,)):
        items[item_id]["finals"][dim] = {"labels": orjson.loads(labels), "method": method,
                                         "arbitrator": arb, "note": note}
        if method == "arbitrated":
            items[item_id]["arbitrated"].add(dim)
    for st in items.values():
        done = [a for a in st["assigned"] if st["latest"].get(a, {}).get("status") == "done"]
        st["complete"] = bool(st["assigned"]) and len(done) == len(st["assigned"]) and len(done) >= 1
        st["conflicts"] = [
            d for d in sample.dimensions
            if len({tuple(st["latest"][a]["labels"].get(d, [])) for a in done}) > 1
        ] if st["complete"] else []
        st["flagged"] = st["complete"] and any(st["latest"][a]["unsure"] for a in done)
        needs = st["complete"] and (st["conflicts"] or st["flagged"])
        st["needs_arbitration"] = bool(needs)
        st["resolved"] = bool(needs) and set(sample.dimensions) <= st["arbitrated"]
        st["single"] = st["complete"] and len(done) == 1 and not needs  # nobody to agree with
    return items


def disagreements(store: Store, sample: Sample | str | None = None, *,
                  include_resolved: bool = False) -> list[dict[str, Any]]:
    """The arbitration queue: complete items with conflicting labels or an unsure flag."""
    s = _resolve(store, sample)
    out = []
    for item_id, st in item_states(store, s).items():
        if not st["needs_arbitration"] or (st["resolved"] and not include_resolved):
            continue
        title = store.conn.execute("SELECT title FROM issues WHERE repo = ? AND number = ?",
                                   (st["repo"], st["issue_number"])).fetchone()
        out.append({
            "item_id": item_id, "repo": st["repo"], "issue_number": st["issue_number"],
            "title": title[0] if title else None, "conflicts": st["conflicts"],
            "flagged": st["flagged"], "resolved": st["resolved"],
            "annotations": {a: st["latest"][a] for a in st["assigned"]},
            "final": st["finals"],
        })
    return out


def record_final(store: Store, sample: Sample | str | None, item_id: int, arbitrator: str,
                 labels: dict[str, Any], *, note: str = "", codebook: Any = None) -> dict[str, Any]:
    """An arbitrator's final labels for one item (every dimension of the sample)."""
    s = _resolve(store, sample)
    if arbitrator not in roles(store, s)["arbitrator"]:
        raise ForbiddenError(f"{arbitrator} is not an arbitrator of sample {s.name}")
    st = item_states(store, s).get(item_id)
    if st is None:
        raise BadInputError(f"item {item_id} is not in sample {s.name}")
    if not st["complete"]:
        raise BadInputError(f"item {item_id}: not every annotator has finished it yet")
    cb = cbm.load(codebook or s)
    clean = clean_labels(cb, s, labels)
    now = now_iso()
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO ann_final (item_id, dimension, labels, method, arbitrator, note, created_at) "
            "VALUES (?, ?, ?, 'arbitrated', ?, ?, ?)",
            [(item_id, d, orjson.dumps(clean[d]).decode(), arbitrator, (note or "")[:20000], now)
             for d in s.dimensions])
        finalize(store, s, item_ids=[item_id], codebook=cb)
    return {"item_id": item_id, "labels": clean, "arbitrator": arbitrator}


def finalize(store: Store, sample: Sample | str | None = None, *, item_ids: list[int] | None = None,
             codebook: Any = None) -> dict[str, Any]:
    """Record agreed items' final labels and write every final label as a gold label."""
    s = _resolve(store, sample)
    cb = cbm.load(codebook or s)
    states = item_states(store, s)
    if item_ids is not None:
        states = {i: states[i] for i in item_ids}
    now = now_iso()
    counts = {"items": len(states), "incomplete": 0, "agreed": 0, "arbitrated": 0,
              "awaiting_arbitration": 0, "single_annotator": 0}
    gold: list[Label] = []
    touched: list[tuple[str, int]] = []
    with store.transaction() as conn:
        for item_id, st in states.items():
            touched.append((st["repo"], st["issue_number"]))
            if not st["complete"]:
                counts["incomplete"] += 1
                continue
            if st["needs_arbitration"]:
                if not st["resolved"]:
                    counts["awaiting_arbitration"] += 1
                    continue
                counts["arbitrated"] += 1
                finals = {d: st["finals"][d]["labels"] for d in s.dimensions}
            elif st["single"]:  # one annotator's labels are not an agreement
                counts["single_annotator"] += 1
                continue
            else:
                counts["agreed"] += 1
                first = st["latest"][st["assigned"][0]]["labels"]
                finals = {d: first.get(d, []) for d in s.dimensions}
                for d in s.dimensions:  # history: a new row only when the answer changed
                    prev = st["finals"].get(d)
                    if prev is None or prev["labels"] != finals[d] or prev["method"] != "agreed":
                        conn.execute(
                            "INSERT INTO ann_final (item_id, dimension, labels, method, created_at) "
                            "VALUES (?, ?, ?, 'agreed', ?)",
                            (item_id, d, orjson.dumps(finals[d]).decode(), now))
            pairs = {sd_v for d, values in finals.items() for v in values
                     for sd_v in cbm.store_labels(cb, d, v)}
            gold += [Label(repo=st["repo"], issue_number=st["issue_number"], taxonomy=s.taxonomy,
                           dimension=sd, value=v, source_kind="human", source=GOLD_SOURCE)
                     for sd, v in sorted(pairs)]
        store.replace_labels(s.taxonomy, "human", GOLD_SOURCE, gold, issues=touched)
    counts["gold_labels"] = len(gold)
    return counts


def gold_rows(store: Store, sample: Sample | str | None = None) -> list[dict[str, Any]]:
    """One row per item with final labels: values and how each was decided."""
    s = _resolve(store, sample)
    out = []
    for st in item_states(store, s).values():
        if not st["complete"] or st["single"] or (st["needs_arbitration"] and not st["resolved"]):
            continue
        finals = st["finals"]
        if any(d not in finals for d in s.dimensions):
            continue  # agreed but not finalized yet
        url = store.conn.execute("SELECT html_url FROM issues WHERE repo = ? AND number = ?",
                                 (st["repo"], st["issue_number"])).fetchone()
        out.append({
            "repo": st["repo"], "number": st["issue_number"], "html_url": url[0] if url else None,
            "stratum": st["stratum"], "taxonomy": s.taxonomy,
            "labels": {d: finals[d]["labels"] for d in s.dimensions},
            "method": {d: finals[d]["method"] for d in s.dimensions},
            "arbitrator": next((f["arbitrator"] for f in finals.values() if f["arbitrator"]), None),
            "annotators": {a: st["latest"][a]["labels"] for a in st["assigned"]},
        })
    return out


def export_gold(store: Store, sample: Sample | str | None, path: str | Path) -> int:
    """Write the final labels to ``path`` (.jsonl, .json or .csv); returns the row count."""
    s = _resolve(store, sample)
    rows = gold_rows(store, s)
    path = Path(path)
    try:
        return _write_gold(s, rows, path)
    except OSError as exc:
        raise BadInputError(f"--export {path}: cannot write the file ({exc.strerror})") from exc


def _write_gold(s: Sample, rows: list[dict[str, Any]], path: Path) -> int:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    elif suffix == ".json":
        data = json.dumps(rows, indent=2, ensure_ascii=False).encode("utf-8")
    elif suffix == ".csv":
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["repo", "number", "html_url", "stratum"]
                   + [c for d in s.dimensions for c in (d, f"{d}_method")] + ["arbitrator"])
        for r in rows:
            w.writerow([r["repo"], r["number"], r["html_url"], r["stratum"]]
                       + [c for d in s.dimensions
                          for c in (" | ".join(r["labels"][d]), r["method"][d])]
                       + [r["arbitrator"] or ""])
        data = buf.getvalue().encode("utf-8")
    else:
        raise BadInputError(f"{path}: export format from the extension: .jsonl, .json or .csv")
    with replaced_when_complete(path, option="--export") as out:  # a stopped export leaves the old file
        out.write(data)
    return len(rows)
