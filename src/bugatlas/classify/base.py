"""The one shape every classifier has: ``fit(issues, labels)`` then ``predict(issues)``.

A classifier scores each base dimension of a codebook (``symptom``, ``root_cause`` ...) as
a probability over its leaves (optionally also directly over the groups of a level), with
evidence per category. :func:`decide` turns scores into labels: the best group first, then
the best leaf inside it (so a leaf never contradicts its group), a second label for
multi-label dimensions only when it is nearly as likely, and no label at all when the
confidence is below the threshold (abstention).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import numpy as np

from bugatlas.classify.schema import TaxonomySpec
from bugatlas.errors import BadInputError
from bugatlas.store.records import Issue

# Human labels given to fit(): per issue, output dimension -> names (leaves or groups).
LabelSet = Mapping[str, Sequence[str]]

DEFAULT_THRESHOLD = 0.35
NO_EVIDENCE = "no signature and no word of the codebook's categories in the issue: abstained"


@dataclass(frozen=True)
class Thresholds:
    """Abstention thresholds per output dimension (e.g. read off a model's calibration, so
    that each dimension keeps only labels that agree with people well enough); ``default``
    for the others."""

    default: float = DEFAULT_THRESHOLD
    per_dim: Mapping[str, float] = field(default_factory=dict)

    def of(self, out_dim: str) -> float:
        return self.per_dim.get(out_dim, self.default)

    def as_dict(self) -> dict[str, float]:
        return {"default": self.default, **self.per_dim}


Threshold = float | Thresholds


def threshold_of(threshold: Threshold, out_dim: str) -> float:
    return threshold.of(out_dim) if isinstance(threshold, Thresholds) else threshold


@dataclass
class DimScores:
    probs: dict[str, float]                                   # leaf -> probability (sums to 1)
    evidence: dict[str, list[str]] = field(default_factory=dict)  # category -> lines/phrases
    strength: float = 0.0                                     # how much evidence there was
    level_probs: dict[str, dict[str, float]] = field(default_factory=dict)  # level dim -> group -> p
    # False: the scores carry no evidence about this issue (e.g. it shares no word with any
    # category's text): decide() abstains whatever the probabilities say
    informative: bool = True


@dataclass
class Prediction:
    repo: str
    number: int
    taxonomy: str
    labels: dict[str, list[str]]
    confidence: dict[str, float]
    evidence: dict[str, list[str]]
    source_kind: dict[str, str]
    scores: dict[str, DimScores] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.repo, self.number)

    def margin(self, dim: str) -> float:
        """Top-1 minus top-2 probability (small = uncertain), for uncertainty sampling."""
        sc = self.scores.get(dim)
        if sc is None or not sc.probs:
            return 0.0
        top = sorted(sc.probs.values(), reverse=True) + [0.0]
        return top[0] - top[1]


class Classifier(Protocol):
    name: str
    source_kind: str

    @property
    def version(self) -> str: ...

    def fit(self, issues: Sequence[Issue], labels: Sequence[LabelSet | None] | None = None) -> Classifier: ...

    def score(self, issues: Sequence[Issue]) -> list[dict[str, DimScores]]: ...

    def predict(self, issues: Sequence[Issue], *, threshold: Threshold = DEFAULT_THRESHOLD) -> list[Prediction]: ...


def normalize(scores: Mapping[str, float]) -> dict[str, float]:
    total = sum(max(v, 0.0) for v in scores.values())
    if total <= 0:
        n = len(scores) or 1
        return {k: 1.0 / n for k in scores}
    return {k: max(v, 0.0) / total for k, v in scores.items()}


def level_probs(spec: TaxonomySpec, dim: str, sc: DimScores, out_dim: str) -> dict[str, float]:
    """Probability of each value of ``out_dim``: the classifier's own scores for that level
    when it has them, else the sum of the probabilities of the leaves under each value."""
    if sc.level_probs.get(out_dim):
        return dict(sc.level_probs[out_dim])
    dspec = spec.dims[dim]
    agg: dict[str, float] = {}
    for leaf, p in sc.probs.items():
        v = dspec.store.get(leaf, {}).get(out_dim)
        if v is not None:
            agg[v] = agg.get(v, 0.0) + p
    return agg


def decide(
    spec: TaxonomySpec,
    dim: str,
    sc: DimScores,
    *,
    threshold: Threshold = DEFAULT_THRESHOLD,
    second_ratio: float = 0.75,
    second_min: float = 0.3,
) -> tuple[dict[str, list[str]], dict[str, float], dict[str, list[str]]]:
    """Labels, confidence and evidence for every out dim of ``dim``, top level first: the
    best value at a level, then only leaves under it compete at the next level. A
    multi-label dimension gets a second top-level value when it is nearly as likely."""
    dspec = spec.dims[dim]
    labels: dict[str, list[str]] = {d: [] for d in dspec.out_dims}
    conf: dict[str, float] = {d: 0.0 for d in dspec.out_dims}
    evidence: dict[str, list[str]] = {d: [] for d in dspec.out_dims}
    # leaves still allowed under each chosen top-level value, in codebook order (a set's order
    # would break ties differently from run to run)
    paths: list[list[str]] = []
    path_conf: list[float] = []
    path_labeled: list[bool] = []
    if not sc.informative:
        return labels, conf, {d: [NO_EVIDENCE] for d in dspec.out_dims}
    for rank, out_dim in enumerate(dspec.out_dims):
        probs = level_probs(spec, dim, sc, out_dim)
        if rank == 0:
            if not probs:
                break
            ranked = sorted(probs, key=probs.__getitem__, reverse=True)
            best = ranked[0]
            conf[out_dim] = round(float(probs[best]), 4)
            chosen = [best] if probs[best] >= threshold_of(threshold, out_dim) else []
            if chosen and dspec.multi_label:
                for other in ranked[1 : dspec.max_labels]:
                    if probs[other] >= second_min and probs[other] >= second_ratio * probs[best]:
                        chosen.append(other)
            labels[out_dim] = chosen
            for v in chosen or [best]:
                paths.append(list(dspec.leaves_under(out_dim, v)))
                path_conf.append(float(probs[v]))
                path_labeled.append(v in chosen)
                evidence[out_dim] += _evidence_for(dspec, sc, out_dim, v)
            continue
        for i, allowed in enumerate(paths):
            cands = {v: probs.get(v, 0.0) for v in dict.fromkeys(dspec.store[leaf].get(out_dim) for leaf in allowed) if v}
            if not cands:
                continue
            total = sum(cands.values())
            best = max(cands, key=cands.__getitem__)
            # a lower level's confidence is joint: P(top value) * P(this value | top value)
            path_conf[i] *= cands[best] / total if total > 0 else 1.0 / len(cands)
            if i == 0:
                conf[out_dim] = round(path_conf[i], 4)
            # once a level abstains, the levels below it abstain too
            path_labeled[i] = path_labeled[i] and path_conf[i] >= threshold_of(threshold, out_dim)
            if path_labeled[i] and best not in labels[out_dim]:
                labels[out_dim].append(best)
            evidence[out_dim] += _evidence_for(dspec, sc, out_dim, best)
            paths[i] = [leaf for leaf in allowed if dspec.store[leaf].get(out_dim) == best]
    for d in evidence:
        evidence[d] = list(dict.fromkeys(evidence[d]))[:6]
        if labels[d] and not evidence[d]:  # every label says why, even a base-rate guess
            evidence[d] = [f"no signature or distinctive term: {labels[d][0]} is the most likely "
                           f"category overall (p={conf[d]:.2f})"]
    return labels, conf, evidence


def _evidence_for(dspec, sc: DimScores, out_dim: str, value: str) -> list[str]:
    ev = list(sc.evidence.get(value, []))
    for leaf in dspec.leaves_under(out_dim, value):
        if leaf != value:
            ev += sc.evidence.get(leaf, [])
    return ev


def predictions_from_scores(
    spec: TaxonomySpec,
    issues: Sequence[Issue],
    scored: Sequence[Mapping[str, DimScores]],
    source_kind: str,
    *,
    threshold: Threshold = DEFAULT_THRESHOLD,
) -> list[Prediction]:
    out = []
    for issue, dims in zip(issues, scored, strict=True):
        labels: dict[str, list[str]] = {}
        conf: dict[str, float] = {}
        evidence: dict[str, list[str]] = {}
        for dim, sc in dims.items():
            lab, c, ev = decide(spec, dim, sc, threshold=threshold)
            labels.update(lab)
            conf.update(c)
            evidence.update(ev)
        out.append(Prediction(repo=issue.repo, number=issue.number, taxonomy=spec.name,
                              labels=labels, confidence=conf, evidence=evidence,
                              source_kind={d: source_kind for d in labels}, scores=dict(dims)))
    return out


def fit_inputs(spec: TaxonomySpec, name: str, issues: Sequence[Issue],
               labels: Sequence[LabelSet | None] | None) -> tuple[list[Issue], list[LabelSet | None]]:
    """``fit``'s arguments as lists, checked: one label set (or None) per issue, category names
    of the codebook (a single-valued dimension may be given as a string, as the batch format
    writes it). A wrong length or name is one line, not an IndexError or a silently dropped label."""
    issues = list(issues)
    if labels is None:
        return issues, [None] * len(issues)
    labels = list(labels)
    if len(labels) != len(issues):
        raise BadInputError(f"{name}: fit got {len(issues)} issues but {len(labels)} label sets "
                            "(one per issue, None for an unlabeled one)")
    out: list[LabelSet | None] = []
    for issue, lab in zip(issues, labels, strict=True):
        if not lab:
            out.append(lab)
            continue
        fixed = {}
        for dim, values in lab.items():
            fixed[dim] = [values] if isinstance(values, str) else list(values or [])
        fixed = at_own_level(spec, fixed)
        for dim, values in fixed.items():
            check_names(spec, dim, values, f"{name}: labels of {issue.repo}#{issue.number}")
        out.append(fixed)
    return issues, out


def at_own_level(spec: TaxonomySpec, labels: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """``labels`` with a category that has children, written at the leaf dimension, moved to its
    own level. A label that stops above the leaves is stored at every level of its path, the leaf
    dimension included (`taxonomy map` onto yu2026's Process Hang writes symptom_category and
    symptom = Process Hang): it names no leaf, and scored or trained as one it is wrong."""
    out = {k: list(v) for k, v in labels.items()}
    for dspec in spec.dims.values():
        for leaf_dim in dspec.leaf_dims:
            values = out.get(leaf_dim)
            if not values:
                continue
            keep = []
            for v in values:
                level = next((d for d in dspec.out_dims if d != leaf_dim and v in dspec.values(d)), None)
                if v in dspec.store or level is None:
                    keep.append(v)
                elif v not in out.setdefault(level, []):
                    out[level].append(v)
            out[leaf_dim] = keep
    return out


def check_names(spec: TaxonomySpec, dim: str, values: Sequence[str], where: str) -> None:
    """Raise a one-line BadInputError when a name is not in the codebook's ``dim`` (a dimension
    the codebook does not classify is ignored)."""
    try:
        spec.base_of(dim)
    except KeyError:
        return
    bad = [v for v in values if not spec.valid(dim, v)]
    if bad:
        raise BadInputError(f"{where}: {dim}: not in the {spec.name} codebook: {', '.join(map(repr, bad))}")


def leaf_targets(spec: TaxonomySpec, dim: str, labels: LabelSet | None) -> list[str]:
    """The leaves a human gave for ``dim`` (in any of its out dims)."""
    if not labels:
        return []
    dspec = spec.dims[dim]
    leaves = set(dspec.leaves)
    found = [v for d in dspec.out_dims for v in (labels.get(d) or []) if v in leaves]
    return list(dict.fromkeys(found))


def level_targets(spec: TaxonomySpec, dim: str, out_dim: str, labels: LabelSet | None) -> list[str]:
    """The values a human gave at ``out_dim`` (directly, or implied by the leaves)."""
    if not labels:
        return []
    dspec = spec.dims[dim]
    values = set(dspec.values(out_dim))
    direct = [v for v in labels.get(out_dim) or [] if v in values]
    if direct:
        return list(dict.fromkeys(direct))
    implied = [dspec.store[leaf].get(out_dim) for leaf in leaf_targets(spec, dim, labels)]
    return list(dict.fromkeys(v for v in implied if v))


def model_terms(idx: Any, vals: Any, names: Any, k: int = 5) -> list[str]:
    """The evidence line of a linear model: the ``k`` features of one issue (column indices
    ``idx``, their contributions ``vals``) that pushed it most towards a class, stop-word-only
    terms left out; stops reading once it has ``k``."""
    ranked = (idx[j] for j in np.argsort(-vals) if vals[j] > 0)
    top = list(islice((t for t in ranked if explains(names[t])), k))
    return [f"model terms: {', '.join(names[t] for t in top)}"] if top else []


def explains(term: str) -> bool:
    """Whether a model feature is worth showing as evidence: "title:on" or "with to" move the
    model but tell a reader nothing, so terms made only of English stop words are not shown
    (the model still uses them; only the evidence leaves them out)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = term.rpartition(":")[2].split()
    return any(w.lower() not in ENGLISH_STOP_WORDS for w in words)
