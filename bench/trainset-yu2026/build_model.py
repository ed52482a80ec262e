"""Fit the yu2026 supervised model that ships in the package, from BugAtlas's own labels.

Labels: bench/trainset-yu2026/labels.jsonl plus the yu2026 development set's adjudicated gold
(bench/devset-yu2026/gold.jsonl), texts from ../shared/data. --exclude-dev leaves the
development set out (bench/classify_devset_yu2026.py does that to score on issues the model
has not seen). The same command line as bench/trainset/build_model.py (liu2025).

    python bench/trainset-yu2026/build_model.py [--exclude-dev] [--output PATH]
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _liu2025_builder():  # noqa: ANN202 - bench/trainset/build_model.py, which this one reuses
    spec = importlib.util.spec_from_file_location("trainset_build_model", HERE.parent / "trainset" / "build_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    _liu2025_builder().main("yu2026", HERE / "labels.jsonl", HERE.parent / "devset-yu2026")
