"""Inter-annotator agreement per dimension and per hierarchy level.

What is computed, on each annotator's latest *done* annotation (drafts excluded by default):

* **Cohen's kappa** for every pair of annotators, on the items both labeled, with the
  observed agreement, the item count and the confusion matrix (rows: first annotator).
  Implemented here (from the confusion matrix) and tested against scikit-learn.
* **Fleiss' kappa** (statsmodels) over the items rated by the usual number of raters.
* **Krippendorff's alpha** (the ``krippendorff`` package, nominal) over all ratings; missing
  ratings are allowed.

Hierarchies: a leaf is mapped to its ancestor at each level of the dimension (``levels`` in
the codebook, e.g. group → leaf), and every statistic is computed per level.

Empty answers: in a single-label dimension an annotator may leave the dimension empty (e.g.
liu2025's ``unexpected_output`` when the symptom is not Unexpected Output); that is the value
``(none)``, so agreeing that a dimension does not apply counts as agreement.

Multi-label dimensions are reported two ways: (1) *set equality* — the sorted set of
categories is one nominal value (kappa/alpha on it; exact-match rate); (2) *per category* —
for each category, each annotator's yes/no is a binary rating, with Cohen's kappa per pair and
Krippendorff's alpha, plus their macro mean.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import numpy as np

from bugatlas.annotate import codebook as cbm
from bugatlas.annotate.sampling import Sample, get_sample
from bugatlas.annotate.work import latest_annotations
from bugatlas.errors import BadInputError
from bugatlas.store import Store

NONE = "(none)"


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters over the same items; None when undefined (chance
    agreement is 1: both raters used one and the same category throughout)."""
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    n = len(a)
    if n == 0:
        return None
    labels = sorted(set(a) | set(b))
    cm = confusion(a, b, labels)
    po = np.trace(cm) / n
    pe = float((cm.sum(axis=1) * cm.sum(axis=0)).sum()) / (n * n)
    if math.isclose(pe, 1.0):
        return None
    return float((po - pe) / (1 - pe))


def confusion(a: list[str], b: list[str], labels: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for x, y in zip(a, b, strict=True):
        cm[index[x], index[y]] += 1
    return cm


def fleiss(ratings: dict[Any, dict[str, str]]) -> dict[str, Any]:
    """Fleiss' kappa over items rated by the most common number of raters (>= 2)."""
    from statsmodels.stats.inter_rater import fleiss_kappa

    counts = Counter(len(r) for r in ratings.values() if len(r) >= 2)
    if not counts:
        return {"value": None, "items": 0, "raters_per_item": None}
    m = max(counts, key=lambda c: (counts[c], c))
    items = [r for r in ratings.values() if len(r) == m]
    cats = sorted({v for r in items for v in r.values()})
    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(items), len(cats)))
    for j, r in enumerate(items):
        for v in r.values():
            table[j, index[v]] += 1
    value = None
    if len(cats) > 1:
        with np.errstate(all="ignore"):
            v = float(fleiss_kappa(table, method="fleiss"))
        value = None if math.isnan(v) else v
    return {"value": value, "items": len(items), "raters_per_item": m}


def kripp_alpha(ratings: dict[Any, dict[str, str]], annotators: list[str]) -> dict[str, Any]:
    """Krippendorff's alpha (nominal) over items with at least two ratings."""
    import krippendorff

    items = [r for r in ratings.values() if len(r) >= 2]
    cats = sorted({v for r in items for v in r.values()})
    if not items or len(cats) < 2:
        return {"value": None, "items": len(items)}
    code = {c: float(i) for i, c in enumerate(cats)}
    data = np.full((len(annotators), len(items)), np.nan)
    row = {a: i for i, a in enumerate(annotators)}
    for j, r in enumerate(items):
        for a, v in r.items():
            data[row[a], j] = code[v]
    value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    return {"value": None if math.isnan(value) else value, "items": len(items)}


def nominal_stats(ratings: dict[Any, dict[str, str]], annotators: list[str], *,
                  with_fleiss: bool = True) -> dict[str, Any]:
    """Pairwise Cohen (with confusion matrices), Fleiss and Krippendorff for one nominal view."""
    pairs = []
    for a, b in itertools.combinations(annotators, 2):
        both = [(r[a], r[b]) for r in ratings.values() if a in r and b in r]
        if not both:
            continue
        xa, xb = [x for x, _ in both], [y for _, y in both]
        labels = sorted(set(xa) | set(xb))
        pairs.append({
            "annotators": [a, b], "items": len(both),
            "cohen_kappa": cohen_kappa(xa, xb),
            "observed_agreement": sum(x == y for x, y in both) / len(both),
            "labels": labels, "confusion": confusion(xa, xb, labels).tolist(),
            "ratings": [xa, xb],
        })
    multi = [r for r in ratings.values() if len(r) >= 2]
    return {
        "items": len(multi),
        "pairs": pairs,
        "fleiss_kappa": fleiss(ratings) if with_fleiss else None,
        "krippendorff_alpha": kripp_alpha(ratings, annotators),
    }


def _ratings(rows: list[dict[str, Any]], dim: str) -> dict[int, dict[str, list[str]]]:
    out: dict[int, dict[str, list[str]]] = {}
    for r in rows:
        out.setdefault(r["item_id"], {})[r["annotator"]] = r["labels"].get(dim, [])
    return out


def agreement(store: Store, sample: Sample | str | None = None, *, round: str = "main",
              include_drafts: bool = False, codebook: Any = None,
              keep_ratings: bool = False) -> dict[str, Any]:
    """Agreement report of a sample (see the module doc for what and how)."""
    if round not in (None, "", "main", "pilot"):
        raise BadInputError(f"--round {round}: use main, pilot or all")
    s = sample if isinstance(sample, Sample) else get_sample(store, sample)
    cb = cbm.load(codebook or s)
    rows = latest_annotations(store, s, round=round or None, done_only=not include_drafts)
    annotators = sorted({r["annotator"] for r in rows})
    report: dict[str, Any] = {
        "sample": s.name, "taxonomy": s.taxonomy, "round": round, "annotators": annotators,
        "items_annotated": len({r["item_id"] for r in rows}), "dimensions": {},
        "method": "latest done annotation per annotator; " + (
            "drafts included" if include_drafts else "drafts excluded"),
    }
    for dim in s.dimensions:
        multi = cbm.is_multi(cb, dim)
        level_names = cbm.level_keys(cb, dim)
        by_item = _ratings(rows, dim)
        dim_report: dict[str, Any] = {"multi_label": multi, "levels": {}}
        for li, level in enumerate(level_names):
            memo: dict[str, str] = {}

            def lift(values: list[str], li: int = li, dim: str = dim, memo=memo) -> list[str]:
                out = set()
                for v in values:
                    if v not in memo:
                        memo[v] = cbm.at_level(cb, dim, v, li)
                    out.add(memo[v])
                return sorted(out)

            lifted = {item: {a: lift(v) for a, v in r.items()} for item, r in by_item.items()}
            if not multi:
                nominal = {item: {a: (v[0] if v else NONE) for a, v in r.items()}
                           for item, r in lifted.items()}
                stats = nominal_stats(nominal, annotators)
            else:
                sets = {item: {a: " | ".join(v) if v else NONE for a, v in r.items()}
                        for item, r in lifted.items()}
                stats = {"set_equality": nominal_stats(sets, annotators)}
                per_cat = {}
                cats = sorted({c for r in lifted.values() for v in r.values() for c in v})
                for c in cats:
                    binary = {item: {a: ("yes" if c in v else "no") for a, v in r.items()}
                              for item, r in lifted.items()}
                    per_cat[c] = nominal_stats(binary, annotators, with_fleiss=False)
                    for p in per_cat[c]["pairs"]:
                        p.pop("ratings", None)
                kappas = [p["cohen_kappa"] for st in per_cat.values() for p in st["pairs"]
                          if p["cohen_kappa"] is not None]
                alphas = [st["krippendorff_alpha"]["value"] for st in per_cat.values()
                          if st["krippendorff_alpha"]["value"] is not None]
                stats["per_category"] = per_cat
                stats["macro_cohen_kappa"] = float(np.mean(kappas)) if kappas else None
                stats["macro_krippendorff_alpha"] = float(np.mean(alphas)) if alphas else None
                stats["items"] = stats["set_equality"]["items"]
            if not keep_ratings:
                for p in (stats.get("pairs") or stats.get("set_equality", {}).get("pairs", [])):
                    p.pop("ratings", None)
            dim_report["levels"][level] = stats
        report["dimensions"][dim] = dim_report
    return report


def headline(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per dimension and level: the figures a paper reports."""
    out = []
    for dim, d in report["dimensions"].items():
        for level, st in d["levels"].items():
            core = st.get("set_equality", st)
            pairs = core["pairs"]
            out.append({
                "dimension": dim, "level": level, "multi_label": d["multi_label"],
                "items": core["items"],
                "cohen_kappa": {"+".join(p["annotators"]): p["cohen_kappa"] for p in pairs},
                "observed_agreement": {"+".join(p["annotators"]): p["observed_agreement"] for p in pairs},
                "fleiss_kappa": core["fleiss_kappa"]["value"],
                "krippendorff_alpha": core["krippendorff_alpha"]["value"],
                "macro_category_kappa": st.get("macro_cohen_kappa"),
            })
    return out
