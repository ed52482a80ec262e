"""Diagnose: from an error log to its likely root cause and the known issues that solved it.

>>> from bugatlas.diagnose import diagnose, parse_log, SearchIndex
>>> d = diagnose(open("crash.log").read(), store, taxonomy="liu2025", k=5)
>>> d.parsed.signature, d.predictions["root_cause"].category, [s.url for s in d.similar]
"""

from bugatlas.diagnose.diagnose import (
    Diagnosis,
    SimilarIssue,
    capture_command,
    diagnose,
    resolution,
)
from bugatlas.diagnose.index import SearchIndex
from bugatlas.diagnose.parse import (
    ParsedLog,
    extract_log,
    normalize_message,
    parse_log,
    signature_key,
)
from bugatlas.diagnose.predict import Prediction, predict

__all__ = [
    "Diagnosis", "ParsedLog", "Prediction", "SearchIndex", "SimilarIssue", "capture_command",
    "diagnose", "extract_log", "normalize_message", "parse_log", "predict", "resolution", "signature_key",
]  # fmt: skip
