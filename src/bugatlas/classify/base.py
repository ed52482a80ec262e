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
from typing import Protocol

from bugatlas.classify.schema import TaxonomySpec
from bugatlas.store.records import Issue

# Human labels given to fit(): per issue, output dimension -> names (leaves or groups).
LabelSet = Mapping[str, Sequence[str]]

DEFAULT_THRESHOLD = 0.35


@dataclass
class DimScores:
    probs: dict[str, float]                                   # leaf -> probability (sums to 1)
    evidence: dict[str, list[str]] = field(default_factory=dict)  # category -> lines/phrases
    strength: float = 0.0                                     # how much evidence there was
    level_probs: dict[str, dict[str, float]] = field(default_factory=dict)  # level dim -> group -> p


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

    def predict(self, issues: Sequence[Issue], *, threshold: float = DEFAULT_THRESHOLD) -> list[Prediction]: ...


def normalize(scores: Mapping[str, float]) -> dict[str, float]:
    total = sum(max(v, 0.0) for v in scores.values())
    if total <= 0:
        n = len(scores) or 1
        return {k: 1.0 / n for k in scores}
    return {k: max(v, 0.0) / total for k, v in scores.items()}


def group_probs(spec: TaxonomySpec, dim: str, sc: DimScores) -> dict[str, dict[str, float]]:
    """Probability of each group at each level: the classifier's own group scores when it
    has them, else the sum of its leaf probabilities."""
    dspec = spec.dims[dim]
    out: dict[str, dict[str, float]] = {}
    for level in dspec.level_dims:
        if level in sc.level_probs and sc.level_probs[level]:
            out[level] = dict(sc.level_probs[level])
            continue
        agg: dict[str, float] = {g: 0.0 for g in dspec.groups(level)}
        for leaf, p in sc.probs.items():
            g = dspec.ancestors.get(leaf, {}).get(level)
            if g is not None:
                agg[g] = agg.get(g, 0.0) + p
        out[level] = agg
    return out


def decide(
    spec: TaxonomySpec,
    dim: str,
    sc: DimScores,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    second_ratio: float = 0.75,
    second_min: float = 0.3,
) -> tuple[dict[str, list[str]], dict[str, float], dict[str, list[str]]]:
    """Labels, confidence and evidence for ``dim`` and each of its levels."""
    dspec = spec.dims[dim]
    labels: dict[str, list[str]] = {}
    conf: dict[str, float] = {}
    evidence: dict[str, list[str]] = {}
    allowed = set(sc.probs)
    for level, probs in group_probs(spec, dim, sc).items():  # root level first
        candidates = {g: p for g, p in probs.items()
                      if any(dspec.ancestors.get(leaf, {}).get(level) == g for leaf in allowed)}
        if not candidates:
            labels[level], conf[level] = [], 0.0
            continue
        best = max(candidates, key=candidates.__getitem__)
        conf[level] = round(float(candidates[best]), 4)
        labels[level] = [best] if candidates[best] >= threshold else []
        ev = [e for leaf in allowed if dspec.ancestors.get(leaf, {}).get(level) == best
              for e in sc.evidence.get(leaf, [])] + sc.evidence.get(best, [])
        evidence[level] = list(dict.fromkeys(ev))[:6]
        # descend: leaves must sit under the chosen group
        allowed = {leaf for leaf in allowed if dspec.ancestors.get(leaf, {}).get(level) == best}
    leaf_probs = {leaf: sc.probs[leaf] for leaf in allowed}
    if not leaf_probs:
        labels[dim], conf[dim] = [], 0.0
        return labels, conf, evidence
    ranked = sorted(leaf_probs, key=leaf_probs.__getitem__, reverse=True)
    top = ranked[0]
    conf[dim] = round(float(sc.probs[top]), 4)
    chosen = [top] if sc.probs[top] >= threshold else []
    if chosen and dspec.multi_label:
        # a second label from the whole dimension (two root causes may sit in two groups)
        rest = sorted((k for k in sc.probs if k != top), key=sc.probs.__getitem__, reverse=True)
        for other in rest[: dspec.max_labels - 1]:
            p = sc.probs[other]
            if p >= second_min and p >= second_ratio * sc.probs[top]:
                chosen.append(other)
    labels[dim] = chosen
    evidence[dim] = list(dict.fromkeys(e for leaf in chosen or [top] for e in sc.evidence.get(leaf, [])))[:6]
    # groups of a second leaf join the group labels
    for level in dspec.level_dims:
        for leaf in chosen[1:]:
            g = dspec.ancestors.get(leaf, {}).get(level)
            if g and labels.get(level) and g not in labels[level]:
                labels[level].append(g)
    return labels, conf, evidence


def predictions_from_scores(
    spec: TaxonomySpec,
    issues: Sequence[Issue],
    scored: Sequence[Mapping[str, DimScores]],
    source_kind: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
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


def leaf_targets(spec: TaxonomySpec, dim: str, labels: LabelSet | None) -> list[str]:
    """The leaf names a human gave for ``dim`` (only names the codebook knows)."""
    if not labels:
        return []
    leaves = set(spec.dims[dim].leaves)
    return [v for v in labels.get(dim, []) or [] if v in leaves]


def level_targets(spec: TaxonomySpec, dim: str, level: str, labels: LabelSet | None) -> list[str]:
    """The groups a human gave at ``level`` (directly, or implied by the leaves)."""
    if not labels:
        return []
    dspec = spec.dims[dim]
    groups = set(dspec.groups(level))
    direct = [v for v in labels.get(level, []) or [] if v in groups]
    if direct:
        return direct
    implied = [dspec.ancestors.get(leaf, {}).get(level) for leaf in leaf_targets(spec, dim, labels)]
    return list(dict.fromkeys(g for g in implied if g))
