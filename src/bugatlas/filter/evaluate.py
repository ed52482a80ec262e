"""Measuring the issue-kind classifier against maintainers' labels, by cross-validation.

The gold standard is the kind the maintainers' labels give (``text.yaml: maintainer_kinds``);
the classifier sees only title and body. Every figure comes with a majority-class baseline
measured on the same folds, and model selection is nested (chosen on inner folds only), so the
reported score is not tuned on the issues it is measured on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from bugatlas.filter.model import IssueKindModel, ModelParams, build_pipeline, features_frame
from bugatlas.filter.text import maintainer_kinds


@dataclass
class GoldSet:
    repos: list[str]
    numbers: list[int]
    titles: list[str]
    bodies: list[str]
    kinds: list[str]
    skipped_ambiguous: int = 0
    skipped_unlabeled: int = 0

    def __len__(self) -> int:
        return len(self.kinds)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for k in self.kinds:
            out[k] = out.get(k, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def gold_set(issues: Iterable[Any], kinds: Sequence[str] | None = None) -> GoldSet:
    """Issues (records or dicts with repo, number, title, body, labels) whose maintainers' labels
    give exactly one kind (optionally one of ``kinds``)."""
    g = GoldSet([], [], [], [], [])
    for it in issues:
        get = it.get if isinstance(it, dict) else lambda k, it=it: getattr(it, k, None)
        if get("is_reference") or (get("title") is None and get("body") is None):
            continue
        found = maintainer_kinds(get("labels") or [])
        if len(found) != 1:
            if found:
                g.skipped_ambiguous += 1
            else:
                g.skipped_unlabeled += 1
            continue
        k = found.pop()
        if kinds is not None and k not in kinds:
            continue
        g.repos.append(str(get("repo")))
        g.numbers.append(int(get("number")))
        g.titles.append(get("title") or "")
        g.bodies.append(get("body") or "")
        g.kinds.append(k)
    return g


@dataclass
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class CVResult:
    name: str
    macro_f1: float
    accuracy: float
    per_class: dict[str, ClassScores]
    confusion: dict[str, dict[str, int]]
    fold_macro_f1: list[float] = field(default_factory=list)
    chosen: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # Calibration of the confidence (probability of the predicted kind) on held-out issues:
    # expected calibration error over 10 bins, and the multi-class Brier score.
    ece: float | None = None
    brier: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_class"] = {k: asdict(v) for k, v in self.per_class.items()}
        return d


def _scores(name: str, y: Sequence[str], p: Sequence[str], classes: list[str]) -> CVResult:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    pr, rc, f1, sup = precision_recall_fscore_support(y, p, labels=classes, zero_division=0)
    cm = confusion_matrix(y, p, labels=classes)
    return CVResult(
        name=name, macro_f1=round(float(np.mean(f1)), 4), accuracy=round(float(accuracy_score(y, p)), 4),
        per_class={c: ClassScores(round(float(a), 4), round(float(b), 4), round(float(f), 4), int(s))
                   for c, a, b, f, s in zip(classes, pr, rc, f1, sup, strict=True)},
        confusion={c: {d: int(cm[i, j]) for j, d in enumerate(classes)} for i, c in enumerate(classes)},
    )  # fmt: skip


def _fit_predict(params: ModelParams, Xtr, ytr, Xte) -> np.ndarray:  # noqa: ANN001
    return _fit_proba(params, Xtr, ytr, Xte)[0]


def _fit_proba(params: ModelParams, Xtr, ytr, Xte) -> tuple[np.ndarray, np.ndarray, list[str]]:  # noqa: ANN001
    pipe = build_pipeline(params)
    pipe.fit(Xtr, ytr)
    proba = pipe.predict_proba(Xte)
    classes = [str(c) for c in pipe.classes_]
    return np.array(classes, dtype=object)[proba.argmax(1)], proba, classes


def calibration(y: Sequence[str], proba: np.ndarray, classes: list[str], bins: int = 10) -> tuple[float, float]:
    """(expected calibration error of the top-class confidence, multi-class Brier score)."""
    y = np.asarray(y, dtype=object)
    conf = proba.max(1)
    correct = np.array(classes, dtype=object)[proba.argmax(1)] == y
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - correct[m].mean())
    onehot = (y[:, None] == np.array(classes, dtype=object)[None, :]).astype(float)
    brier = float(((proba - onehot) ** 2).sum(1).mean())
    return round(float(ece), 4), round(brier, 4)


def _inner_select(grid: list[ModelParams], X, y, folds: int, seed: int) -> tuple[ModelParams, dict[str, float]]:  # noqa: ANN001
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    scores = {}
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for params in grid:
        preds = np.empty(len(y), dtype=object)
        for tr, te in skf.split(X, y):
            preds[te] = _fit_predict(params, X.iloc[tr], y[tr], X.iloc[te])
        scores[params.key()] = float(f1_score(y, preds, average="macro"))
    best = max(grid, key=lambda p: scores[p.key()])
    return best, scores


def cross_validate(gold: GoldSet, *, grid: list[ModelParams] | None = None, folds: int = 5,
                   inner_folds: int = 3, seed: int = 0, strip: bool = True,
                   progress: Callable[[str], None] | None = None) -> dict[str, CVResult]:
    """Stratified ``folds``-fold CV of the classifier and of the majority baseline, same folds.

    With a ``grid`` of several parameter sets the model is chosen per outer fold by an inner
    ``inner_folds``-fold CV on that fold's training part only (nested CV)."""
    from sklearn.model_selection import StratifiedKFold

    grid = [replace(p, strip_prefixes=strip) for p in (grid or [ModelParams()])]
    y = np.array(gold.kinds, dtype=object)
    classes = sorted(set(gold.kinds), key=lambda c: -gold.kinds.count(c))
    X = features_frame(gold.titles, gold.bodies, strip=strip)
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    pred = np.empty(len(y), dtype=object)
    proba = np.zeros((len(y), len(classes)))
    base = np.empty(len(y), dtype=object)
    chosen, fold_f1 = [], []
    t0 = time.perf_counter()
    from sklearn.metrics import f1_score

    for i, (tr, te) in enumerate(skf.split(X, y), 1):
        if len(grid) > 1:
            params, inner = _inner_select(grid, X.iloc[tr], y[tr], inner_folds, seed + i)
            chosen.append({"fold": i, "params": asdict(params), "inner_macro_f1": round(inner[params.key()], 4)})
        else:
            params = grid[0]
        pred[te], p, cls = _fit_proba(params, X.iloc[tr], y[tr], X.iloc[te])
        proba[np.ix_(te, [classes.index(c) for c in cls])] = p
        vals, counts = np.unique(y[tr], return_counts=True)
        base[te] = vals[int(counts.argmax())]
        fold_f1.append(round(float(f1_score(y[te], pred[te], average="macro")), 4))
        if progress:
            progress(f"fold {i}/{folds}: macro-F1 {fold_f1[-1]:.3f}")
    model = _scores("model", list(y), list(pred), classes)
    model.fold_macro_f1, model.chosen, model.seconds = fold_f1, chosen, round(time.perf_counter() - t0, 1)
    model.ece, model.brier = calibration(y, proba, classes)
    baseline = _scores("majority", list(y), list(base), classes)
    return {"model": model, "majority": baseline}


def select_and_train(gold: GoldSet, grid: list[ModelParams], *, folds: int = 5, seed: int = 0,
                     meta: dict[str, Any] | None = None) -> tuple[IssueKindModel, dict[str, float]]:
    """Choose parameters by ``folds``-fold CV on all of ``gold`` and train the final model on it."""
    X = features_frame(gold.titles, gold.bodies, strip=grid[0].strip_prefixes)
    y = np.array(gold.kinds, dtype=object)
    best, scores = _inner_select(grid, X, y, folds, seed) if len(grid) > 1 else (grid[0], {})
    model = IssueKindModel.train(gold.titles, gold.bodies, gold.kinds, best, meta)
    model.meta["selection_cv_macro_f1"] = {k: round(v, 4) for k, v in scores.items()}
    return model, scores


DEFAULT_GRID = [
    ModelParams(classifier="svm", C=0.5),
    ModelParams(classifier="svm", C=1.0),
    ModelParams(classifier="svm", C=1.0, title_weight=1.5, title_char_weight=1.5),
    ModelParams(classifier="logreg", C=20.0),
]
