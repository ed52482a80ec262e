"""The supervised text model: learns a codebook from human labels alone.

Features: TF-IDF of the whole issue text and of each zone (title, prose, log: the same word
means different things in a title and in a traceback), next to the rule classifier's scores
(its signatures and cues as numbers, so the model learns how far to trust each). One
logistic regression per dimension and per hierarchy level that the labels cover.

Unlike :class:`~bugatlas.classify.model.TextModel` (weak labels from the rules, codebook
prototypes) this model needs a few hundred labeled issues; with them it is the better of the
two (bench/classify_devset.py measures both). BugAtlas ships one fitted on the labeled
training set in ``bench/trainset`` (``classify/models/<taxonomy>.pkl.xz``); ``bugatlas train``
fits one on the human labels in a store.
"""

from __future__ import annotations

import hashlib
import lzma
import pickle
import random
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bugatlas.classify.base import (
    DEFAULT_THRESHOLD,
    DimScores,
    LabelSet,
    Prediction,
    Threshold,
    Thresholds,
    at_own_level,
    fit_inputs,
    leaf_targets,
    level_probs,
    level_targets,
    model_terms,
    normalize,
    predictions_from_scores,
)
from bugatlas.classify.evaluate import agreement_by_confidence, lowest_threshold
from bugatlas.classify.model import TOKEN_PATTERN
from bugatlas.classify.rules import RuleClassifier
from bugatlas.classify.schema import (
    TaxonomySpec,
    check_same_codebook,
    package_files_apply,
    taxonomy_spec,
)
from bugatlas.classify.text import Doc, issue_doc, model_text
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.store.records import Issue

# zone -> (n-gram range, vocabulary size). Small vocabularies: with ~1,500 labeled issues a
# larger one adds no accuracy (measured: 56k terms and 11k terms give the same CV kappa)
# and the shipped model must stay small.
ZONES: dict[str, tuple[tuple[int, int], int]] = {
    "all": ((1, 2), 5000),
    "title": ((1, 2), 2000),
    "prose": ((1, 2), 3000),
    "log": ((1, 1), 1000),
}
NEVER = 1.01  # a threshold no confidence reaches: the dimension is left to people
MIN_LABELS = 20  # a head is fitted only with this many labeled issues (and two classes)
# Weight of a level head (e.g. root-cause group) against the sum of its leaves' probabilities
# from the leaf head. Chosen by 5-fold CV on the training labels (bench/trainset): 1.0 (the
# level head alone) 0.537 group accuracy, 0.5 0.545, 0.25 0.554, 0.0 0.555.
LEVEL_BLEND = 0.25


def zone_texts(doc: Doc) -> dict[str, str]:
    log = doc.log if len(doc.log) <= 3000 else doc.log[:1500] + "\n" + doc.log[-1500:]
    return {"all": model_text(doc), "title": doc.title, "prose": doc.prose[:6000], "log": log}


@dataclass
class _Head:
    classes: list[str]
    coef: np.ndarray       # float16 on disk, float32 in use
    intercept: np.ndarray

    def proba(self, X) -> np.ndarray:
        z = np.asarray(X @ self.coef.T.astype(np.float32)) + self.intercept
        if len(self.classes) == 2 and z.shape[1] == 1:  # binary LR: one column
            z = np.hstack([np.zeros_like(z), z])
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


class SupervisedModel:
    source_kind = "model"
    level_blend = LEVEL_BLEND  # a class default, so models pickled before it existed get it too
    # output dimension -> agreement by confidence threshold, cross-validated (see calibrate)
    calibration: dict[str, list[dict[str, float]]] = {}  # noqa: RUF012 (replaced, never mutated)
    calibration_n = 0
    # the issues whose human labels it learned from: agreement on them is in-sample (eval
    # reports it apart); a class default so models pickled before it existed load
    trained_on: frozenset[tuple[str, int]] = frozenset()
    # top-level out dim -> value -> share: the base rates the model learned, read against a
    # domain's (classify/domains.py). Held-out: its mean probability on issues it did not see
    # (calibrate, cross-validated: it also shows where it under-calls a rare class); else the
    # shares of its training labels. Class defaults, so models pickled before them load.
    label_shares: dict[str, dict[str, float]] = {}  # noqa: RUF012
    heldout_shares: dict[str, dict[str, float]] = {}  # noqa: RUF012

    def __init__(self, taxonomy: str, *, rules: RuleClassifier | None = None, C: float = 5.0,
                 rule_weight: float = 3.0, min_labels: int = MIN_LABELS):
        self.spec: TaxonomySpec = taxonomy_spec(taxonomy)
        self.rules = rules if rules is not None else RuleClassifier(self.spec.name)
        self.C = C
        self.rule_weight = rule_weight
        self.min_labels = min_labels
        self.name = f"supervised:{self.spec.name}"
        self.vectorizers: dict[str, TfidfVectorizer] = {}
        self.heads: dict[str, _Head] = {}   # base dim, or "base_dim/level_dim"
        self.n_human = 0
        self.rules_version = ""
        self._digest = "unfitted"
        self._names: np.ndarray | None = None

    @property
    def version(self) -> str:
        return f"supervised-lr-{self._digest}"

    @property
    def fitted(self) -> bool:
        return bool(self.heads)

    def covers(self, dim: str) -> bool:
        return any(k == dim or k.startswith(dim + "/") for k in self.heads)

    # -- features ----------------------------------------------------------------------------
    def _rule_features(self, docs: Sequence[Doc], rule_scores=None) -> np.ndarray:
        scored = rule_scores if rule_scores is not None else [self.rules.score_doc(d) for d in docs]
        rows = []
        for doc, dims in zip(docs, scored, strict=True):
            row: list[float] = []
            for dim, dspec in self.spec.dims.items():
                sc = dims.get(dim)
                row += [sc.probs.get(leaf, 0.0) if sc else 0.0 for leaf in dspec.leaves]
                for level in dspec.out_dims:
                    if level in dspec.leaf_dims:
                        continue
                    lp = sc.level_probs.get(level, {}) if sc else {}
                    row += [lp.get(v, 0.0) for v in dspec.values(level)]
                row.append(min(sc.strength, 10.0) / 10.0 if sc else 0.0)
            row += [float(bool(doc.log)), min(len(doc.log), 20000) / 20000.0]
            rows.append(row)
        return np.asarray(rows, dtype=np.float32) * self.rule_weight

    def _features(self, docs: Sequence[Doc], rule_scores=None):
        texts = [zone_texts(d) for d in docs]
        parts = [vec.transform([t[zone] for t in texts]) for zone, vec in self.vectorizers.items()]
        parts.append(csr_matrix(self._rule_features(docs, rule_scores)))
        return hstack(parts).tocsr().astype(np.float32)

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, issues: Sequence[Issue], labels: Sequence[LabelSet | None] | None = None) -> SupervisedModel:
        if labels is None:
            raise BugAtlasError(f"{self.name}: fit needs human labels")
        issues, labels = fit_inputs(self.spec, self.name, issues, labels)
        pairs = [(i, lab) for i, lab in zip(issues, labels, strict=True) if lab]
        if len(pairs) < self.min_labels:
            raise BugAtlasError(f"{self.name}: {len(pairs)} labeled issues; at least {self.min_labels} needed")
        docs = [issue_doc(i) for i, _ in pairs]
        texts = [zone_texts(d) for d in docs]
        self.vectorizers = {}
        for zone, (ngrams, size) in ZONES.items():
            vec = TfidfVectorizer(sublinear_tf=True, ngram_range=ngrams, min_df=2, max_df=0.9,
                                  max_features=size, token_pattern=TOKEN_PATTERN, dtype=np.float32)
            try:
                vec.fit([t[zone] for t in texts])
            except ValueError:  # no term in this zone in any issue (e.g. no logs at all)
                continue
            self.vectorizers[zone] = vec
        X = self._features(docs)
        self.heads = {}
        for dim, dspec in self.spec.dims.items():
            # a leaf head only where labels name leaves (liu2025 symptoms stop at the symptom:
            # its Unexpected Output sub-types are left to the rules and the weak model)
            heads = ([(dim, None)] if dspec.leaf_dims else []) + [
                (f"{dim}/{lv}", lv) for lv in dspec.out_dims if lv not in dspec.leaf_dims]
            for key, level in heads:
                rows, ys, ws = [], [], []
                for j, (_, lab) in enumerate(pairs):
                    targets = (leaf_targets(self.spec, dim, lab) if level is None
                               else level_targets(self.spec, dim, level, lab))
                    for cls in targets:  # two labels: two rows of half weight
                        rows.append(j); ys.append(cls); ws.append(1.0 / len(targets))  # noqa: E702
                if len(set(rows)) >= self.min_labels and len(set(ys)) >= 2:
                    self.heads[key] = self._fit_head(X[rows], ys, ws)
        self.n_human = len(pairs)
        self.trained_on = frozenset(i.key for i, _ in pairs)
        self.label_shares = self._label_shares([lab for _, lab in pairs])
        self.heldout_shares = {}
        self.rules_version = self.rules.version
        self._digest = hashlib.sha256(
            f"{self.n_human}:{X.nnz}:{self.C}:{sorted(self.heads)}:{self.level_blend}".encode()).hexdigest()[:10]
        self._names = None
        return self

    def _fit_head(self, X, ys, ws) -> _Head:
        clf = LogisticRegression(C=self.C, max_iter=3000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, ys, sample_weight=np.asarray(ws))
        # float16 halves the shipped file; probabilities move by < 1e-3
        return _Head(classes=[str(c) for c in clf.classes_], coef=clf.coef_.astype(np.float16),
                     intercept=clf.intercept_.astype(np.float32))

    def _tops(self) -> list[tuple[str, str]]:
        """(dim, its top-level out dim) for each dimension this model's heads decide at the top."""
        return [(dim, d.out_dims[0]) for dim, d in self.spec.dims.items() if self.answers(d.out_dims[0])]

    def _label_shares(self, labels: Sequence[LabelSet]) -> dict[str, dict[str, float]]:
        out = {}
        for dim, top in self._tops():
            counts: dict[str, float] = {}
            for lab in labels:
                targets = level_targets(self.spec, dim, top, lab)
                for v in targets:
                    counts[v] = counts.get(v, 0.0) + 1.0 / len(targets)
            if counts:
                out[top] = normalize(counts)
        return out

    def base_rates(self, out_dim: str) -> dict[str, float] | None:
        """The shares of ``out_dim``'s values this model's probabilities carry (see above)."""
        return self.heldout_shares.get(out_dim) or self.label_shares.get(out_dim) or None

    # -- prediction --------------------------------------------------------------------------
    def _feature_names(self) -> np.ndarray:
        if self._names is None:
            names = [f"{zone}:{t}" for zone, vec in self.vectorizers.items() for t in vec.get_feature_names_out()]
            self._names = np.asarray(names, dtype=object)
        return self._names

    def _evidence(self, head: _Head, X, i: int, cls: str, k: int = 5) -> list[str]:
        """The terms of issue ``i`` that pushed it towards ``cls`` most (rule features are
        left out: the rules give their own evidence)."""
        row = head.classes.index(cls)
        w = head.coef[row] if head.coef.shape[0] > 1 else (head.coef[0] if row == 1 else -head.coef[0])
        names = self._feature_names()
        start, end = X.indptr[i], X.indptr[i + 1]
        idx = X.indices[start:end]
        keep = idx < len(names)
        idx, vals = idx[keep], X.data[start:end][keep] * w[idx[keep]].astype(np.float32)
        return model_terms(idx, vals, names, k)

    def score(self, issues: Sequence[Issue], docs: Sequence[Doc] | None = None,
              rule_scores=None, dims: Collection[str] | None = None) -> list[dict[str, DimScores]]:
        """Scores for the dimensions with a fitted head (others are left out; labels with a
        single class fit no head, so a model can cover nothing); only ``dims`` when given."""
        if not self.vectorizers:
            raise BugAtlasError("SupervisedModel: predict or score before fit: call fit(issues, labels) first")
        if not self.heads:
            return [{} for _ in issues]
        docs = docs if docs is not None else [issue_doc(i) for i in issues]
        X = self._features(docs, rule_scores)
        out: list[dict[str, DimScores]] = [{} for _ in docs]
        for dim in self.spec.dims:
            if not self.covers(dim) or (dims is not None and dim not in dims):
                continue
            leaf = self.heads.get(dim)
            leaf_p = leaf.proba(X) if leaf else None
            lv = {k.split("/", 1)[1]: (h, h.proba(X)) for k, h in self.heads.items() if k.startswith(dim + "/")}
            for i in range(len(docs)):
                probs: dict[str, float] = {}
                evidence: dict[str, list[str]] = {}
                if leaf is not None and leaf_p is not None:
                    probs = normalize({c: float(p) for c, p in zip(leaf.classes, leaf_p[i], strict=True)})
                    best = max(probs, key=probs.__getitem__)
                    evidence[best] = self._evidence(leaf, X, i, best)
                by_level = {}
                for level, (head, arr) in lv.items():
                    own = dict(zip(head.classes, map(float, arr[i]), strict=True))
                    by_level[level] = normalize(self._blend(dim, level, own, probs))
                    g = max(by_level[level], key=by_level[level].__getitem__)
                    evidence.setdefault(g, self._evidence(head, X, i, g))
                out[i][dim] = DimScores(probs=probs, evidence=evidence, strength=0.0, level_probs=by_level)
        return out

    def _blend(self, dim: str, level: str, own: dict[str, float], leaf_probs: dict[str, float]) -> dict[str, float]:
        """A level head's probabilities mixed with those its leaves add up to (two views of
        the same question; together they are right more often than either)."""
        if not leaf_probs or self.level_blend >= 1.0:
            return own
        summed = level_probs(self.spec, dim, DimScores(probs=leaf_probs), level)
        return {v: self.level_blend * own.get(v, 0.0) + (1 - self.level_blend) * summed.get(v, 0.0)
                for v in dict.fromkeys([*own, *summed])}

    # -- calibration -------------------------------------------------------------------------
    def calibrate(self, issues: Sequence[Issue], labels: Sequence[LabelSet | None], *,
                  folds: int = 5, seed: int = 0, step: Callable[[str], None] | None = None) -> SupervisedModel:
        """Measure how well models like this one agree with people at each confidence
        threshold, on labels they did not see (``folds``-fold cross-validation over these
        labels, usually the ones it was fitted on), and keep the table with the model:
        :meth:`thresholds` reads it. ``step`` hears which fold is being fitted (minutes each
        on thousands of labels)."""
        pairs = [(i, lab) for i, lab in zip(issues, labels, strict=True) if lab]
        order = list(range(len(pairs)))
        random.Random(seed).shuffle(order)
        pred: dict[tuple[str, int], dict[str, list[str]]] = {}
        conf: dict[tuple[str, int], dict[str, float]] = {}
        held_sums: dict[str, dict[str, float]] = {}
        for f in range(folds):
            if step:
                step(f"calibration: fold {f + 1} of {folds}")
            held = set(order[f::folds])
            part = SupervisedModel(self.spec.name, rules=self.rules, C=self.C, rule_weight=self.rule_weight,
                                   min_labels=self.min_labels)
            part.level_blend = self.level_blend
            part.fit([pairs[j][0] for j in order if j not in held], [pairs[j][1] for j in order if j not in held])
            for p in part.predict([pairs[j][0] for j in sorted(held)], threshold=0.0):
                pred[p.key], conf[p.key] = p.labels, p.confidence
                for dim, top in self._tops():
                    if dim in p.scores:
                        sums = held_sums.setdefault(top, {})
                        for v, pv in level_probs(self.spec, dim, p.scores[dim], top).items():
                            sums[v] = sums.get(v, 0.0) + pv
        gold = {issue.key: lab for issue, lab in pairs}
        dims = [d for d in self.spec.output_dims if self.answers(d)]
        table = agreement_by_confidence(self.spec, gold, pred, conf, dims=dims)
        self.calibration = {d: rows for d, rows in table.items() if rows and rows[0]["n"]}
        self.calibration_n = len(pairs)
        self.heldout_shares = {top: normalize(sums) for top, sums in held_sums.items()}
        return self

    def answers(self, out_dim: str) -> bool:
        """Whether this model's own heads decide ``out_dim`` (liu2025's Unexpected Output
        sub-types, for one, come from the rules)."""
        base = self.spec.base_of(out_dim)
        dspec = self.spec.dims[base]
        return (base in self.heads and out_dim in dspec.leaf_dims) or f"{base}/{out_dim}" in self.heads

    def thresholds(self, min_kappa: float, *, default: float = DEFAULT_THRESHOLD) -> Thresholds:
        """Per output dimension, the lowest confidence threshold at which the calibration
        measured Cohen's kappa >= ``min_kappa`` (on at least 20 issues); a dimension that never
        reached it gets a threshold above 1, i.e. no labels. Dimensions without calibration
        keep ``default``."""
        if not self.calibration:
            raise BugAtlasError(f"{self.name}: no calibration (fit it with calibration, e.g. "
                                "`bugatlas train --labels ... --calibrate`)")
        per_dim = {}
        for dim, rows in self.calibration.items():
            hit = lowest_threshold(rows, "kappa", min_kappa, min_n=20)
            per_dim[dim] = hit["threshold"] if hit else NEVER
        return Thresholds(default=default, per_dim=per_dim)

    def predict(self, issues: Sequence[Issue], *, threshold: Threshold = DEFAULT_THRESHOLD) -> list[Prediction]:
        return predictions_from_scores(self.spec, issues, self.score(issues), self.source_kind,
                                       threshold=threshold)

    # -- persistence -------------------------------------------------------------------------
    def dumps(self) -> bytes:
        rules, self.rules = self.rules, None  # rebuilt from the signature file at load time
        names, self._names = self._names, None
        try:
            return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            self.rules, self._names = rules, names

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(lzma.compress(self.dumps(), preset=9 | lzma.PRESET_EXTREME))
        return path

    @classmethod
    def loads(cls, blob: bytes, where: str, *, taxonomy: str | None = None) -> SupervisedModel:
        """``taxonomy``: the codebook name the model must be of (checked before anything else)."""
        model = pickle.loads(blob)  # our own file: as trusted as the package or the store
        if not isinstance(model, SupervisedModel):
            raise BugAtlasError(f"{where}: not a supervised classifier model")
        if taxonomy is not None and model.spec.name != taxonomy:
            raise BadInputError(f"{where}: a {model.spec.name} model, not {taxonomy}")
        check_same_codebook(model.spec, where)
        model.rules = RuleClassifier(model.spec.name)
        return model

    @classmethod
    def load(cls, path: str | Path, *, taxonomy: str | None = None) -> SupervisedModel:
        path = Path(path)
        try:
            blob = lzma.decompress(path.read_bytes())
        except (OSError, lzma.LZMAError) as exc:
            raise BugAtlasError(f"{path}: cannot read the model ({exc})") from None
        return cls.loads(blob, str(path), taxonomy=taxonomy)


def shipped_model_path(taxonomy: str) -> Path | None:
    """The model fitted on BugAtlas's own labeled training set, if one ships for ``taxonomy``."""
    ref = resources.files("bugatlas.classify") / "models" / f"{taxonomy}.pkl.xz"
    path = Path(str(ref))
    return path if path.is_file() else None


_SHIPPED: dict[str, SupervisedModel | None] = {}


def shipped_model(taxonomy: str) -> SupervisedModel | None:
    """The shipped model of the package's codebook ``taxonomy``; None for a user's codebook of
    that name (e.g. one in BUGATLAS_CODEBOOKS overriding the built-in): it has other categories."""
    if not package_files_apply(taxonomy_spec(taxonomy)):
        return None
    if taxonomy not in _SHIPPED:
        path = shipped_model_path(taxonomy)
        _SHIPPED[taxonomy] = SupervisedModel.load(path) if path else None
    return _SHIPPED[taxonomy]


def read_training_labels(taxonomy: str, label_paths: Sequence[str | Path], *,
                         exclude: Sequence[str | Path] = ()) -> dict[tuple[str, int], LabelSet]:
    """Labels for training, by (repo, number): batch-format records, less those marked
    ``"not_failure": true`` (labeled only because they were sampled) and those listed in an
    ``exclude`` file (e.g. an evaluation set)."""
    from bugatlas.classify.batch import read_label_records
    from bugatlas.importers.base import iter_jsonl_objects

    def keys(path: str | Path, only_not_failure: bool) -> set[tuple[str, int]]:
        return {(str(o["repo"]).lower(), int(o["number"])) for _, o in iter_jsonl_objects(Path(path))
                if not only_not_failure or o.get("not_failure")}

    spec = taxonomy_spec(taxonomy)
    single = set(spec.single_valued)
    skip = set().union(*(keys(p, False) for p in exclude))
    labels: dict[tuple[str, int], LabelSet] = {}
    for path in label_paths:
        records = read_label_records(path, taxonomy=spec.name)  # first: it names a bad line
        dropped = skip | keys(path, True)
        for rec in records:
            if rec.key in dropped:
                continue
            rec_labels = at_own_level(spec, rec.labels)  # a mapped file's categories with children
            for dim, values in rec_labels.items():
                if any(dim in d.out_dims for d in spec.dims.values()):
                    bad = [v for v in values if not spec.valid(dim, v)]
                    if bad:
                        raise BadInputError(f"{path}: {rec.repo}#{rec.number}: {dim}: not in the {spec.name} "
                                            f"codebook: {', '.join(map(repr, bad))}")
                    if dim in single and len(set(values)) > 1:  # the model would learn only one of them
                        raise BadInputError(f"{path}: {rec.repo}#{rec.number}: {dim}: {len(set(values))} values "
                                            f"({', '.join(map(repr, values))}) but the {spec.name} codebook's "
                                            f"{spec.base_of(dim)} is single-valued (multi_label: false)")
            labels[rec.key] = rec_labels
    return labels


def fit_from_files(taxonomy: str, issue_paths: Sequence[str | Path], label_paths: Sequence[str | Path],
                   *, exclude: Sequence[str | Path] = (), calibrate: bool = False,
                   step: Callable[[str], None] | None = None, **params: float) -> SupervisedModel:
    """Fit on labeled issues kept outside a store: issues in the corpus format, labels in the
    batch format (a record with ``"not_failure": true`` is skipped: it was labeled only
    because it was sampled). Issues listed in an ``exclude`` file (e.g. an evaluation set)
    are left out. Every labeled issue must have its text in ``issue_paths``. With
    ``calibrate``, the model also carries its cross-validated agreement by confidence
    (:meth:`SupervisedModel.calibrate`; five more fits). ``step`` hears each stage of the work."""
    from bugatlas.classify.batch import read_issues

    spec = taxonomy_spec(taxonomy)
    labels = read_training_labels(spec.name, label_paths, exclude=exclude)
    texts = {}
    for path in issue_paths:
        for issue in read_issues(path):
            key = (issue.repo.lower(), issue.number)
            if key in labels:
                texts[key] = issue
    missing = [k for k in labels if k not in texts]
    if missing:
        repo, number = missing[0]
        raise BugAtlasError(f"{label_paths[0]}: {len(missing)} labeled issues have no text in the "
                            f"issue files (first: {repo}#{number})")
    keys = sorted(labels)
    issues, golds = [texts[k] for k in keys], [labels[k] for k in keys]
    if step:
        step(f"fitting on {len(issues)} labeled issues")
    model = SupervisedModel(spec.name, **params).fit(issues, golds)
    return model.calibrate(issues, golds, step=step) if calibrate else model
