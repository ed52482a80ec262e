"""Published-number audit: every number the papers print (``published.yaml``) recounted
from the released datasets in the store, with each discrepancy listed.

A number is a *match* when the recount equals it (percentages compared at the precision the
paper prints), *match (raw file)* when only a count over the raw file (duplicates kept, e.g.
Liu's "@@" pairs) equals it, *differs* otherwise, and *not checkable* when the release lacks
what it needs (raters' labels, dates)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from bugatlas.analyze.data import StudyData, load_study, split_levels
from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml
from bugatlas.store import Store

COLUMNS = ["id", "paper", "where", "what", "published", "dataset", "raw_file", "published_pct",
           "dataset_pct", "difference", "status", "note", "ref"]  # fmt: skip


@cache
def published() -> dict[str, Any]:
    text = (resources.files("bugatlas.analyze") / "published.yaml").read_text(encoding="utf-8")
    return load_yaml(text)


def published_numbers(paper: str | None = None) -> list[dict[str, Any]]:
    """The printed numbers (matrices expanded cell by cell), optionally of one paper."""
    pub = published()
    out = [dict(n) for n in pub["numbers"]]
    for m in pub.get("matrices", []):
        rows, cols = m["rows"], m["cols"]
        for r, line in zip(rows["categories"], m["values"], strict=True):
            for c, v in zip(cols["categories"], line, strict=True):
                out.append({
                    "id": f"{m['id']}[{r} | {c}]", "paper": m["paper"], "where": m["where"],
                    "what": f"{c} caused by {r}", "published": v, "ref": m["ref"],
                    "measure": {"count": "units", "dimension": cols["dimension"], "category": c,
                                "and": {"dimension": rows["dimension"], "category": r}},
                })  # fmt: skip
    return [n for n in out if paper in (None, n["paper"])]


class _Counter:
    """Recounts over one paper's study data."""

    def __init__(self, paper: str, data: StudyData, raw: list[dict[str, list[str]]] | None):
        self.paper, self.data, self.raw = paper, data, raw
        self.categories = published().get("categories", {}).get(paper, {})
        self._lab = data.labels
        self._norm: dict[tuple[str, str], tuple[str, list[str]]] = {}

    def patterns(self, spec: dict[str, Any]) -> list[str] | None:
        if "match" in spec:
            return list(spec["match"])
        if "category" in spec:
            cats = self.categories.get(spec["dimension"], {})
            if spec["category"] not in cats:
                raise BadInputError(f"published.yaml: {self.paper} category {spec['category']!r} "
                                    f"of {spec['dimension']!r} is not defined under categories")  # fmt: skip
            return list(cats[spec["category"]])
        return None

    def _matches(self, dimension: str, value: str, patterns: list[str]) -> bool:
        key = (dimension, value)
        if key not in self._norm:
            self._norm[key] = (" - ".join(split_levels(value)), self.data.path(dimension, value))
        flat, path = self._norm[key]
        return any(flat == p or flat.startswith(p + " - ") or p in path for p in patterns)

    def rows(self, spec: dict[str, Any]) -> pd.DataFrame:
        """Label rows (unit, value) of the dimension whose value matches the spec."""
        dim = spec["dimension"]
        pats = self.patterns(spec)
        lab = self._lab[self._lab["dimension"] == dim]
        if pats is None:  # no match/category: every label of the dimension
            return lab[["unit", "value"]]
        keep = {v for v in self.data.distinct_values(dim) if self._matches(dim, v, pats)}
        return lab.loc[lab["value"].isin(keep), ["unit", "value"]]

    def scope(self, number: dict[str, Any]) -> pd.Index:
        m = number.get("measure", {})
        units = self.data.units
        idx = units.index
        if "group" in m:
            idx = idx[units.loc[idx, "group"] == m["group"]]
        if "within" in number:
            idx = idx.intersection(pd.Index(self.rows(number["within"])["unit"].unique()))
        return idx

    def count(self, number: dict[str, Any]) -> tuple[float | None, float | None, float | None, str]:
        """(dataset count, raw-file count, dataset percentage, note)."""
        m = number["measure"]
        kind = m.get("count", "units")
        scope = self.scope(number)
        note = ""
        pats = self.patterns(m) if "dimension" in m else None
        if pats == []:
            note = "no counterpart in the released vocabulary"
        if kind in ("close_days_median", "close_days_mean"):
            hit = self.rows(m)
            u = self.data.units.loc[hit["unit"].unique()]
            closed = u[u["closed_at"].notna() & u["created_at"].notna()]
            if closed.empty:
                return None, None, None, ("no dates: the issues are references; hydrate them "
                                          "(study sources.hydrate or `bugatlas collect`) to check this")  # fmt: skip
            days = (closed["closed_at"] - closed["created_at"]).dt.total_seconds() / 86400
            value = float(days.median() if kind == "close_days_median" else days.mean())
            return round(value, 1), None, None, f"over {len(closed)} closed issues with dates"
        if kind == "groups":
            return float(self.data.units.loc[scope, "group"].nunique()), None, None, note
        if kind == "categories":
            lab = self._lab[(self._lab["dimension"] == m["dimension"]) & self._lab["unit"].isin(scope)]
            return float(lab["value"].nunique()), None, None, note
        if "dimension" in m:
            hit = self.rows(m)
            hit = hit[hit["unit"].isin(scope)]
        else:
            hit = pd.DataFrame({"unit": scope, "value": ""})
        if "and" in m:
            other = self.rows(m["and"])
            if kind == "instances":
                a = hit.groupby("unit").size()
                b = other.groupby("unit").size()
                value = float((a * b.reindex(a.index, fill_value=0)).sum())
            else:
                value = float(len(set(hit["unit"]) & set(other["unit"])))
        elif kind == "instances":
            value = float(len(hit))
        elif kind == "issues":
            u = self.data.units.loc[hit["unit"].unique(), ["repo", "issue_number"]]
            value = float(len(u.drop_duplicates()))
        else:
            value = float(hit["unit"].nunique())
        raw = self.raw_count(m) if m.get("raw") == "csv_pairs" else None
        pct = None
        if "published_pct" in number:
            denom_kind = m.get("percent_of", "labelled")
            if denom_kind == "within" or "dimension" not in m:
                denom = len(scope)
            elif denom_kind == "instances":
                lab = self._lab[(self._lab["dimension"] == m["dimension"]) & self._lab["unit"].isin(scope)]
                denom = len(lab)
            else:
                lab = self._lab[(self._lab["dimension"] == m["dimension"]) & self._lab["unit"].isin(scope)]
                denom = lab["unit"].nunique()
            pct = 100.0 * value / denom if denom else None
        return value, raw, pct, note

    def raw_count(self, m: dict[str, Any]) -> float | None:
        """Count over the raw file's rows, duplicates kept; with ``and``, the pairs per row."""
        if self.raw is None:
            return None

        def hits(row: dict[str, list[str]], spec: dict[str, Any]) -> int:
            pats = self.patterns(spec)
            vals = row.get(spec["dimension"], [])
            return len(vals) if pats is None else sum(1 for v in vals if v in pats)

        if "and" in m:
            return float(sum(hits(r, m) * hits(r, m["and"]) for r in self.raw))
        return float(sum(hits(r, m) for r in self.raw))


def raw_liu_values(files: Iterable[Path]) -> list[dict[str, list[str]]] | None:
    """Every "@@"-joined value of each Liu CSV row per dimension, duplicates within a row kept
    (the store collapses them: "Operators@@Operators" is one component)."""
    from bugatlas.importers.base import dataset_facts, read_csv_rows
    from bugatlas.importers.liu2025 import sniff

    for path in files:
        path = Path(path)
        if path.is_file() and sniff(path):
            facts = dataset_facts()["liu2025"]
            _, rows = read_csv_rows(path)
            sep = facts["multi_value_separator"]
            return [
                {dim: [v.strip() for v in (row.get(col) or "").split(sep) if v.strip()]
                 for col, dim in facts["columns"].items()}
                for _, row in rows
            ]  # fmt: skip
    return None


def _decimals(x: float) -> int:
    s = repr(float(x)).rstrip("0").rstrip(".")
    return len(s.split(".")[1]) if "." in s else 0


def _status(number: dict[str, Any], value, raw, pct) -> tuple[str, float | None]:
    pub = number.get("published")
    ppct = number.get("published_pct")
    diff = None
    checks = []
    if pub is not None and value is not None:
        diff = value - pub
        checks.append("match" if value == pub else ("match (raw file)" if raw == pub else "differs"))
    if ppct is not None and pct is not None:
        checks.append("match" if round(pct, _decimals(ppct)) == ppct else "differs")
    if not checks:
        return "not checkable", diff
    for s in ("differs", "match (raw file)"):
        if s in checks:
            return s, diff
    return "match", diff


def audit(store: Store, *, papers: list[str] | None = None, files: Iterable[Path] = ()) -> pd.DataFrame:
    """One row per printed number: published, recounted (store; raw file when given), the
    difference, and a status. Papers whose dataset is not in the store are listed as such."""
    pub = published()
    papers = papers or [p for p in pub["papers"] if pub["papers"][p].get("taxonomy")] + ["vllm-exp"]
    unknown = [p for p in papers if p not in pub["papers"]]
    if unknown:
        raise BadInputError(f"--paper {unknown[0]!r}: known papers are {', '.join(pub['papers'])}")
    files = list(files)
    raw = raw_liu_values(files)
    # Only the released dataset's own labels are recounted: a classifier's labels or a gold
    # sample of the same taxonomy are other issues, and "differs" against the paper would
    # say nothing about the paper.
    released: dict[str, list[str]] = {}
    for src in store.label_sources():
        if src["source"].startswith("dataset:"):  # what the importers name a published dataset's labels
            released.setdefault(src["taxonomy"], []).append(src["source"])
    rows = []
    for paper in dict.fromkeys(papers):
        tax = pub["papers"][paper].get("taxonomy")
        counter = None
        missing = None
        if tax and tax in released:
            counter = _Counter(paper, load_study(store, tax, source=released[tax]), raw if paper == "liu2025" else None)
        elif tax:
            missing = f"released dataset not in the store (no {tax} labels imported from it): import it first"
        for n in published_numbers(paper):
            row = {k: n.get(k) for k in ("id", "paper", "where", "what", "published", "published_pct", "ref")}
            if n.get("measure", {}).get("count") == "sum_published":  # a paper's own arithmetic
                parts = {x["id"]: x.get("published") for x in published_numbers(paper)}
                value = float(sum(parts[i] for i in n["measure"]["of"]))
                status, diff = _status(n, value, None, None)
                row.update(dataset=value, difference=diff, status=status,
                           note="internal consistency: the paper's own numbers, not the dataset")  # fmt: skip
            elif "unavailable" in n or "measure" not in n:
                row.update(status="not checkable", note=n.get("unavailable", ""))
            elif counter is None:
                row.update(status="not checked", note=missing or "")
            else:
                value, rawv, pct, note = counter.count(n)
                status, diff = _status(n, value, rawv, pct)
                if status == "match (raw file)":
                    note = note or "the raw file's count (a label repeated within one bug kept); the store counts it once"
                row.update(dataset=value, raw_file=rawv, dataset_pct=None if pct is None else round(pct, 2),
                           difference=diff, status=status, note=note)  # fmt: skip
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("published", "dataset", "raw_file", "difference"):
        frame[col] = frame[col].astype("Float64")
    return frame


def audit_summary(frame: pd.DataFrame) -> dict[str, Any]:
    counts = frame.groupby(["paper", "status"]).size()
    return {p: {s: int(n) for s, n in g.droplevel(0).items()} for p, g in counts.groupby(level=0)}
