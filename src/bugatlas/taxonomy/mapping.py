"""Mapping labels between codebooks, with the mapping kept as data in the source codebook.

A codebook's ``mappings: {TARGET: {DIMENSION: {source category: target category}}}`` section
says where each source category goes. :func:`get_mapping` checks it against both codebooks;
:func:`map_store_labels` rewrites labels in a store (with provenance), :func:`map_records`
converts label records in files (the classify batch format).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bugatlas.errors import BadInputError
from bugatlas.taxonomy.loader import load_codebook
from bugatlas.taxonomy.model import Category, Codebook, CodebookError


@dataclass
class Mapping:
    source: Codebook
    target: Codebook
    # source dimension -> (target dimension, {source category id -> target category})
    dimensions: dict[str, tuple[str, dict[str, Category]]]
    description: str = ""

    def map(self, dimension: str, value: str) -> Category | None:
        """The target category for a source label value (name, id or alias); None if unmapped."""
        spec = self.dimensions.get(dimension)
        if spec is None:
            return None
        src = self.source.find(dimension, value)
        if src is None:
            return None
        # A label on a group maps when the group itself is mapped; a leaf falls back to its
        # nearest mapped ancestor so coarse mappings (group -> group) stay short.
        for c in reversed(self.source.path(dimension, src.id)):
            if c.id in spec[1]:
                return spec[1][c.id]
        return None

    def target_dimension(self, dimension: str) -> str | None:
        spec = self.dimensions.get(dimension)
        return spec[0] if spec else None


def get_mapping(source: str | Codebook, target: str | Codebook) -> Mapping:
    """The mapping from ``source`` to ``target`` declared in the source codebook, validated."""
    src, tgt = load_codebook(source), load_codebook(target)
    data = src.mappings.get(tgt.name)
    if data is None:
        have = ", ".join(src.mappings) or "none"
        raise BadInputError(f"codebook {src.name!r} declares no mapping to {tgt.name!r} (mappings: {have})")
    if not isinstance(data, dict):
        raise CodebookError(f"{src.source}: mappings.{tgt.name}: expected a mapping of dimension -> "
                            "{category: category}")
    problems: list[str] = []
    dims: dict[str, tuple[str, dict[str, Category]]] = {}
    for sdim, table in data.items():
        if sdim in ("description", "note"):
            continue
        if not isinstance(table, dict):
            problems.append(f"{src.source}: mappings.{tgt.name}.{sdim}: expected a mapping of category -> category")
            continue
        tdim = table.get("_to") if isinstance(table.get("_to"), str) else sdim
        if sdim not in src.dimensions:
            problems.append(f"{src.source}: mappings.{tgt.name}: {src.name} has no dimension {sdim!r}")
            continue
        if tdim not in tgt.dimensions:
            problems.append(f"{src.source}: mappings.{tgt.name}.{sdim}: {tgt.name} has no dimension {tdim!r}")
            continue
        out: dict[str, Category] = {}
        for skey, tkey in table.items():
            if skey == "_to":
                continue
            s = src.find(sdim, str(skey))
            t = tgt.find(tdim, str(tkey))
            if s is None:
                problems.append(f"{src.source}: mappings.{tgt.name}.{sdim}: unknown {src.name} category {skey!r}")
            elif t is None:
                problems.append(f"{src.source}: mappings.{tgt.name}.{sdim}: {skey!r} -> unknown {tgt.name} {tdim} category {tkey!r}")
            else:
                out[s.id] = t
        dims[sdim] = (tdim, out)
    if problems:
        raise CodebookError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return Mapping(src, tgt, dims, str(data.get("description") or ""))


def unmapped_categories(mapping: Mapping) -> dict[str, list[str]]:
    """Source leaves that map nowhere, per mapped dimension (an empty dict: complete)."""
    out = {}
    for sdim in mapping.dimensions:
        missing = [c.name for c in mapping.source.leaves(sdim) if mapping.map(sdim, c.name) is None]
        if missing:
            out[sdim] = missing
    return out


@dataclass
class MapReport:
    source: str
    target: str
    records: int = 0  # labeled records (issue + published record id) seen
    mapped: Counter = field(default_factory=Counter)  # per source dimension: labels mapped
    unmapped: Counter = field(default_factory=Counter)  # (dimension, value) that found no target
    # target dimension -> top-level category name -> records
    top_level: dict[str, Counter] = field(default_factory=dict)
    labels_written: int = 0

    def comparison(self, target: Codebook) -> list[dict[str, Any]]:
        """Mapped top-level counts next to the counts the target's paper published."""
        rows = []
        for dim, counts in self.top_level.items():
            for c in target.roots(dim):
                n = counts.get(c.name, 0)
                pub = c.published_count
                rows.append({"dimension": dim, "category": c.name, "mapped": n, "published": pub,
                             "difference": None if pub is None else n - pub})  # fmt: skip
        return rows

    def to_dict(self, target: Codebook | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source, "target": self.target, "records": self.records,
            "labels_mapped": dict(self.mapped), "labels_written": self.labels_written,
            "unmapped": [{"dimension": k[0], "value": k[1], "labels": n} for k, n in self.unmapped.items()],
            "top_level": {k: dict(v) for k, v in self.top_level.items()},
        }  # fmt: skip
        if target is not None:
            d["comparison"] = self.comparison(target)
        return d


def _target_pairs(mapping: Mapping, sdim: str, value: str) -> list[tuple[str, str]] | None:
    cat = mapping.map(sdim, value)
    if cat is None:
        return None
    tdim = mapping.target_dimension(sdim)
    assert tdim is not None
    return mapping.target.dimension(tdim).store_labels(cat.id)


def map_store_labels(store: Any, source: str | Codebook, target: str | Codebook, *,
                     source_kind: str | None = None, dry_run: bool = False) -> MapReport:
    """Write ``target`` labels for every ``source`` label in the store, with provenance.

    Mapped labels keep the original's source kind, record and confidence; their ``source`` is
    ``<original source>|map:<source codebook>`` and their evidence names the original value. A
    re-run replaces the labels an earlier run wrote (no duplicates, no stale values)."""
    from bugatlas.store import Label

    mapping = get_mapping(source, target)
    src, tgt = mapping.source, mapping.target
    report = MapReport(src.name, tgt.name)
    # one label per target value and record: several source labels may map onto one target
    # (liu2025's root causes of two groups, both Software Implementation Defect); the store keeps
    # one row of them, so the evidence names every original and labels_written counts rows
    out: dict[tuple[str, str], dict[tuple[str, int, str, str, str], Label]] = {}
    records: dict[tuple[str, int, str], dict[str, set[str]]] = {}
    with store.run("taxonomy map", {"from": src.name, "to": tgt.name, "source_kind": source_kind}) as run:
        for lab in store.iter_labels(src.name, source_kind=source_kind):
            rec = records.setdefault((lab.repo, lab.issue_number, lab.record), {})
            if lab.dimension not in mapping.dimensions:
                continue
            pairs = _target_pairs(mapping, lab.dimension, lab.value)
            if pairs is None:
                report.unmapped[(lab.dimension, lab.value)] += 1
                continue
            report.mapped[lab.dimension] += 1
            tdim = mapping.target_dimension(lab.dimension)
            top = tgt.dimension(tdim).levels[0] if tgt.dimension(tdim).depth() > 1 else tdim
            for d, v in pairs:
                if d == top:
                    rec.setdefault(tdim, set()).add(v)
            new_source = f"{lab.source}|map:{src.name}"
            for d, v in pairs:
                evidence = f"{src.name}.{lab.dimension}={lab.value}"
                written = out.setdefault((lab.source_kind, new_source), {})
                key = (lab.repo, lab.issue_number, d, v, lab.record)
                if key in written:
                    if evidence not in (written[key].evidence or []):
                        written[key].evidence = [*(written[key].evidence or []), evidence]
                    continue
                written[key] = Label(
                    repo=lab.repo, issue_number=lab.issue_number, taxonomy=tgt.name, dimension=d,
                    value=v, source_kind=lab.source_kind, source=new_source, record=lab.record,
                    confidence=lab.confidence, evidence=[evidence], run_id=run.id)  # fmt: skip
        report.records = len(records)
        for rec in records.values():
            for tdim, vals in rec.items():
                for v in vals:
                    report.top_level.setdefault(tdim, Counter())[v] += 1
        if not dry_run:
            with store.transaction():
                for (kind, source_name), labels in out.items():
                    report.labels_written += store.replace_labels(tgt.name, kind, source_name, labels.values())
        run.summary = report.to_dict()
    return report


def map_records(records: Iterable[dict[str, Any]], source: str | Codebook, target: str | Codebook,
                report: MapReport | None = None) -> Iterator[dict[str, Any]]:
    """Convert label records of the classify batch format (``{"repo", "number", "taxonomy",
    "labels": {dimension: value or [values]}, ...}``) to the target codebook.

    Every level of the target path is written (e.g. ``symptom_category``, ``symptom``); values
    that map nowhere are kept under ``"unmapped"`` so nothing is silently lost. A single-valued
    target dimension gets one name, not a list."""
    mapping = get_mapping(source, target)
    # Single-valued dimensions are written as one name, as `classify --output` writes them, so
    # mapped and classified files read the same; several names (a multi-label source mapped onto
    # a single-valued dimension) stay a list rather than lose one.
    single = {lv for d in mapping.target.dimensions.values() if not d.multi_label for lv in d.levels}
    for i, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or not isinstance(rec.get("labels"), dict):
            raise BadInputError(f"record {i}: expected an object with a 'labels' object")
        if rec.get("taxonomy") not in (None, mapping.source.name):
            raise BadInputError(f"record {i}: taxonomy is {rec.get('taxonomy')!r}, expected {mapping.source.name!r}")
        labels: dict[str, list[str]] = {}
        unmapped: dict[str, list[str]] = {}
        for sdim, values in rec["labels"].items():
            vals = values if isinstance(values, list) else [values]
            if sdim not in mapping.dimensions:
                continue
            for v in vals:
                if v is None:
                    continue
                pairs = _target_pairs(mapping, sdim, str(v))
                if pairs is None:
                    unmapped.setdefault(sdim, []).append(v)
                    if report is not None:
                        report.unmapped[(sdim, str(v))] += 1
                    continue
                if report is not None:
                    report.mapped[sdim] += 1
                for d, tv in pairs:
                    if tv not in labels.setdefault(d, []):
                        labels[d].append(tv)
        if report is not None:
            report.records += 1
            for sdim in mapping.dimensions:
                tdim = mapping.target_dimension(sdim)
                dim = mapping.target.dimension(tdim)
                top = dim.levels[0] if dim.depth() > 1 else tdim
                for v in labels.get(top, []):
                    report.top_level.setdefault(tdim, Counter())[v] += 1
        out = {k: v for k, v in rec.items() if k not in ("labels", "taxonomy", "confidence")}
        out["taxonomy"] = mapping.target.name
        out["labels"] = {d: v[0] if d in single and len(v) == 1 else v for d, v in labels.items()}
        out["mapped_from"] = mapping.source.name
        if unmapped:
            out["unmapped"] = unmapped
        yield out
