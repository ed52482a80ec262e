"""Analyses of a labelled study: distributions with confidence intervals, cross-tabs and
diagnostic heuristics, commonality tests, lifecycle, evolution, maintenance, and the audit of
published numbers against the released datasets."""

from bugatlas.analyze.analyses import (
    author_association,
    by_version,
    commonality,
    crosstab,
    diagnostics,
    distribution,
    distribution_levels,
    flows,
    hierarchy,
    label_usage,
    lifecycle,
    maintenance,
    monthly,
    overview,
    residual_findings,
    shares,
    survival,
)
from bugatlas.analyze.data import StudyData, load_study

__all__ = [
    "StudyData", "author_association", "by_version", "commonality", "crosstab", "diagnostics",
    "distribution", "distribution_levels", "flows", "hierarchy", "label_usage", "lifecycle",
    "load_study", "maintenance", "monthly", "overview", "residual_findings", "shares", "survival",
]  # fmt: skip
