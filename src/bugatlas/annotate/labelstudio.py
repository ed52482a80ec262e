"""Label Studio interchange: a sample as tasks + a labeling config (Taxonomy tags), and a Label
Studio JSON export back as annotations, annotator ids preserved.

Formats (Label Studio docs: tasks, export, the Taxonomy tag):
* a task is ``{"data": {...}, "annotations": [...]}``; ``data.text`` is what the config shows;
  we add ``repo``, ``number``, ``url``, ``sample``, ``taxonomy`` so an export finds its issue;
* an annotation is ``{"completed_by", "result": [...], "was_cancelled", "created_at", ...}``;
  a Taxonomy result is ``{"from_name": DIM, "to_name": "text", "type": "taxonomy",
  "value": {"taxonomy": [[root, ..., leaf], ...]}}`` — each selection a root-to-node path;
* the note is a ``TextArea`` named ``note``, the unsure flag a ``Choices`` named ``unsure``.

Annotator identity on import: ``created_username`` (Label Studio writes "email, id"; our
exports write the BugAtlas name) gives the name, else ``completed_by`` (an object's email, or
the numeric user id as a string); ``annotator_map`` renames ids (``{"1": "alice"}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import orjson

from bugatlas.annotate import codebook as cbm
from bugatlas.annotate.assign import check_name, set_roles
from bugatlas.annotate.sampling import Sample, get_sample, sample_items
from bugatlas.annotate.work import clean_labels, latest_annotations
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.files import replaced_when_complete
from bugatlas.store import Store
from bugatlas.store.records import normalize_repo
from bugatlas.store.store import now_iso

SOURCE = "label-studio"


def labeling_config(cb: Any, dimensions: list[str]) -> str:
    """A Label Studio labeling config: the issue text, one Taxonomy per dimension (one
    selection for single-label dimensions), a note and an unsure flag."""
    def choices(nodes: list[dict[str, Any]], depth: int) -> list[str]:
        out = []
        pad = "  " * depth
        for n in nodes:
            hint = f" hint={quoteattr(n['definition'])}" if n["definition"] else ""
            if n["children"]:
                out.append(f"{pad}<Choice value={quoteattr(n['name'])}{hint}>")
                out += choices(n["children"], depth + 1)
                out.append(f"{pad}</Choice>")
            else:
                out.append(f"{pad}<Choice value={quoteattr(n['name'])}{hint}/>")
        return out

    lines = ["<View>", '  <Header value="$title"/>', '  <Text name="text" value="$text"/>']
    for d in dimensions:
        single = "" if cbm.is_multi(cb, d) else ' maxUsages="1"'
        lines.append(f"  <Header value={quoteattr(d)} size=\"5\"/>")
        lines.append(f"  <Taxonomy name={quoteattr(d)} toName=\"text\" leafsOnly=\"false\" "
                     f"showFullPath=\"true\" pathSeparator=\" / \"{single}>")
        lines += choices(cbm.tree(cb, d), 2)
        lines.append("  </Taxonomy>")
    lines += ['  <TextArea name="note" toName="text" rows="3" maxSubmissions="1" editable="true" '
              'placeholder="note"/>',
              '  <Choices name="unsure" toName="text" choice="multiple">',
              '    <Choice value="unsure"/>', "  </Choices>", "</View>"]
    return "\n".join(lines) + "\n"


def _result(cb: Any, labels: dict[str, list[str]], note: str, unsure: bool) -> list[dict[str, Any]]:
    out = []
    for dim, values in labels.items():
        if values:
            out.append({"from_name": dim, "to_name": "text", "type": "taxonomy",
                        "value": {"taxonomy": [cbm.path_names(cb, dim, v) for v in values]}})
    if note:
        out.append({"from_name": "note", "to_name": "text", "type": "textarea",
                    "value": {"text": [note]}})
    if unsure:
        out.append({"from_name": "unsure", "to_name": "text", "type": "choices",
                    "value": {"choices": ["unsure"]}})
    return out


def export_tasks(store: Store, sample: Sample | str | None, out_dir: str | Path, *,
                 with_annotations: bool = False, codebook: Any = None) -> dict[str, Any]:
    """Write ``tasks.json`` and ``config.xml`` for the sample into ``out_dir``."""
    s = sample if isinstance(sample, Sample) else get_sample(store, sample)
    cb = cbm.load(codebook or s)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"{out}: cannot create the export folder ({exc.strerror})") from exc
    anns: dict[int, list[dict[str, Any]]] = {}
    names: list[str] = []
    if with_annotations:
        # Only finished work: Label Studio has no draft annotations in its task format, and a
        # draft exported as an annotation would come back from import as a done one.
        rows = latest_annotations(store, s, done_only=True)
        names = sorted({r["annotator"] for r in rows})
        for r in rows:
            anns.setdefault(r["item_id"], []).append({
                "completed_by": names.index(r["annotator"]) + 1,
                "created_username": r["annotator"],
                "result": _result(cb, r["labels"], r["note"], r["unsure"]),
                "was_cancelled": False, "ground_truth": False,
                "created_at": r["created_at"], "lead_time": None,
            })
    tasks = []
    for item in sample_items(store, s):
        issue = store.get_issue(item["repo"], item["issue_number"])
        title = issue.title if issue else ""
        text = f"{title or ''}\n\n{(issue.body if issue else '') or ''}".strip()
        task: dict[str, Any] = {"data": {
            "text": text, "title": title or f"{item['repo']}#{item['issue_number']}",
            "repo": item["repo"], "number": item["issue_number"],
            "url": issue.html_url if issue else None, "stratum": item["stratum"],
            "sample": s.name, "taxonomy": s.taxonomy}}
        if with_annotations:
            task["annotations"] = anns.get(item["id"], [])
        tasks.append(task)
    try:
        # each file renamed into place when complete: a stopped export leaves the previous one
        for name, text in (("tasks.json", json.dumps(tasks, indent=1, ensure_ascii=False)),
                           ("config.xml", labeling_config(cb, s.dimensions))):
            with replaced_when_complete(out / name, option="labelstudio export") as fh:
                fh.write(text.encode("utf-8"))
    except OSError as exc:
        raise BadInputError(f"{out}: cannot write the export ({exc.strerror})") from exc
    return {"tasks": len(tasks), "annotations": sum(len(v) for v in anns.values()),
            "annotators": names, "dir": str(out)}


def _annotator(ann: dict[str, Any], mapping: dict[str, str]) -> str:
    by = ann.get("completed_by")
    uid = str(by.get("id")) if isinstance(by, dict) else (str(by) if by is not None else None)
    if uid is not None and uid in mapping:
        return check_name(mapping[uid])
    created = ann.get("created_username")
    if isinstance(created, str) and created.strip():
        head, _, tail = created.rpartition(", ")
        name = head if head and tail.strip().isdigit() else created
        return check_name(name.strip())
    if isinstance(by, dict):
        return check_name(str(by.get("email") or by.get("username") or by.get("id")))
    if uid is None:
        raise BadInputError("an annotation has no completed_by")
    return check_name(uid)


def _issue_key(data: dict[str, Any]) -> tuple[str, int]:
    if data.get("repo") and data.get("number"):
        return normalize_repo(str(data["repo"])), int(data["number"])
    url = str(data.get("url") or data.get("html_url") or "")
    parts = url.rstrip("/").split("/")
    if "github.com" in url and len(parts) >= 5 and parts[-2] in {"issues", "pull"} and parts[-1].isdigit():
        return normalize_repo(f"{parts[-4]}/{parts[-3]}"), int(parts[-1])
    raise BadInputError("a task's data has neither repo+number nor a GitHub issue url")


def import_export(store: Store, path: str | Path, *, sample: str | None = None,
                  taxonomy: str | None = None, annotator_map: dict[str, str] | None = None,
                  codebook: Any = None) -> dict[str, Any]:
    """Import a Label Studio JSON export (or our tasks.json with annotations) as annotations.
    Issues not yet in the sample are added to it; the sample is created if missing. Importing
    the same file twice adds nothing the second time."""
    path = Path(path)
    try:
        tasks = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a Label Studio JSON export ({exc})") from exc
    if not isinstance(tasks, list):
        raise BadInputError(f"{path}: expected a JSON list of tasks")
    first = next((t["data"] for t in tasks if isinstance(t, dict) and isinstance(t.get("data"), dict)), {})
    name = sample or first.get("sample")
    tax = taxonomy or first.get("taxonomy")
    mapping = {str(k): v for k, v in (annotator_map or {}).items()}
    with store.transaction():  # all or nothing: a bad task leaves no half-imported sample behind
        return _import_tasks(store, path, tasks, name, tax, mapping, codebook)


def _import_tasks(store: Store, path: Path, tasks: list[Any], name: str | None, tax: str | None,
                  mapping: dict[str, str], codebook: Any) -> dict[str, Any]:
    exists = name and store.conn.execute("SELECT 1 FROM ann_samples WHERE name = ?", (name,)).fetchone()
    if not exists:
        if not (name and (tax or codebook)):
            raise BadInputError(f"{path}: name the sample (--sample) and its --taxonomy to create it")
        try:
            cb = cbm.load(codebook or tax)
        except BugAtlasError as exc:
            raise BadInputError(f"{path}: {exc}") from None
        with store.transaction() as conn:
            dims = [d for d in cbm.dimension_names(cb)]
            conn.execute(
                "INSERT INTO ann_samples (name, taxonomy, dimensions, strata_by, seed, params, created_at) "
                "VALUES (?, ?, ?, 'imported', 0, ?, ?)",
                (name, cb.name, orjson.dumps(dims).decode(),
                 orjson.dumps({"imported_from": str(path), **({"codebook_file": cbm.file_of(tax)}
                                                               if cbm.file_of(tax) else {})}).decode(),
                 now_iso()))
    s = get_sample(store, name)
    if exists and tax and not codebook and tax != s.taxonomy:
        try:
            same = cbm.load(tax).name == s.taxonomy
        except BugAtlasError:
            same = False
        if not same:  # --taxonomy (or the file's) would be silently ignored
            raise BadInputError(f"{path}: sample {s.name} is of {s.taxonomy}, not {tax} "
                                "(name another --sample to import it as a new one)")
    cb = cbm.load(codebook or s)
    counts = {"tasks": 0, "annotations": 0, "skipped_cancelled": 0, "already_imported": 0,
              "annotators": set()}
    with store.transaction() as conn:
        for ti, task in enumerate(tasks):
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise BadInputError(f"{path}: task {ti}: no data object")
            try:
                repo, number = _issue_key(task["data"])
            except (BadInputError, ValueError) as exc:
                raise BadInputError(f"{path}: task {ti}: {exc}") from None
            counts["tasks"] += 1
            row = conn.execute("SELECT id FROM ann_items WHERE sample_id = ? AND repo = ? AND issue_number = ?",
                               (s.id, repo, number)).fetchone()
            if row is None:
                pos = conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM ann_items WHERE sample_id = ?",
                                   (s.id,)).fetchone()[0]
                cur = conn.execute("INSERT INTO ann_items (sample_id, repo, issue_number, stratum, position) "
                                   "VALUES (?, ?, ?, 'imported', ?)", (s.id, repo, number, pos))
                item_id = int(cur.lastrowid)
            else:
                item_id = row[0]
            anns = task.get("annotations") or []
            if not isinstance(anns, list) or not all(isinstance(a, dict) for a in anns):
                raise BadInputError(f"{path}: task {ti} ({repo}#{number}): annotations must be a list of objects")
            for ai, ann in enumerate(anns):
                if ann.get("was_cancelled"):
                    counts["skipped_cancelled"] += 1
                    continue
                where = f"{path}: task {ti} ({repo}#{number}), annotation {ai}"
                try:
                    who = _annotator(ann, mapping)
                    labels, note, unsure = _parse_result(ann.get("result") or [])
                    clean = clean_labels(cb, s, labels)
                    set_roles(store, s, annotators=[who])
                except BadInputError as exc:
                    raise BadInputError(f"{where}: {exc}") from None
                counts["annotators"].add(who)
                conn.execute(
                    "INSERT OR IGNORE INTO ann_assignments (item_id, annotator, round, position, created_at) "
                    "VALUES (?, ?, 'main', (SELECT COALESCE(MAX(position), 0) + 1 FROM ann_assignments "
                    "WHERE annotator = ?), ?)", (item_id, who, who, now_iso()))
                aid = conn.execute("SELECT id FROM ann_assignments WHERE item_id = ? AND annotator = ?",
                                   (item_id, who)).fetchone()[0]
                created = str(ann.get("created_at") or now_iso())
                payload = orjson.dumps(clean).decode()
                dup = conn.execute(
                    "SELECT 1 FROM ann_annotations WHERE assignment_id = ? AND source = ? AND labels = ? "
                    "AND note = ? AND unsure = ? AND created_at = ?",
                    (aid, SOURCE, payload, note, int(unsure), created)).fetchone()
                if dup:
                    counts["already_imported"] += 1
                    continue
                conn.execute(
                    "INSERT INTO ann_annotations (assignment_id, labels, note, unsure, status, source, "
                    "client, created_at) VALUES (?, ?, ?, ?, 'done', ?, ?, ?)",
                    (aid, payload, note, int(unsure), SOURCE, str(ann.get("id") or "")[:100] or None,
                     created))
                counts["annotations"] += 1
    counts["annotators"] = sorted(counts["annotators"])
    counts["sample"] = s.name
    return counts


def _parse_result(result: list[dict[str, Any]]) -> tuple[dict[str, list[str]], str, bool]:
    labels: dict[str, list[str]] = {}
    note, unsure = "", False
    if not isinstance(result, list) or not all(isinstance(r, dict) and isinstance(r.get("value") or {}, dict)
                                               for r in result):
        raise BadInputError("result must be a list of objects with a value object")
    for r in result:
        value = r.get("value") or {}
        name = r.get("from_name")
        if r.get("type") == "taxonomy":
            paths = value.get("taxonomy") or []
            if not isinstance(paths, list) or not all(isinstance(p, list) for p in paths):
                raise BadInputError(f"{name}: value.taxonomy must be a list of paths ([[\"Group\", \"Leaf\"]])")
            labels.setdefault(name, [])
            labels[name] += [p[-1] for p in paths if p]
        elif r.get("type") in ("choices", "textarea"):
            key = "choices" if r["type"] == "choices" else "text"
            items = value.get(key) or []
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                # a bare string was read letter by letter ('C', 'r', …; a note one letter a line)
                raise BadInputError(f"{name}: value.{key} must be a list of strings")
            if r["type"] == "choices" and name == "unsure":
                unsure = "unsure" in items
            elif r["type"] == "choices":
                labels.setdefault(name, [])
                labels[name] += items
            elif name == "note":
                note = "\n".join(items)
    return labels, note, unsure
