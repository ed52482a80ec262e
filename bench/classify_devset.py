"""Score the offline classifiers on the liu2025 development set.

Runs the batch classifier (`bugatlas classify --taxonomy liu2025 --input ... --output ...`,
through the library) on the 150 issues of bench/devset/sample.jsonl and scores the output
against the dual-annotated gold labels in bench/devset/gold.jsonl with the eval code:
accuracy, macro-F1 and Cohen's kappa per dimension and level, next to the majority class and
a naive baseline (the codebook's keyword signals alone, no weights, no model) measured in the
same run. The text model is fitted on the unlabeled shared corpus (title and body only; the
gold labels are never seen). With --curve it also reports the learning curve: kappa when
the model is trained on n gold labels, by 5-fold cross-validation.

    python bench/classify_devset.py [--gold bench/devset/gold.jsonl] [--curve] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bugatlas.classify import classify_file, read_issues, read_label_records, taxonomy_spec
from bugatlas.classify.api import _curve_fitter
from bugatlas.classify.base import predictions_from_scores
from bugatlas.classify.evaluate import evaluate, learning_curve
from bugatlas.classify.rules import RuleClassifier

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "data" / "serving-issues-2025.jsonl.gz"
DIMS = ("symptom", "root_cause_group", "root_cause", "unexpected_output")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=Path, default=HERE / "devset" / "sample.jsonl")
    ap.add_argument("--gold", type=Path, default=HERE / "devset" / "gold.jsonl")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--threshold", type=float, default=0.0,
                    help="abstention threshold (default 0: always answer, as the targets are accuracies)")
    ap.add_argument("--curve", action="store_true", help="also the learning curve on the gold labels")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if not args.gold.exists():
        print(f"{args.gold}: no gold labels yet", file=sys.stderr)
        return 2
    spec = taxonomy_spec("liu2025")
    corpus = {i.key: i for i in read_issues(args.corpus)}
    wanted = [(r["repo"].lower(), int(r["number"])) for r in map(orjson.loads, args.sample.read_bytes().splitlines())]
    gold = {r.key: r.labels for r in read_label_records(args.gold, taxonomy="liu2025")}
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "issues.jsonl", Path(tmp) / "labels.jsonl"
        # the corpus format: title and body only (no maintainers' labels reach the classifier)
        src.write_bytes(b"".join(orjson.dumps({"repo": k[0], "number": k[1], "title": corpus[k].title,
                                               "body": corpus[k].body}) + b"\n" for k in wanted))
        t0 = time.perf_counter()
        classify_file("liu2025", src, out, background=[args.corpus], threshold=args.threshold)
        seconds = time.perf_counter() - t0
        pred = {r.key: r.labels for r in read_label_records(out, taxonomy="liu2025")}
    # naive baseline, same issues: the codebook's own keyword signals, unweighted, no model
    naive = RuleClassifier("liu2025", signatures="none")
    issues = [corpus[k] for k in wanted]
    naive_pred = {p.key: p.labels for p in predictions_from_scores(
        spec, issues, naive.score(issues), "rule", threshold=0.0)}
    report = evaluate(spec, gold, pred)
    base = evaluate(spec, gold, naive_pred)
    print(f"liu2025 development set: {report.n_common} issues with gold and predictions "
          f"(classified in {seconds:.1f} s incl. fitting on {len(corpus)} unlabeled issues)")
    print(f"{'dimension':20} {'n':>4} {'acc':>6} {'F1':>6} {'kappa':>6} {'majority':>28} {'naive acc':>9} {'naive k':>7}")
    rows = {}
    for dim in DIMS:
        s, b = report.dimensions.get(dim), base.dimensions.get(dim)
        if s is None:
            continue
        rows[dim] = {"ours": s.as_dict(), "naive": b.as_dict(with_confusion=False) if b else None}
        print(f"{dim:20} {s.n:4d} {s.accuracy:6.3f} {s.macro_f1:6.3f} {s.kappa:6.3f} "
              f"{s.majority_label[:20]:>20} {s.majority_accuracy:6.3f} "
              f"{(b.accuracy if b else float('nan')):9.3f} {(b.kappa if b else float('nan')):7.3f}")
    sym = report.dimensions.get("symptom")
    if sym:
        print("\nsymptom confusion (rows gold, columns predicted):")
        cols = sym.labels + ["(none)"]
        print(" " * 22 + " ".join(f"{c[:8]:>8}" for c in cols))
        for label, row in zip(sym.labels, sym.confusion, strict=True):
            print(f"{label[:20]:22}" + " ".join(f"{v:8d}" for v in row))
    curve = []
    if args.curve:
        items = [corpus[k] for k in gold if k in corpus]
        golds = [gold[i.key] for i in items]
        background = [i for k, i in corpus.items() if k not in gold][:1000]
        curve = learning_curve(spec, items, golds, _curve_fitter(spec, background),
                               sizes=[15, 30, 60, 120], folds=5, dims=["symptom", "root_cause_group"])
        print("\nlearning curve (kappa, 5-fold CV, model trained on n gold labels):")
        for r in curve:
            print(f"  n={r['n']:4d}  symptom {r.get('symptom', float('nan')):.3f}  "
                  f"root_cause_group {r.get('root_cause_group', float('nan')):.3f}")
    if args.json:
        args.json.write_bytes(orjson.dumps({"dimensions": rows, "seconds": seconds, "curve": curve},
                                           option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
