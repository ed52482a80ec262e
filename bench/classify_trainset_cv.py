"""Cross-validated agreement of the liu2025 (or yu2026) classifier on its training labels.

The development set has 150 (120) issues; this measures on every labeled training issue, each
scored by a supervised model that did not see it (5-fold cross-validation, folds drawn with
a fixed seed). Measured in the same run on the same issues: the previous default (rules + the
weak text model fitted on the unlabeled corpus, no labels at all: nothing to cross-validate)
and the majority class.

    python bench/classify_trainset_cv.py [--taxonomy yu2026] [--folds 5] [--json out.json]

For yu2026 the liu2025 model lends its mapped top levels (the default run); it is refitted in
each fold on the liu2025 labels of the issues outside the fold (bench/trainset, bench/devset),
so it has not seen the issues it scores either, and each weight of ``--lent-weights`` is
scored (the chosen one is ``combine.LENT_WEIGHT``).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import orjson

from bugatlas.classify import Ensemble, read_issues, taxonomy_spec
from bugatlas.classify.combine import Donor
from bugatlas.classify.evaluate import evaluate
from bugatlas.classify.supervised import SupervisedModel, read_training_labels
from bugatlas.taxonomy.mapping import get_mapping
from classify_devset import print_by_confidence  # bench/ is on sys.path: this script's folder

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "data" / "serving-issues-2025.jsonl.gz"
# taxonomy -> (training labels, its development set (left out), dimensions reported, the
# levels whose probabilities blend a level head with the leaf head's sums)
SETS = {
    "liu2025": (HERE / "trainset" / "labels.jsonl", HERE / "devset" / "sample.jsonl",
                ("symptom", "root_cause_group", "root_cause", "phase"), ("root_cause_group", "root_cause")),
    "yu2026": (HERE / "trainset-yu2026" / "labels.jsonl", HERE / "devset-yu2026" / "sample.jsonl",
               ("symptom_category", "symptom_subcategory", "symptom", "root_cause_category",
                "root_cause_subcategory", "root_cause", "stage"), ("symptom_category", "root_cause_category")),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--taxonomy", choices=sorted(SETS), default="liu2025")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--lent-weights", default="0,0.2,0.3,0.4,0.5,0.7,1",
                    help="yu2026: weights of the lent liu2025 model to score (comma-separated)")
    args = ap.parse_args()
    tax = args.taxonomy
    labels_path, devset, dims, blended = SETS[tax]
    spec = taxonomy_spec(tax)
    corpus = {i.key: i for i in read_issues(args.corpus)}
    gold = read_training_labels(tax, [labels_path], exclude=[devset])
    keys = sorted(gold)
    random.Random(0).shuffle(keys)
    t0 = time.perf_counter()
    before = Ensemble(tax).fit(list(corpus.values()))  # weak labels only, no human label
    pred_before = {p.key: p.labels for p in before.predict([corpus[k] for k in keys], threshold=0.0)}
    pred, confidence, unblended = {}, {}, {}
    weights = [float(w) for w in args.lent_weights.split(",")] if tax == "yu2026" else []
    # (level blend, lent weight) -> predictions; level blend 1.0: a level from its own head alone
    blends = (SupervisedModel.level_blend, 1.0)
    by_weight: dict[tuple[float, float], dict] = {(b, w): {} for b in blends for w in weights}
    if weights:
        liu_gold = read_training_labels("liu2025", [HERE / "trainset" / "labels.jsonl", HERE / "devset" / "gold.jsonl"],
                                        exclude=[devset])
        liu_rules = Ensemble("liu2025").rules
    for f in range(args.folds):
        test = keys[f :: args.folds]
        held = set(test)
        train = [k for k in keys if k not in held]
        sup = SupervisedModel(tax, rules=before.rules).fit([corpus[k] for k in train], [gold[k] for k in train])
        ens = Ensemble(tax, rules=before.rules, model=before.model, supervised=sup)
        for p in ens.predict([corpus[k] for k in test], threshold=0.0):
            pred[p.key], confidence[p.key] = p.labels, p.confidence
        sup.level_blend = 1.0  # the group from the group head alone, as before the blend
        unblended.update({p.key: p.labels for p in ens.predict([corpus[k] for k in test], threshold=0.0)})
        sup.level_blend = SupervisedModel.level_blend
        if weights:
            liu_train = [k for k in liu_gold if k not in held]
            liu = SupervisedModel("liu2025", rules=liu_rules).fit([corpus[k] for k in liu_train],
                                                                  [liu_gold[k] for k in liu_train])
            donor = Donor(Ensemble("liu2025", rules=liu_rules, supervised=liu), get_mapping("liu2025", "yu2026"))
            for b, w in by_weight:
                sup.level_blend = b
                lent = Ensemble(tax, rules=before.rules, model=before.model, supervised=sup, donors=[donor],
                                lent_weight=w)
                by_weight[b, w].update({p.key: p.labels
                                        for p in lent.predict([corpus[k] for k in test], threshold=0.0)})
            sup.level_blend = SupervisedModel.level_blend
        print(f"fold {f + 1} of {args.folds} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    seconds = time.perf_counter() - t0
    ours, prev = evaluate(spec, gold, pred, confidence=confidence), evaluate(spec, gold, pred_before)
    unbl = evaluate(spec, gold, unblended)
    print(f"{tax} training labels: {len(keys)} issues, {args.folds}-fold CV ({seconds:.0f} s)")
    print(f"{'dimension':22} {'acc':>6} {'F1':>6} {'kappa':>6} {'before acc':>10} {'before k':>8} {'majority':>27}")
    rows = {}
    for dim in dims:
        s, p = ours.dimensions[dim], prev.dimensions[dim]
        rows[dim] = {"ours": s.as_dict(with_confusion=False), "before": p.as_dict(with_confusion=False)}
        print(f"{dim:22} {s.accuracy:6.3f} {s.macro_f1:6.3f} {s.kappa:6.3f} {p.accuracy:10.3f} {p.kappa:8.3f} "
              f"{s.majority_label[:20]:>20} {s.majority_accuracy:6.3f}")
    for dim in blended:
        print(f"{dim} accuracy without the level blend (level head alone): {unbl.dimensions[dim].accuracy:.3f}")
    if tax == "liu2025":  # the aims are liu2025's
        print_by_confidence(ours)
    lent_rows = {}
    for (b, w), pred_bw in by_weight.items():
        rep = evaluate(spec, gold, pred_bw)
        lent_rows[f"level blend {b}, lent {w}"] = {d: {"accuracy": rep.dimensions[d].accuracy,
                                                       "kappa": rep.dimensions[d].kappa} for d in dims}
        print(f"level blend {b:.2f}, liu2025 lent at {w:.1f}: " + "  ".join(
            f"{d} {rep.dimensions[d].accuracy:.3f}/{rep.dimensions[d].kappa:.3f}" for d in dims if d != "stage"))
    if args.json:
        args.json.write_bytes(orjson.dumps({"taxonomy": tax, "n": len(keys), "folds": args.folds, "dimensions": rows,
                                            "unblended": {d: unbl.dimensions[d].accuracy for d in blended},
                                            "by_confidence": ours.by_confidence, "lent": lent_rows},
                                           option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
