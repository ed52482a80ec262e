"""Fit the liu2025 supervised model that ships in the package, from BugAtlas's own labels.

Labels: bench/trainset/labels.jsonl (1,383 issues of the shared corpus, 64 marked not_failure
and skipped) plus the development set's arbitrated gold (bench/devset/gold.jsonl), texts from
../shared/data. --exclude-dev leaves the development set out (bench/classify_devset.py does
that to score on issues the model has not seen).

    python bench/trainset/build_model.py [--exclude-dev] [--output PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bugatlas.classify.supervised import fit_from_files, shipped_model_path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1].parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"
DEV = HERE.parent / "devset"
DEFAULT_OUT = HERE.parents[1] / "src" / "bugatlas" / "classify" / "models" / "liu2025.pkl.xz"


def build(*, exclude_dev: bool, corpus: Path = CORPUS, taxonomy: str = "liu2025", labels: Path = HERE / "labels.jsonl",
          dev: Path = DEV):
    label_files = [labels] + ([] if exclude_dev else [dev / "gold.jsonl"])
    exclude = [dev / "sample.jsonl"] if exclude_dev else []
    # calibrated: the model carries its 5-fold agreement by confidence (classify --min-kappa)
    return fit_from_files(taxonomy, [corpus], label_files, exclude=exclude, calibrate=True)


def main(taxonomy: str = "liu2025", labels: Path = HERE / "labels.jsonl", dev: Path = DEV) -> None:
    """The command line of this script and of bench/trainset-yu2026/build_model.py."""
    default_out = DEFAULT_OUT.with_name(f"{taxonomy}.pkl.xz")
    ap = argparse.ArgumentParser()
    ap.add_argument("--exclude-dev", action="store_true")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--output", type=Path, default=default_out)
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = build(exclude_dev=args.exclude_dev, corpus=args.corpus, taxonomy=taxonomy, labels=labels, dev=dev)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.output)
    print(f"{model.version}: {model.n_human} labeled issues, heads {sorted(model.heads)}, "
          f"{args.output.stat().st_size / 1e6:.2f} MB -> {args.output} ({time.perf_counter() - t0:.1f} s)")
    for kappa in (0.7, 0.8):
        print(f"classify --min-kappa {kappa}: thresholds {model.thresholds(kappa).per_dim}")
    if args.output.resolve() != (shipped_model_path(taxonomy) or default_out).resolve():
        print("(not the shipped model: pass it to classify with --model)")


if __name__ == "__main__":
    main()
