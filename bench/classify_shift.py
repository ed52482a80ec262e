"""How the liu2025 supervised model holds up on issues unlike the ones it learned from.

Researchers point BugAtlas at newer issues and at engines it was not trained on. This fits the
supervised model on the training labels (bench/trainset) with a held-out part chosen by
  - time: the newest 20% of issues, the model fitted on the older 80%;
  - engine: all issues of one repository, the model fitted on the other two;
and scores the held-out part. Each shifted split is compared with a random split of the same
sizes, in the same run, so the difference is the cost of the shift and not of fewer labels.

    python bench/classify_shift.py [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import random
import time
from pathlib import Path

import orjson

from bugatlas.classify import Ensemble, read_issues, taxonomy_spec
from bugatlas.classify.evaluate import evaluate
from bugatlas.classify.supervised import SupervisedModel, read_training_labels

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "data" / "serving-issues-2025.jsonl.gz"
DIMS = ("symptom", "root_cause_group")


def created_dates(path: Path) -> dict[tuple[str, int], str]:
    # the batch reader keeps title/body only; dates come from the corpus file itself
    with gzip.open(path, "rb") as fh:
        return {(o["repo"].lower(), int(o["number"])): o.get("created_at") or "" for o in map(orjson.loads, fh)}


def score(corpus, gold, train, test, rules) -> dict[str, dict[str, float]]:
    sup = SupervisedModel("liu2025", rules=rules).fit([corpus[k] for k in train], [gold[k] for k in train])
    ens = Ensemble("liu2025", rules=rules, supervised=sup)
    pred = {p.key: p.labels for p in ens.predict([corpus[k] for k in test], threshold=0.0)}
    report = evaluate(taxonomy_spec("liu2025"), {k: gold[k] for k in test}, pred)
    return {d: {"accuracy": report.dimensions[d].accuracy, "kappa": report.dimensions[d].kappa} for d in DIMS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    corpus = {i.key: i for i in read_issues(args.corpus)}
    dates = created_dates(args.corpus)
    gold = read_training_labels("liu2025", [HERE / "trainset" / "labels.jsonl"],
                                exclude=[HERE / "devset" / "sample.jsonl"])
    keys = sorted(gold)
    random.Random(0).shuffle(keys)
    rules = Ensemble("liu2025").rules
    t0 = time.perf_counter()

    splits: list[tuple[str, list, list]] = []
    by_date = sorted(keys, key=lambda k: dates[k])
    cut = int(len(by_date) * 0.8)
    splits.append((f"newest 20% ({dates[by_date[cut]][:10]} to {dates[by_date[-1]][:10]})",
                   by_date[:cut], by_date[cut:]))
    for repo in sorted({k[0] for k in keys}):
        splits.append((f"engine left out: {repo}", [k for k in keys if k[0] != repo],
                       [k for k in keys if k[0] == repo]))

    rows = []
    print(f"{'held out':58} {'train':>5} {'test':>5}  " + "  ".join(f"{d + ' acc/kappa':>28}" for d in DIMS))
    for i, (name, train, test) in enumerate(splits):
        shifted = score(corpus, gold, train, test, rules)
        sample = set(random.Random(i + 1).sample(keys, len(test)))
        rand = score(corpus, gold, [k for k in keys if k not in sample], sorted(sample), rules)
        rows.append({"split": name, "train": len(train), "test": len(test), "shifted": shifted, "random": rand})
        for label, res in (("", shifted), ("  random split, same sizes", rand)):
            cells = "  ".join(f"{res[d]['accuracy']:12.3f} / {res[d]['kappa']:.3f}      " for d in DIMS)
            print(f"{(label or name)[:58]:58} {len(train):5} {len(test):5}  {cells}", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_bytes(orjson.dumps({"n": len(keys), "splits": rows}, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
