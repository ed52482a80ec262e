"""Stage 2 of the filter: a text classifier of issue kind (failure, feature, question, ...).

Features (title and body only, template prefixes stripped from the title):
  * title words (1-2-grams) and title characters (2-5-grams, robust to "crashes"/"crash"), weighted
    separately from the body;
  * body words (1-2-grams) of the cleaned body head;
  * body template-section headings as tokens ("Your current environment", "Describe the bug",
    "How would you like to use vllm"), which the reporter's chosen form leaves in the text.
A linear model (logistic regression or a sigmoid-calibrated linear SVM, class-balanced) gives
calibrated probabilities; the kind is the most probable class and the confidence its probability.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.filter.text import clean_body, heading_tokens, strip_template_prefix

MODEL_DIR = Path(__file__).with_name("models")
DEFAULT_MODEL = MODEL_DIR / "issue_kind.pkl.xz"
MODEL_ENV = "BUGATLAS_FILTER_MODEL"
# `bugatlas filter train` writes here by default; once present it is preferred to the shipped model.
USER_MODEL = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "bugatlas" / "issue_kind.pkl.xz"


@dataclass
class ModelParams:
    """Hyper-parameters; the defaults are the ones nested cross-validation selected (BENCHMARKS.md)."""

    classifier: str = "svm"  # svm (calibrated LinearSVC) | logreg
    C: float = 1.0
    title_weight: float = 1.0
    title_char_weight: float = 1.0
    body_weight: float = 1.0
    heading_weight: float = 1.0
    body_max_features: int = 50000
    strip_prefixes: bool = True

    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in asdict(self).items())


def features_frame(titles: Sequence[str | None], bodies: Sequence[str | None], *, strip: bool = True) -> pd.DataFrame:
    """The text columns the vectorizers read (only title and body go in)."""
    return pd.DataFrame({
        "title": [strip_template_prefix(t) if strip else (t or "") for t in titles],
        "body": [clean_body(b) for b in bodies],
        "headings": [heading_tokens(b) for b in bodies],
    })  # fmt: skip


def build_pipeline(params: ModelParams):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    vec = ColumnTransformer(
        [
            ("title_words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), "title"),
            ("title_chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2), "title"),
            ("body_words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2,
                                           max_features=params.body_max_features), "body"),  # fmt: skip
            ("headings", TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True), "headings"),
        ],
        transformer_weights={"title_words": params.title_weight, "title_chars": params.title_char_weight,
                             "body_words": params.body_weight, "headings": params.heading_weight},  # fmt: skip
    )
    if params.classifier == "svm":
        clf = CalibratedClassifierCV(LinearSVC(C=params.C, class_weight="balanced"), cv=3, method="sigmoid")
    elif params.classifier == "logreg":
        clf = LogisticRegression(C=params.C, class_weight="balanced", max_iter=3000)
    else:
        raise BadInputError(f"unknown classifier {params.classifier!r} (svm, logreg)")
    return Pipeline([("features", vec), ("clf", clf)])


@dataclass
class KindPrediction:
    kind: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)


class IssueKindModel:
    """A trained issue-kind classifier with its provenance (what it was trained on, how well)."""

    def __init__(self, pipeline: Any, params: ModelParams, meta: dict[str, Any] | None = None):
        self.pipeline = pipeline
        self.params = params
        self.meta = meta or {}

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]

    @classmethod
    def train(cls, titles: Sequence[str | None], bodies: Sequence[str | None], kinds: Sequence[str],
              params: ModelParams | None = None, meta: dict[str, Any] | None = None) -> IssueKindModel:
        params = params or ModelParams()
        if len(set(kinds)) < 2:
            raise BadInputError("training needs issues of at least two kinds")
        pipe = build_pipeline(params)
        pipe.fit(features_frame(titles, bodies, strip=params.strip_prefixes), list(kinds))
        import sklearn

        info = {"trained_on": len(kinds), "class_counts": pd.Series(list(kinds)).value_counts().to_dict(),
                "sklearn": sklearn.__version__, "params": asdict(params)}  # fmt: skip
        return cls(pipe, params, {**info, **(meta or {})})

    def predict_proba(self, titles: Sequence[str | None], bodies: Sequence[str | None]) -> np.ndarray:
        if not len(titles):
            return np.zeros((0, len(self.classes)))
        return self.pipeline.predict_proba(features_frame(titles, bodies, strip=self.params.strip_prefixes))

    def predict(self, titles: Sequence[str | None], bodies: Sequence[str | None]) -> list[KindPrediction]:
        proba = self.predict_proba(titles, bodies)
        classes = self.classes
        out = []
        for row in proba:
            i = int(row.argmax())
            out.append(KindPrediction(classes[i], round(float(row[i]), 4),
                                      {c: round(float(p), 4) for c, p in zip(classes, row, strict=True)}))  # fmt: skip
        return out

    # -- persistence: gzip'd pickle with a header so a stale file fails with a clear line --------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Pickle the model, xz-compressed when the name ends in .xz (the shipped model: a
        fifth smaller than gzip), else gzip."""
        import gzip
        import lzma

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = pickle.dumps({"format": "bugatlas-issue-kind/1", "params": asdict(self.params), "meta": self.meta,
                             "pipeline": self.pipeline}, protocol=pickle.HIGHEST_PROTOCOL)  # fmt: skip
        if path.name.endswith(".xz"):
            path.write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
        else:
            path.write_bytes(gzip.compress(data, compresslevel=9))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IssueKindModel:
        import gzip
        import lzma
        import warnings

        path = Path(path)
        if not path.is_file():
            raise BugAtlasError(f"{path}: no issue-kind model here (train one with `bugatlas filter train`)")
        try:
            with warnings.catch_warnings():
                # A model pickled by another scikit-learn minor version loads and predicts the same
                # for these estimators; the version it was built with is kept in meta.
                warnings.simplefilter("ignore")
                raw = path.read_bytes()
                opened = lzma.decompress(raw) if raw.startswith(b"\xfd7zXZ\x00") else gzip.decompress(raw)
                data = pickle.loads(opened)  # noqa: S301 - our own model file, shipped in the package
        except Exception as e:  # a corrupt or incompatible file: say which and how to fix
            raise BugAtlasError(f"{path}: cannot load the issue-kind model ({type(e).__name__}: {e}); "
                                f"retrain it with `bugatlas filter train`") from None  # fmt: skip
        if not isinstance(data, dict) or data.get("format") != "bugatlas-issue-kind/1":
            raise BugAtlasError(f"{path}: not a bugatlas issue-kind model file")
        return cls(data["pipeline"], ModelParams(**data["params"]), data.get("meta") or {})


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> IssueKindModel:
    return IssueKindModel.load(path)


def default_model_path() -> Path:
    """BUGATLAS_FILTER_MODEL, else the user's trained model, else the one shipped in the package."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    return USER_MODEL if USER_MODEL.is_file() else DEFAULT_MODEL


def load_model(path: str | os.PathLike[str] | None = None) -> IssueKindModel:
    """The shipped model (or ``BUGATLAS_FILTER_MODEL``, or ``path``); cached per file version."""
    p = Path(path) if path else default_model_path()
    if not p.is_file():
        raise BugAtlasError(f"{p}: no issue-kind model here (train one with `bugatlas filter train`)")
    return _load_cached(str(p.resolve()), p.stat().st_mtime)


def corpus_digest(keys: Iterable[tuple[str, int]]) -> str:
    h = hashlib.sha256()
    for r, n in sorted(keys):
        h.update(f"{r}#{n}\n".encode())
    return h.hexdigest()[:16]
