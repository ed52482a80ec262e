"""The local text model: TF-IDF word n-grams and one logistic regression (by SGD) per dimension and
per hierarchy level, on the CPU, offline.

No labeled issue text ships for the published taxonomies (Liu et al. and Open-LLM-Failures
publish labels without text), so the model learns from three sources, weighted:

1. *prototypes*: each category's codebook text (name, definition, inclusion notes), so every
   category is known even before any issue is labeled;
2. *weak labels*: the rule classifier's confident decisions on the unlabeled issues it is
   fitted on; the model then generalises from the words that co-occur with strong
   signatures to issues no rule matches;
3. *human labels* when the store has them (``bugatlas train``), which outweigh the others.

A head whose issues (weak or human labels) show fewer than two of its categories cannot learn
to tell them apart: a regression fitted on one prototype per category and one-sided weak labels
answers its intercepts (every issue one category). Such a head scores an issue instead by its
closest category text: the cosine of the issue's TF-IDF vector with each category's
description (a group: its own text or any of its members', whichever is closest), stop words
left out. An issue that shares no word with any category's text is no evidence: it is
abstained on.

Why not a sentence-embedding model: see the README's dependency notes (speed on two cores,
a multi-gigabyte install); TF-IDF + linear models reach the throughput target with room.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier

from bugatlas.classify.base import (
    DEFAULT_THRESHOLD,
    DimScores,
    LabelSet,
    Prediction,
    Threshold,
    explains,
    fit_inputs,
    leaf_targets,
    level_targets,
    model_terms,
    normalize,
    predictions_from_scores,
)
from bugatlas.classify.rules import RuleClassifier
from bugatlas.classify.schema import TaxonomySpec, taxonomy_spec
from bugatlas.classify.text import Doc, issue_doc, model_text
from bugatlas.errors import BugAtlasError
from bugatlas.store.records import Issue

TOKEN_PATTERN = r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b"  # identifiers like cuda_error, no bare numbers
# softmax temperature over a prototype head's cosine similarities: TF-IDF cosines of an issue
# with a one-paragraph definition are ~0.02-0.2, so a lead of 0.05 is worth a factor e
PROTOTYPE_TEMPERATURE = 0.05


@dataclass
class _Head:
    """One logistic regression: a base dimension's leaves, or one level's groups."""

    classes: list[str]
    clf: SGDClassifier | None  # None: a prototype head, or a dimension of one category
    # prototype head (no issue labels of two categories): category texts, one row per text,
    # ``proto_class[r]`` the index in ``classes`` of row r; scored by cosine similarity
    proto: Any = None
    proto_class: Any = None


class TextModel:
    source_kind = "model"

    def __init__(
        self,
        taxonomy: str,
        *,
        rules: RuleClassifier | None = None,
        weak_min_confidence: float = 0.6,
        weak_weight: float = 1.0,
        prototype_weight: float = 2.0,
        human_weight: float = 4.0,
        alpha: float = 1e-4,
        max_features: int = 50000,
        seed: int = 0,
        skip_heads: Sequence[str] = (),
    ):
        self.spec: TaxonomySpec = taxonomy_spec(taxonomy)
        self.rules = rules
        self.weak_min_confidence = weak_min_confidence
        self.weak_weight = weak_weight
        self.prototype_weight = prototype_weight
        self.human_weight = human_weight
        self.alpha = alpha
        self.max_features = max_features
        self.seed = seed
        # heads another model answers for (the supervised model's): not fitted, not scored
        self.skip_heads = set(skip_heads)
        self.name = f"model:{self.spec.name}"
        self.vectorizer: TfidfVectorizer | None = None
        self.heads: dict[str, _Head] = {}  # key: base dim, or "base_dim/level_dim"
        self.n_human = 0
        self.n_weak = 0
        self._digest = "unfitted"

    @property
    def version(self) -> str:
        return f"tfidf-lr-{self._digest}"

    @property
    def fitted(self) -> bool:
        return self.vectorizer is not None

    # -- fitting ---------------------------------------------------------------------------
    def _prototypes(self) -> tuple[list[str], list[tuple[str, str, str]]]:
        """Texts of the codebook categories and what they are: (head key, class)."""
        texts, meta = [], []
        for dim, dspec in self.spec.dims.items():
            for leaf in dspec.leaves:
                texts.append(dspec.descriptions.get(leaf, leaf))
                meta.append((dim, leaf, "leaf"))
            for level in self._level_dims(dim):
                for value in dspec.values(level):
                    members = [m for m in dspec.leaves_under(level, value) if m != value]
                    texts.append("\n".join([dspec.descriptions.get(value, value)]
                                           + [dspec.descriptions.get(m, m) for m in members]))
                    meta.append((f"{dim}/{level}", value, "group"))
        return texts, meta

    def fit(self, issues: Sequence[Issue], labels: Sequence[LabelSet | None] | None = None) -> TextModel:
        issues, labels = fit_inputs(self.spec, self.name, issues, labels)
        docs = [issue_doc(i) for i in issues]
        texts = [model_text(d) for d in docs]
        proto_texts, proto_meta = self._prototypes()
        self.vectorizer = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, 2), min_df=2 if len(texts) >= 50 else 1,
            max_df=0.9, max_features=self.max_features, token_pattern=TOKEN_PATTERN,
            lowercase=True, dtype=np.float32,
        )
        self.vectorizer.fit(texts + proto_texts)
        self._names = self._content = None  # a refit has a new vocabulary
        X = self.vectorizer.transform(texts)
        P = self.vectorizer.transform(proto_texts)
        weak = [None] * len(issues)
        if self.rules is not None:
            weak = [self.rules.score_doc(d) for d in docs]
        self.n_human = sum(1 for lab in labels if lab)
        self.n_weak = 0
        for dim in self.spec.dims:
            heads = [(key, level) for key, level in
                     [(dim, None)] + [(f"{dim}/{level}", level) for level in self._level_dims(dim)]
                     if key not in self.skip_heads]
            for key, level in heads:
                rows, ys, ws = [], [], []
                for j, (k, cls, _) in enumerate(proto_meta):
                    if k == key:
                        rows.append(("p", j)); ys.append(cls); ws.append(self.prototype_weight)  # noqa: E702
                for i in range(len(issues)):
                    human = (leaf_targets(self.spec, dim, labels[i]) if level is None
                             else level_targets(self.spec, dim, level, labels[i]))
                    if human:
                        for cls in human:
                            rows.append(("x", i)); ys.append(cls); ws.append(self.human_weight / len(human))  # noqa: E702
                        continue
                    sc = weak[i].get(dim) if weak[i] else None
                    if sc is None or sc.strength <= 0:
                        continue
                    probs = sc.probs if level is None else sc.level_probs.get(level, {})
                    if not probs:
                        continue
                    best = max(probs, key=probs.__getitem__)
                    if probs[best] >= self.weak_min_confidence:
                        rows.append(("x", i)); ys.append(best); ws.append(self.weak_weight * probs[best])  # noqa: E702
                        self.n_weak += level is None
                if len({y for (src, _), y in zip(rows, ys, strict=True) if src == "x"}) < 2:
                    self.heads[key] = self._prototype_head(dim, level)
                else:
                    self.heads[key] = self._fit_head(X, P, rows, ys, ws)
        self._digest = hashlib.sha256(
            f"{len(issues)}:{self.n_human}:{self.n_weak}:{X.nnz}:{self.alpha}:{sorted(self.skip_heads)}".encode()).hexdigest()[:10]
        return self

    def _fit_head(self, X, P, rows, ys, ws) -> _Head:
        from scipy.sparse import vstack

        classes = sorted(set(ys))
        if len(classes) < 2:
            return _Head(classes=classes, clf=None)
        mat = vstack([X[i] if src == "x" else P[i] for src, i in rows]).tocsr()
        # SGD on the log loss: logistic regression at a fraction of lbfgs's cost with 28
        # classes and 50k features (fitting happens on every classify run without a trained model)
        clf = SGDClassifier(loss="log_loss", alpha=self.alpha, max_iter=30, tol=1e-4,
                            random_state=self.seed)
        with warnings.catch_warnings():  # a few epochs are enough for ranking; no convergence noise
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(mat, ys, sample_weight=np.asarray(ws, dtype=float))
        return _Head(classes=list(clf.classes_), clf=clf)

    def _prototype_head(self, dim: str, level: str | None) -> _Head:
        """A head that scores by the closest category text (see the module's docstring): a
        leaf's rows are its description; a group's, its own text and each of its leaves'."""
        from sklearn.preprocessing import normalize as unit_rows

        dspec = self.spec.dims[dim]
        classes = list(dspec.leaves) if level is None else list(dspec.values(level))
        texts, owner = [], []
        for c, value in enumerate(classes):
            members = [] if level is None else [m for m in dspec.leaves_under(level, value) if m != value]
            for name in [value, *members]:
                texts.append(dspec.descriptions.get(name, name))
                owner.append(c)
        proto = self.vectorizer.transform(texts)
        proto = unit_rows(proto.multiply(self._content_columns()[None, :]).tocsr())
        return _Head(classes=classes, clf=None, proto=proto, proto_class=np.asarray(owner))

    def _feature_names(self):
        if self._names is None:
            self._names = self.vectorizer.get_feature_names_out()
        return self._names

    def _content_columns(self) -> np.ndarray:
        """1 for a feature with a content word, 0 for a stop-word-only one ("of", "out of"),
        which would make every issue close to every long category text; once per vocabulary."""
        if self._content is None:
            self._content = np.array([explains(t) for t in self._feature_names()], dtype=np.float32)
        return self._content

    def _similarities(self, head: _Head, X) -> tuple[np.ndarray, np.ndarray]:
        """Per issue and class: the best cosine with the class's texts, and which text it was."""
        S = np.asarray((X @ head.proto.T).todense())
        sims = np.zeros((X.shape[0], len(head.classes)), dtype=np.float32)
        rows = np.zeros((X.shape[0], len(head.classes)), dtype=np.int64)
        for c in range(len(head.classes)):
            idx = np.flatnonzero(head.proto_class == c)
            best = S[:, idx].argmax(axis=1)
            sims[:, c] = S[np.arange(S.shape[0]), idx[best]]
            rows[:, c] = idx[best]
        return sims, rows

    def _level_dims(self, dim: str) -> list[str]:
        """Out dims that need a head of their own (their values are not just the leaves)."""
        dspec = self.spec.dims[dim]
        return [d for d in dspec.out_dims if d not in dspec.leaf_dims]

    # -- prediction ------------------------------------------------------------------------
    def _head_scores(self, key: str, X) -> tuple[np.ndarray, Any]:
        """Class probabilities of every issue, and for a prototype head the per-issue term
        contributions towards its best class (its evidence; None for a learned head)."""
        head = self.heads[key]
        if head.proto is not None:
            sims, rows = self._similarities(head, X)
            z = (sims - sims.max(axis=1, keepdims=True)) / PROTOTYPE_TEMPERATURE
            probs = np.exp(z)
            probs /= probs.sum(axis=1, keepdims=True)
            best_rows = rows[np.arange(X.shape[0]), probs.argmax(axis=1)]
            contrib = X.multiply(head.proto[best_rows]).tocsr()
            contrib.eliminate_zeros()  # an issue with no contribution: it shares no category word
            return probs, contrib
        if head.clf is None:
            return np.ones((X.shape[0], max(len(head.classes), 1))), None
        return head.clf.predict_proba(X), None

    def _evidence(self, key: str, X, i: int, cls: str, contrib: Any = None, k: int = 5) -> list[str]:
        """The words of issue ``i`` that pushed it towards ``cls`` most (for a prototype head,
        the words it shares with the closest category text)."""
        head = self.heads[key]
        if contrib is not None:
            start, end = contrib.indptr[i], contrib.indptr[i + 1]
            return model_terms(contrib.indices[start:end], contrib.data[start:end], self._feature_names(), k)
        if head.clf is None or cls not in head.classes:
            return []
        coef = head.clf.coef_
        if coef.shape[0] > 1:
            w = coef[head.classes.index(cls)]
        else:  # binary: one row, positive towards classes[1]
            w = coef[0] if head.classes.index(cls) == 1 else -coef[0]
        start, end = X.indptr[i], X.indptr[i + 1]
        idx = X.indices[start:end]
        vals = X.data[start:end] * w[idx]
        return model_terms(idx, vals, self._feature_names(), k)

    _names = None
    _content = None

    def _top_head(self, dim: str) -> str:
        """The head that decides a dimension's top level (its groups', else its leaves')."""
        top = self.spec.dims[dim].out_dims[0]
        return f"{dim}/{top}" if top in self._level_dims(dim) else dim

    def score(self, issues: Sequence[Issue], docs: Sequence[Doc] | None = None) -> list[dict[str, DimScores]]:
        if not self.fitted:
            raise BugAtlasError("TextModel: predict or score before fit: call fit(issues, labels) first")
        docs = docs if docs is not None else [issue_doc(i) for i in issues]
        texts = [model_text(d) for d in docs]
        X = self.vectorizer.transform(texts)
        out: list[dict[str, DimScores]] = [{} for _ in issues]
        for dim, dspec in self.spec.dims.items():
            if dim not in self.heads:  # skipped: another model scores this dimension
                continue
            leaf_p, leaf_c = self._head_scores(dim, X)
            lv = {level: self._head_scores(f"{dim}/{level}", X) for level in self._level_dims(dim)
                  if f"{dim}/{level}" in self.heads}
            # whether an issue is evidence at all is up to the head of the top level (when it is
            # a prototype head); a skipped head's level is another model's to decide
            top = self._top_head(dim)
            top_contrib = None
            if top == dim:
                top_contrib = leaf_c
            elif top in self.heads:
                top_contrib = lv[top.partition("/")[2]][1]
            classes = self.heads[dim].classes
            for i in range(len(issues)):
                probs = {leaf: 0.0 for leaf in dspec.leaves}
                for c, p in zip(classes, leaf_p[i], strict=False):
                    probs[c] = float(p)
                probs = normalize(probs)
                best = max(probs, key=probs.__getitem__)
                evidence = {best: self._evidence(dim, X, i, best, leaf_c)}
                level_probs = {}
                for level, (arr, contrib) in lv.items():
                    g = {grp: 0.0 for grp in dspec.values(level)}
                    for c, p in zip(self.heads[f"{dim}/{level}"].classes, arr[i], strict=False):
                        g[c] = float(p)
                    level_probs[level] = normalize(g)
                    gbest = max(level_probs[level], key=level_probs[level].__getitem__)
                    evidence[gbest] = self._evidence(f"{dim}/{level}", X, i, gbest, contrib)
                informative = top_contrib is None or top_contrib.indptr[i + 1] > top_contrib.indptr[i]
                out[i][dim] = DimScores(probs=probs, evidence=evidence, strength=0.0,
                                        level_probs=level_probs, informative=informative)
        return out

    def predict(self, issues: Sequence[Issue], *, threshold: Threshold = DEFAULT_THRESHOLD) -> list[Prediction]:
        return predictions_from_scores(self.spec, issues, self.score(issues), self.source_kind,
                                       threshold=threshold)
