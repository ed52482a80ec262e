"""Importers: GitHub issue dumps and the published labeled datasets into the study store.

``import_paths(store, paths)`` detects each file's format (or takes ``fmt``), parses the whole
file, then writes it in one transaction: a file with a bad record changes nothing unless
``skip_bad`` is set, in which case its good records are kept and the bad ones returned.
"""

from bugatlas.importers.base import (
           BadRecord,
           ImportResult,
           detect_format,
           import_paths,
           iter_input_files,
)
from bugatlas.importers.github import parse_github_issue

__all__ = ["BadRecord", "ImportResult", "detect_format", "import_paths", "iter_input_files",
           "parse_github_issue"]  # fmt: skip
