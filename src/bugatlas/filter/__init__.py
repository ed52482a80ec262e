"""Filtering: which issues are failure reports.

Stage 1 applies a study's rules (keywords, maintainers' labels, states; YAML in ``studies/``).
Stage 2 is a text classifier of issue kind that reads only title and body, with issue-template
prefixes stripped. ``judge`` runs both over issues; ``filter_store`` and ``filter_file`` are the
store and batch interfaces.
"""

from bugatlas.filter.evaluate import GoldSet, cross_validate, gold_set, select_and_train
from bugatlas.filter.model import IssueKindModel, KindPrediction, ModelParams, load_model
from bugatlas.filter.pipeline import IssueKind, filter_file, filter_store, judge
from bugatlas.filter.rules import FilterRules, RuleResult, load_rules
from bugatlas.filter.text import body_headings, maintainer_kind, strip_template_prefix

__all__ = [
    "FilterRules", "GoldSet", "IssueKind", "IssueKindModel", "KindPrediction", "ModelParams",
    "RuleResult", "body_headings", "cross_validate", "filter_file", "filter_store", "gold_set",
    "judge", "load_model", "load_rules", "maintainer_kind", "select_and_train", "strip_template_prefix",
]
