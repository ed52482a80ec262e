"""Score the offline classifiers on the yu2026 development set (bench/devset-yu2026/).

120 failure reports of the shared corpus (stratified by repository), labeled with the yu2026
codebook twice independently and adjudicated (README.md there). Each run classifies the whole
corpus as `bugatlas classify --taxonomy yu2026 --input <corpus> --output ...` would and scores
the 120:

- the default: a yu2026 supervised model fitted as the shipped one (bench/trainset-yu2026) but
  WITHOUT these 120 issues, next to the rules, its top levels mixed with the liu2025 model's
  mapped ones at weight 0.3 (``combine.LENT_WEIGHT``, chosen by cross-validation on the training
  labels); and the same model with nothing lent;
- without yu2026 labels (what a user of a codebook without a shipped model gets): signature
  rules + the weak text model fitted on the input, with the symptom and root-cause categories
  lent by the liu2025 model through liu2025's mapping onto yu2026, and with nothing lent.

The liu2025 model is fitted here as the shipped one but WITHOUT these 120 issues (the shipped
one was trained on 116 of them), so every figure is for issues no model has seen. Also printed:
the two annotators' agreement with each other and the majority class.

    python bench/classify_devset_yu2026.py [--min-kappa] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bugatlas.classify import classify_file, read_label_records, taxonomy_spec
from bugatlas.classify.base import DEFAULT_THRESHOLD
from bugatlas.classify.combine import LENT_WEIGHT, Donor, Ensemble
from bugatlas.classify.evaluate import cohen_kappa, evaluate
from bugatlas.classify.supervised import fit_from_files
from bugatlas.taxonomy import load_codebook
from bugatlas.taxonomy.mapping import get_mapping

HERE = Path(__file__).resolve().parent
DEVSET = HERE / "devset-yu2026"
CORPUS = HERE.parent.parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"
TRAINSET = HERE / "trainset-yu2026" / "labels.jsonl"


def full_paths(path: Path) -> dict[tuple[str, int], dict[str, list[str]]]:
    """Label records of the annotators (one name per dimension, at whatever depth), each name
    expanded to its path from the top level down to its own level: a category that has
    children, chosen because nothing below it fitted, says nothing about the levels below."""
    cb = load_codebook("yu2026")
    out = {}
    for line in path.read_text().splitlines():
        rec = orjson.loads(line)
        labels: dict[str, list[str]] = {}
        for dim, name in rec["labels"].items():
            d = cb.dimensions[dim]
            cat = next(c for c in d.categories.values() if c.name == name)
            own_level = d.levels[len(d.path(cat.id)) - 1] if d.levels else dim
            is_leaf = cat.id in {c.id for c in d.leaves()}
            for out_dim, value in d.store_labels(cat.id):
                if is_leaf or out_dim != d.leaf_dimension or out_dim == own_level:
                    labels[out_dim] = [value]
        out[(rec["repo"], int(rec["number"]))] = labels
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--min-kappa", action="store_true",
                    help="also calibrate the yu2026 model (5 more fits) and score --min-kappa 0.7 and 0.8")
    args = ap.parse_args()
    if not args.corpus.exists():
        sys.exit(f"{args.corpus}: the shared corpus is missing (put ../shared beside the repository)")
    spec = taxonomy_spec("yu2026")
    gold = {r.key: r.labels for r in read_label_records(DEVSET / "gold.jsonl", taxonomy="yu2026")}
    a, b = full_paths(DEVSET / "annotator_a.jsonl"), full_paths(DEVSET / "annotator_b.jsonl")
    humans = evaluate(spec, a, b)
    trainset = HERE / "trainset" / "labels.jsonl", HERE / "devset" / "gold.jsonl"
    t0 = time.perf_counter()
    liu = fit_from_files("liu2025", [args.corpus], trainset, exclude=[DEVSET / "sample.jsonl"])
    print(f"liu2025 model fitted without the development set in {time.perf_counter() - t0:.1f} s")
    lent = [Donor(Ensemble("liu2025", supervised=liu), get_mapping("liu2025", "yu2026"))]
    t0 = time.perf_counter()
    # --min-kappa: calibrated as the shipped one is (5-fold CV on its labels, 5 more fits)
    yu = fit_from_files("yu2026", [args.corpus], [TRAINSET], exclude=[DEVSET / "sample.jsonl"],
                        calibrate=args.min_kappa)
    print(f"yu2026 model fitted on {yu.n_human} training labels (bench/trainset-yu2026) in "
          f"{time.perf_counter() - t0:.1f} s")
    rows = []
    # (name, threshold, yu2026 supervised model, donors): the default abstention, then every
    # issue answered; beside the yu2026 model the donor is mixed in at LENT_WEIGHT
    default = f"yu2026 model + liu2025 lent at {LENT_WEIGHT:g} (default)"
    runs = [(default, DEFAULT_THRESHOLD, yu, lent), (default, 0.0, yu, lent),
            ("yu2026 model, nothing lent", 0.0, yu, []),
            ("no yu2026 labels: rules + lent liu2025", 0.0, None, lent),
            ("no yu2026 labels, nothing lent", 0.0, None, [])]
    for name, threshold, supervised, donors in runs:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "labels.jsonl"
            t0 = time.perf_counter()
            classify_file("yu2026", args.corpus, out, threshold=threshold, donors=donors,
                          supervised=supervised, use_shipped=False)
            secs = time.perf_counter() - t0
            pred = {r.key: r.labels for r in read_label_records(out, taxonomy="yu2026") if r.key in gold}
        report = evaluate(spec, gold, pred)
        print(f"\n{name}: {len(gold)} issues, threshold {threshold}; classify on the whole "
              f"corpus took {secs:.1f} s (abstentions count as wrong in acc and kappa)")
        print(f"{'level':28s} {'answered':>8s} {'acc':>6s} {'kappa':>6s} {'majority':>8s} {'human a~b kappa':>16s}")
        for dim, s in report.dimensions.items():
            h = humans.dimensions.get(dim)
            rows.append({"run": name, "threshold": threshold, "level": dim, "answered": s.coverage, "accuracy": s.accuracy,
                         "kappa": s.kappa, "majority": s.majority_accuracy, "human_kappa": h.kappa if h else None})
            print(f"{dim:28s} {s.coverage:8.2f} {s.accuracy:6.3f} {s.kappa:6.3f} {s.majority_accuracy:8.3f} "
                  f"{(h.kappa if h else float('nan')):16.3f}")
    if args.min_kappa:  # the calibration (of the yu2026 model alone), checked on issues it never saw
        print("\nlabels given under classify --min-kappa K (liu2025 mixed in), agreement on those:")
        for k in (0.7, 0.8):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "labels.jsonl"
                classify_file("yu2026", args.corpus, out, donors=lent, supervised=yu, use_shipped=False, min_kappa=k)
                pred = {r.key: r.labels for r in read_label_records(out, taxonomy="yu2026") if r.key in gold}
            print(f"K = {k}: thresholds {yu.thresholds(k).per_dim}")
            for dim in spec.output_dims:
                given = [key for key in gold if gold[key].get(dim) and pred[key].get(dim)]
                n = sum(bool(gold[key].get(dim)) for key in gold)
                a, b = [gold[key][dim][0] for key in given], [pred[key][dim][0] for key in given]
                agree = sum(x == y for x, y in zip(a, b, strict=True)) / len(given) if given else float("nan")
                rows.append({"run": f"min-kappa {k}", "level": dim, "given": len(given), "of": n,
                             "accuracy": agree, "kappa": cohen_kappa(a, b) if len(given) > 1 else None})
                print(f"  {dim:24s} given {len(given):3d} of {n:3d}  acc {agree:.3f}  "
                      f"kappa {cohen_kappa(a, b) if len(given) > 1 else float('nan'):.3f}")
    if args.json:
        args.json.write_bytes(orjson.dumps({"rows": rows}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
