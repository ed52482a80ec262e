"""Automatic classification of issues into a codebook's categories, with confidence and
evidence for every label, learning from human labels, and measured agreement.

    from bugatlas.classify import RuleClassifier, TextModel, Ensemble, classify_file
    ens = Ensemble("liu2025").fit(issues)          # rules + a text model fitted on the issues
    for pred in ens.predict(issues):
        pred.labels["symptom"], pred.confidence["symptom"], pred.evidence["symptom"]
"""

from bugatlas.classify.api import (
    SOURCE,
    build_classifier,
    classify_file,
    classify_store,
    eval_labels,
    failure_issues,
    human_labels,
    load_trained,
    machine_labels,
    suggest,
    train_store,
)
from bugatlas.classify.base import DEFAULT_THRESHOLD, DimScores, Prediction
from bugatlas.classify.batch import (
    LabelRecord,
    read_issues,
    read_label_records,
    write_label_records,
)
from bugatlas.classify.combine import Ensemble
from bugatlas.classify.evaluate import EvalReport, cohen_kappa, evaluate, learning_curve
from bugatlas.classify.llm import LLMError, LLMLabeler
from bugatlas.classify.model import TextModel
from bugatlas.classify.rules import RuleClassifier
from bugatlas.classify.schema import TaxonomySpec, taxonomy_spec
from bugatlas.classify.supervised import SupervisedModel, fit_from_files, shipped_model

__all__ = [
    "DEFAULT_THRESHOLD", "SOURCE", "DimScores", "Ensemble", "EvalReport", "LLMError", "LLMLabeler",
    "LabelRecord", "Prediction", "RuleClassifier", "SupervisedModel", "TaxonomySpec", "TextModel",
    "build_classifier", "fit_from_files", "shipped_model",
    "classify_file", "classify_store", "cohen_kappa", "eval_labels", "evaluate", "failure_issues",
    "human_labels", "learning_curve", "load_trained", "machine_labels", "read_issues",
    "read_label_records", "suggest", "taxonomy_spec", "train_store", "write_label_records",
]  # fmt: skip
