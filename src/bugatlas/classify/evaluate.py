"""Agreement of machine labels with human labels: accuracy, macro-F1 and Cohen's kappa per
dimension and per level of each hierarchy, coverage, a confusion matrix, the majority-class
baseline measured on the same issues, and a learning curve.

Multi-label dimensions are scored on the *primary* label: the prediction's first label
counts as right when it is any of the gold labels (an issue with two root causes is right
if the classifier names either); the gold side of that pair is then that label, else the
gold's first. Exact-set agreement and Jaccard are reported besides. An abstention is its
own class, ``(none)``: it lowers accuracy, F1 and kappa like a wrong label, and coverage
says how often it happened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bugatlas.classify.schema import TaxonomySpec

ABSTAIN = "(none)"
Key = tuple[str, int]
LabelMap = Mapping[Key, Mapping[str, Sequence[str]]]


@dataclass
class DimensionScore:
    dimension: str
    n: int
    accuracy: float
    macro_f1: float
    kappa: float
    coverage: float
    accuracy_covered: float | None
    exact_set: float
    jaccard: float
    majority_label: str
    majority_accuracy: float
    labels: list[str]
    confusion: list[list[int]]  # rows: gold, columns: predicted (labels + ABSTAIN)

    def as_dict(self, *, with_confusion: bool = True) -> dict[str, Any]:
        d = dict(self.__dict__)
        if not with_confusion:
            d.pop("confusion")
            d.pop("labels")
        return d


@dataclass
class EvalReport:
    taxonomy: str
    n_gold: int
    n_pred: int
    n_common: int
    dimensions: dict[str, DimensionScore] = field(default_factory=dict)
    # dimension -> one row per confidence threshold (see agreement_by_confidence)
    by_confidence: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    # gold issues whose machine labels came from a model that had learned from those very
    # labels (in-sample agreement), and the report on the other gold issues alone
    in_sample: int = 0
    unseen: EvalReport | None = None
    # with a predictions file (its model unknown): gold issues the shipped model learned from
    shipped_learned: int = 0

    def as_dict(self, *, with_confusion: bool = True) -> dict[str, Any]:
        out = {"taxonomy": self.taxonomy, "n_gold": self.n_gold, "n_pred": self.n_pred,
               "n_common": self.n_common,
               "dimensions": {k: v.as_dict(with_confusion=with_confusion)
                              for k, v in self.dimensions.items()},
               "by_confidence": self.by_confidence, "in_sample": self.in_sample,
               "shipped_learned": self.shipped_learned}
        if self.unseen is not None:
            out["unseen"] = self.unseen.as_dict(with_confusion=with_confusion)
        return out


def complete_levels(spec: TaxonomySpec, labels: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Fill the group levels a record leaves out from its leaves (gold may give only leaves)."""
    out = {k: list(v) for k, v in labels.items()}
    for dim, dspec in spec.dims.items():
        leaves = [v for d in dspec.out_dims for v in out.get(d, []) if v in dspec.store]
        if not leaves:
            continue
        for d, values in spec.expand(dim, list(dict.fromkeys(leaves))).items():
            if not out.get(d) and values:
                out[d] = values
    return out


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two label sequences (1.0 when both are constant and equal)."""
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return (po - pe) / (1 - pe)


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Macro-F1 over the classes that occur in the gold labels."""
    classes = sorted(set(gold))
    f1s = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else float("nan")


def align(gold: Sequence[str], pred: Sequence[str]) -> tuple[str, str]:
    p = pred[0] if pred else ABSTAIN
    g = p if p in gold else gold[0]
    return g, p


def score_dimension(dim: str, pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> DimensionScore:
    g_prim, p_prim, exact, jac = [], [], [], []
    for gold, pred in pairs:
        g, p = align(gold, pred)
        g_prim.append(g)
        p_prim.append(p)
        gs, ps = set(gold), set(pred)
        exact.append(gs == ps)
        jac.append(len(gs & ps) / len(gs | ps) if gs | ps else 1.0)
    n = len(pairs)
    covered = [i for i, p in enumerate(p_prim) if p != ABSTAIN]
    # majority baseline on the same issues: always answer the most frequent gold first label
    firsts = Counter(gold[0] for gold, _ in pairs)
    maj, _ = firsts.most_common(1)[0] if firsts else (ABSTAIN, 0)
    maj_acc = sum(maj in gold for gold, _ in pairs) / n if n else float("nan")
    labels = sorted(set(g_prim) | (set(p_prim) - {ABSTAIN}))
    cols = labels + [ABSTAIN]
    index = {c: i for i, c in enumerate(cols)}
    conf = [[0] * len(cols) for _ in labels]
    for g, p in zip(g_prim, p_prim, strict=True):
        conf[index[g]][index[p]] += 1
    acc = float(np.mean([g == p for g, p in zip(g_prim, p_prim, strict=True)])) if n else float("nan")
    return DimensionScore(
        dimension=dim, n=n, accuracy=round(acc, 4),
        macro_f1=round(macro_f1(g_prim, p_prim), 4), kappa=round(cohen_kappa(g_prim, p_prim), 4),
        coverage=round(len(covered) / n, 4) if n else float("nan"),
        accuracy_covered=round(float(np.mean([g_prim[i] == p_prim[i] for i in covered])), 4) if covered else None,
        exact_set=round(float(np.mean(exact)), 4) if n else float("nan"),
        jaccard=round(float(np.mean(jac)), 4) if n else float("nan"),
        majority_label=maj, majority_accuracy=round(maj_acc, 4), labels=labels, confusion=conf,
    )


def evaluate(spec: TaxonomySpec, gold: LabelMap, pred: LabelMap,
             dims: Sequence[str] | None = None,
             confidence: Mapping[Key, Mapping[str, float]] | None = None) -> EvalReport:
    """Score ``pred`` against ``gold`` on the issues both have, for every output dimension
    that the gold labels use (or ``dims``); with the labels' ``confidence``, also the
    agreement at each confidence threshold (:func:`agreement_by_confidence`)."""
    gold_c = {k: complete_levels(spec, v) for k, v in gold.items()}
    pred_c = {k: complete_levels(spec, v) for k, v in pred.items()}
    common = [k for k in gold_c if k in pred_c]
    wanted = list(dims) if dims else [d for d in spec.output_dims
                                       if any(gold_c[k].get(d) for k in common)]
    report = EvalReport(taxonomy=spec.name, n_gold=len(gold_c), n_pred=len(pred_c), n_common=len(common))
    for dim in wanted:
        pairs = [(gold_c[k][dim], pred_c[k].get(dim, [])) for k in common if gold_c[k].get(dim)]
        if pairs:
            report.dimensions[dim] = score_dimension(dim, pairs)
    if confidence is not None:
        report.by_confidence = agreement_by_confidence(spec, gold, pred, confidence,
                                                       dims=list(report.dimensions))
    return report


CONFIDENCE_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def agreement_by_confidence(
    spec: TaxonomySpec,
    gold: LabelMap,
    pred: LabelMap,
    confidence: Mapping[Key, Mapping[str, float]],
    *,
    dims: Sequence[str],
    thresholds: Sequence[float] = CONFIDENCE_THRESHOLDS,
) -> dict[str, list[dict[str, float]]]:
    """For each dimension and threshold t: the share of the gold issues whose machine label
    has confidence >= t (what ``classify --threshold t`` labels; the rest would go to
    people) and the agreement on that share. It tells a researcher which threshold buys the
    agreement they need and how many issues are left to label by hand."""
    out: dict[str, list[dict[str, float]]] = {}
    for dim in dims:
        base = [k for k in gold if k in pred]
        total = sum(1 for k in base if complete_levels(spec, gold[k]).get(dim))
        rows = []
        for t in thresholds:
            kept = {k: pred[k] for k in base if confidence.get(k, {}).get(dim, 0.0) >= t}
            s = evaluate(spec, gold, kept, dims=[dim]).dimensions.get(dim)
            rows.append({"threshold": t, "coverage": round(s.n / total, 4) if s and total else 0.0,
                         "n": s.n if s else 0,
                         "accuracy": s.accuracy if s else float("nan"),
                         "kappa": s.kappa if s else float("nan")})
        out[dim] = rows
    return out


def lowest_threshold(rows: Sequence[Mapping[str, float]], metric: str, target: float, *,
                     min_n: int = 1) -> Mapping[str, float] | None:
    """The row of the lowest threshold (largest coverage) whose ``metric`` reaches ``target``
    on at least ``min_n`` issues."""
    return next((r for r in rows if r["n"] >= max(min_n, 1) and r[metric] >= target), None)


def learning_curve(
    spec: TaxonomySpec,
    items: Sequence[Any],
    gold: Sequence[Mapping[str, Sequence[str]]],
    fit_predict: Callable[[Sequence[Any], Sequence[Mapping[str, Sequence[str]]], Sequence[Any]],
                          Sequence[Mapping[str, Sequence[str]]]],
    *,
    sizes: Sequence[int] | None = None,
    folds: int = 5,
    seed: int = 0,
    dims: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Kappa against the number of human labels used, by k-fold cross-validation: for each
    fold and each size n, fit on n labeled items of the other folds and score the held-out
    fold. Returns one row per size: {"n": n, "<dim>": mean kappa, "<dim>_sd": sd, ...}."""
    n_items = len(items)
    if n_items < folds * 2:
        return []
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_items)
    fold_of = np.empty(n_items, dtype=int)
    fold_of[order] = np.arange(n_items) % folds
    max_train = n_items - int(np.ceil(n_items / folds))
    if sizes is None:
        sizes = sorted({s for s in (10, 20, 40, 80, 160, 320, 640, 1280) if s < max_train} | {max_train})
    wanted = list(dims) if dims else None
    rows = []
    for size in sizes:
        per_dim: dict[str, list[float]] = {}
        for f in range(folds):
            train_idx = [int(i) for i in order if fold_of[i] != f][:size]
            test_idx = [int(i) for i in range(n_items) if fold_of[i] == f]
            preds = fit_predict([items[i] for i in train_idx], [gold[i] for i in train_idx],
                                [items[i] for i in test_idx])
            rep = evaluate(spec, {(str(i), 0): gold[i] for i in test_idx},
                           {(str(i), 0): p for i, p in zip(test_idx, preds, strict=True)}, wanted)
            for dim, sc in rep.dimensions.items():
                per_dim.setdefault(dim, []).append(sc.kappa)
        row: dict[str, Any] = {"n": int(size)}
        for dim, ks in per_dim.items():
            row[dim] = round(float(np.nanmean(ks)), 4)
            row[f"{dim}_sd"] = round(float(np.nanstd(ks)), 4)
        rows.append(row)
    return rows
