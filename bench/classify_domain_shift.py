"""yu2026 on issues of model-release repositories, whose failures are not distributed like the
engine issues the models learned from: base rates moved to the domain's (codebook ``domains:``,
classify/domains.py) against the labels as they come.

No issue text of those repositories is available here, only the study's counts. So this measures
under label shift, the assumption the correction makes: each issue of the yu2026 training labels
is scored by models that did not see it (5-fold CV; the yu2026 model is calibrated on its own
fold's training part, where its held-out base rates come from; the liu2025 model is refitted
and calibrated without the fold, as in classify_trainset_cv.py), then test sets of ``--n`` issues are drawn
with the model-release shares of a top level (the codebook's published counts), and scored with
and without the move. Every top level is measured; the codebook moves those where it helped.
Also drawn at the engine issues' own shares: what the move costs an issue it is wrongly
applied to.

    python bench/classify_domain_shift.py [--draws 200] [--n 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import orjson

from bugatlas.classify import Ensemble, read_issues, taxonomy_spec
from bugatlas.classify.base import level_targets
from bugatlas.classify.combine import Donor
from bugatlas.classify.domains import Domain, domains_of, published_shares
from bugatlas.classify.evaluate import cohen_kappa
from bugatlas.classify.supervised import SupervisedModel, read_training_labels
from bugatlas.taxonomy.mapping import get_mapping

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "data" / "serving-issues-2025.jsonl.gz"
LABELS, DEVSET = HERE / "trainset-yu2026" / "labels.jsonl", HERE / "devset-yu2026" / "sample.jsonl"
LIU = (HERE / "trainset" / "labels.jsonl", HERE / "devset" / "gold.jsonl")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    spec = taxonomy_spec("yu2026")
    (domain,) = domains_of(spec)
    # every top level with published counts, the symptom category too (which the codebook does
    # not move: this shows why), applied to every issue
    everywhere = Domain(name=domain.name, repos=("*",), priors=published_shares(spec), source=domain.source)
    corpus = {i.key: i for i in read_issues(args.corpus)}
    gold = read_training_labels("yu2026", [LABELS], exclude=[DEVSET])
    liu_gold = read_training_labels("liu2025", list(LIU), exclude=[DEVSET])
    keys = sorted(gold)
    random.Random(0).shuffle(keys)
    t0 = time.perf_counter()
    base = Ensemble("yu2026").fit(list(corpus.values()))
    liu_rules = Ensemble("liu2025").rules
    as_learned: dict = {}
    moved: dict = {}
    for f in range(args.folds):
        test = keys[f :: args.folds]
        held = set(test)
        train = [k for k in keys if k not in held]
        sup = SupervisedModel("yu2026", rules=base.rules).fit([corpus[k] for k in train], [gold[k] for k in train])
        sup.calibrate([corpus[k] for k in train], [gold[k] for k in train])
        lt = [k for k in liu_gold if k not in held]
        liu = SupervisedModel("liu2025", rules=liu_rules).fit([corpus[k] for k in lt], [liu_gold[k] for k in lt])
        liu.calibrate([corpus[k] for k in lt], [liu_gold[k] for k in lt])  # its held-out base rates, as shipped
        donor = Donor(Ensemble("liu2025", rules=liu_rules, supervised=liu), get_mapping("liu2025", "yu2026"))
        for out, domains in ((as_learned, ()), (moved, [everywhere])):
            ens = Ensemble("yu2026", rules=base.rules, model=base.model, supervised=sup, donors=[donor],
                           domains=domains)
            out.update({p.key: p.labels for p in ens.predict([corpus[k] for k in test], threshold=0.0)})
        print(f"fold {f + 1} of {args.folds} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    rng = np.random.default_rng(0)
    rows = {}
    for dim, dspec in spec.dims.items():
        top = dspec.out_dims[0]
        values = dspec.values(top)
        first = {k: (level_targets(spec, dim, top, gold[k]) or [None])[0] for k in keys}
        pools = {v: [k for k in keys if first[k] == v] for v in values}
        engine = np.array([len(pools[v]) for v in values], float) / sum(len(p) for p in pools.values())
        release = np.array([everywhere.priors[top][v] for v in values])
        release = np.where(engine > 0, release, 0) / release[engine > 0].sum()  # draw only what has labels
        for where, shares in (("model-release shares", release), ("engine shares", engine)):
            scores = {(lv, how): ([], []) for lv in dspec.out_dims for how in ("as learned", "moved")}
            for _ in range(args.draws):
                counts = rng.multinomial(args.n, shares)
                sample = [k for v, c in zip(values, counts, strict=True) if c
                          for k in (pools[v][i] for i in rng.choice(len(pools[v]), size=c))]
                for lv in dspec.out_dims:
                    truth = [(k, level_targets(spec, dim, lv, gold[k])) for k in sample]
                    truth = [(k, t[0]) for k, t in truth if t]
                    for how, pred in (("as learned", as_learned), ("moved", moved)):
                        guess = [(pred[k].get(lv) or ["-"])[0] for k, _ in truth]
                        acc, kap = scores[lv, how]
                        acc.append(np.mean([g == t for g, (_, t) in zip(guess, truth, strict=True)]))
                        kap.append(cohen_kappa([t for _, t in truth], guess))
            moves = "moved by the codebook" if top in domain.priors else "NOT moved by the codebook"
            print(f"\n{top} ({moves}), drawn at {where}: "
                  + ", ".join(f"{v} {s:.0%}" for v, s in zip(values, shares, strict=True)))
            for lv in dspec.out_dims:
                line = {how: (float(np.mean(scores[lv, how][0])), float(np.nanmean(scores[lv, how][1])))
                        for how in ("as learned", "moved")}
                rows[f"{lv} @ {where}"] = line
                print(f"  {lv:24} as learned {line['as learned'][0]:.3f} / {line['as learned'][1]:.3f}"
                      f"   moved {line['moved'][0]:.3f} / {line['moved'][1]:.3f}   (accuracy / kappa)")
    print(f"\n{len(keys)} labeled issues, {args.folds}-fold CV, {args.draws} draws of {args.n} "
          f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_bytes(orjson.dumps({"n": len(keys), "draws": args.draws, "size": args.n, "rows": rows},
                                           option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
