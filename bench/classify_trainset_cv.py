"""Cross-validated agreement of the liu2025 classifier on the 1,300+ training labels.

The development set has 150 issues; this measures on every labeled training issue, each
scored by a supervised model that did not see it (5-fold cross-validation, folds drawn with
a fixed seed). Measured in the same run on the same issues: the previous default (rules + the
weak text model fitted on the unlabeled corpus, no labels at all: nothing to cross-validate)
and the majority class.

    python bench/classify_trainset_cv.py [--folds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import orjson

from bugatlas.classify import Ensemble, read_issues, taxonomy_spec
from bugatlas.classify.evaluate import evaluate
from bugatlas.classify.supervised import SupervisedModel, read_training_labels
from classify_devset import print_by_confidence  # bench/ is on sys.path: this script's folder

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "data" / "serving-issues-2025.jsonl.gz"
DIMS = ("symptom", "root_cause_group", "root_cause", "phase")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    spec = taxonomy_spec("liu2025")
    corpus = {i.key: i for i in read_issues(args.corpus)}
    gold = read_training_labels("liu2025", [HERE / "trainset" / "labels.jsonl"],
                                exclude=[HERE / "devset" / "sample.jsonl"])
    keys = sorted(gold)
    random.Random(0).shuffle(keys)
    t0 = time.perf_counter()
    before = Ensemble("liu2025").fit(list(corpus.values()))  # weak labels only, no human label
    pred_before = {p.key: p.labels for p in before.predict([corpus[k] for k in keys], threshold=0.0)}
    pred, confidence, unblended = {}, {}, {}
    for f in range(args.folds):
        test = keys[f :: args.folds]
        held = set(test)
        train = [k for k in keys if k not in held]
        sup = SupervisedModel("liu2025", rules=before.rules).fit([corpus[k] for k in train], [gold[k] for k in train])
        ens = Ensemble("liu2025", rules=before.rules, model=before.model, supervised=sup)
        for p in ens.predict([corpus[k] for k in test], threshold=0.0):
            pred[p.key], confidence[p.key] = p.labels, p.confidence
        sup.level_blend = 1.0  # the group from the group head alone, as before the blend
        unblended.update({p.key: p.labels for p in ens.predict([corpus[k] for k in test], threshold=0.0)})
    seconds = time.perf_counter() - t0
    ours, prev = evaluate(spec, gold, pred, confidence=confidence), evaluate(spec, gold, pred_before)
    unbl = evaluate(spec, gold, unblended)
    print(f"liu2025 training labels: {len(keys)} issues, {args.folds}-fold CV ({seconds:.0f} s)")
    print(f"{'dimension':18} {'acc':>6} {'F1':>6} {'kappa':>6} {'before acc':>10} {'before k':>8} {'majority':>27}")
    rows = {}
    for dim in DIMS:
        s, p = ours.dimensions[dim], prev.dimensions[dim]
        rows[dim] = {"ours": s.as_dict(with_confusion=False), "before": p.as_dict(with_confusion=False)}
        print(f"{dim:18} {s.accuracy:6.3f} {s.macro_f1:6.3f} {s.kappa:6.3f} {p.accuracy:10.3f} {p.kappa:8.3f} "
              f"{s.majority_label[:20]:>20} {s.majority_accuracy:6.3f}")
    for dim in ("root_cause_group", "root_cause"):
        print(f"{dim} accuracy without the level blend (group head alone): {unbl.dimensions[dim].accuracy:.3f}")
    print_by_confidence(ours)
    if args.json:
        args.json.write_bytes(orjson.dumps({"n": len(keys), "folds": args.folds, "dimensions": rows,
                                            "unblended": {d: unbl.dimensions[d].accuracy
                                                          for d in ("root_cause_group", "root_cause")},
                                            "by_confidence": ours.by_confidence},
                                           option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
