"""Fit the yu2026 supervised model that ships in the package, from BugAtlas's own labels.

Labels: bench/trainset-yu2026/labels.jsonl plus the yu2026 development set's adjudicated gold
(bench/devset-yu2026/gold.jsonl), texts from ../shared/data. --exclude-dev leaves the
development set out (bench/classify_devset_yu2026.py does that to score on issues the model
has not seen).

    python bench/trainset-yu2026/build_model.py [--exclude-dev] [--output PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bugatlas.classify.supervised import fit_from_files, shipped_model_path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1].parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"
DEV = HERE.parent / "devset-yu2026"
DEFAULT_OUT = HERE.parents[1] / "src" / "bugatlas" / "classify" / "models" / "yu2026.pkl.xz"


def build(*, exclude_dev: bool, corpus: Path = CORPUS, calibrate: bool = True):
    labels = [HERE / "labels.jsonl"] + ([] if exclude_dev else [DEV / "gold.jsonl"])
    exclude = [DEV / "sample.jsonl"] if exclude_dev else []
    # calibrated: the model carries its 5-fold agreement by confidence (classify --min-kappa)
    return fit_from_files("yu2026", [corpus], labels, exclude=exclude, calibrate=calibrate)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exclude-dev", action="store_true")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--output", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = build(exclude_dev=args.exclude_dev, corpus=args.corpus)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.output)
    print(f"{model.version}: {model.n_human} labeled issues, heads {sorted(model.heads)}, "
          f"{args.output.stat().st_size / 1e6:.2f} MB -> {args.output} ({time.perf_counter() - t0:.1f} s)")
    for kappa in (0.7, 0.8):
        print(f"classify --min-kappa {kappa}: thresholds {model.thresholds(kappa).per_dim}")
    if args.output.resolve() != (shipped_model_path("yu2026") or DEFAULT_OUT).resolve():
        print("(not the shipped model: pass it to classify with --model)")


if __name__ == "__main__":
    main()
