"""Throughput of the offline classifiers on the shared corpus (2,997 issues).

Measured in one run, on the same issues:
  baseline   read the gzipped JSON Lines + split title/body into zones + tokenize (the floor
             any text classifier pays)
  rules      the signature rules alone (RuleClassifier.predict)
  ensemble   rules + text model, predict only (the model fitted beforehand, as after `train`)
  + supervised  the same plus the shipped supervised model (the default since it shipped)
  fit        fitting the text model on the corpus (weak labels from the rules)
  batch      `classify --input --output` end to end: read, fit, predict, write (liu2025; yu2026
             with its shipped model and the liu2025 one mixed in, without shipped models, and with
             every issue as a model-release repository's, whose base rates are moved)
Target: >= 300 issues/s for the offline classifiers on this 2-core machine.

    python bench/classify_throughput.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import tempfile
import time
from pathlib import Path

import orjson

from bugatlas.classify import Ensemble, RuleClassifier, classify_file, read_issues
from bugatlas.classify.api import predict_parallel
from bugatlas.classify.model import TOKEN_PATTERN
from bugatlas.classify.supervised import shipped_model
from bugatlas.classify.text import issue_doc, model_text

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "data" / "serving-issues-2025.jsonl.gz"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    issues = list(read_issues(args.corpus))
    n = len(issues)
    token = re.compile(TOKEN_PATTERN)

    def baseline() -> None:
        for i in read_issues(args.corpus):
            token.findall(model_text(issue_doc(i)).lower())

    rules = RuleClassifier("liu2025")
    ens = Ensemble("liu2025")
    t_fit = best_of(lambda: ens.fit(issues), 1)
    full = Ensemble("liu2025", rules=ens.rules, model=ens.model, supervised=shipped_model("liu2025"))
    rows = [("baseline: read + zones + tokenize", best_of(baseline, args.repeat)),
            ("rules (predict)", best_of(lambda: rules.predict(issues), args.repeat)),
            ("rules + text model (predict)", best_of(lambda: ens.predict(issues), args.repeat)),
            ("rules + text model (predict, 2 processes)",
             best_of(lambda: predict_parallel(ens, issues, jobs=2), args.repeat)),
            ("rules + text model + supervised (predict)", best_of(lambda: full.predict(issues), args.repeat)),
            ("rules + text model + supervised (predict, 2 processes)",
             best_of(lambda: predict_parallel(full, issues, jobs=2), args.repeat)),
            ("text model fit (weak labels)", t_fit)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "labels.jsonl"
        rows.append(("batch classify end to end (read, fit, predict, write; 2 processes)",
                     best_of(lambda: classify_file("liu2025", args.corpus, out, jobs=2), 1)))
        # yu2026 runs its own shipped model and the liu2025 one, mixed in through the mapping
        rows.append(("batch classify yu2026 end to end (2 processes)",
                     best_of(lambda: classify_file("yu2026", args.corpus, out, jobs=2), 1)))
        rows.append(("batch classify yu2026 without shipped models: rules + text model (2 processes)",
                     best_of(lambda: classify_file("yu2026", args.corpus, out, jobs=2, use_shipped=False), 1)))
        # the same texts as issues of a model-release repository: base rates moved (codebook domains:)
        release = Path(tmp) / "as-qwen.jsonl"
        with gzip.open(args.corpus, "rb") as src, release.open("wb") as dst:
            for rec in map(orjson.loads, src):
                dst.write(orjson.dumps({**rec, "repo": "QwenLM/Qwen2.5"}) + b"\n")
        rows.append(("batch classify yu2026, every issue as QwenLM/Qwen2.5's (base rates moved; 2 processes)",
                     best_of(lambda: classify_file("yu2026", release, out, jobs=2), 1)))
    base = rows[0][1]
    print(f"{n} issues, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'step':55} {'seconds':>8} {'issues/s':>9} {'vs baseline':>11}")
    for name, sec in rows:
        print(f"{name:55} {sec:8.2f} {n / sec:9.0f} {sec / base:10.1f}x")


if __name__ == "__main__":
    main()
