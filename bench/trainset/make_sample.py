"""Draw the liu2025 training sample: every issue of the shared corpus that the development set
(bench/devset) does not hold and that is a failure report, in two waves, split into the
annotators' batches. Writes samples/t<k>.jsonl (repo, number only: the text stays in
../shared/data).

- wave 1 (t0-t7): bug reports (maintainers' `bug`/`bug-unconfirmed` label or a `[Bug]` title),
  seed 2026, dealt round-robin into 8 batches;
- wave 2 (t8-t10): issues without those marks that BugAtlas's filter calls failures
  (installation, usage and performance reports), seed 7, into 3 batches;
- wave 3 (t11-t13): the rest that the filter calls questions or other (most are not failures:
  the annotators mark those `not_failure`), seed 9, into 3 batches.

    python bench/trainset/make_sample.py
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _devset_sampler():  # noqa: ANN202 - the development set's sampler: same corpus, same notion of a bug report
    spec = importlib.util.spec_from_file_location("devset_make_sample", HERE.parent / "devset" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEVSET = _devset_sampler()
CORPUS, is_bug_report = DEVSET.CORPUS, DEVSET.is_bug_report


def main() -> None:
    from bugatlas.filter import load_model  # the shipped filter model: title and body only

    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        issues = [json.loads(line) for line in fh]
    dev = {(r["repo"], r["number"]) for r in map(json.loads, (HERE.parent / "devset" / "sample.jsonl").open())}
    pool = [i for i in issues if (i["repo"], i["number"]) not in dev and (i["body"] or "").strip()]
    wave1 = sorted((i for i in pool if is_bug_report(i)), key=lambda i: (i["repo"], i["number"]))
    random.Random(2026).shuffle(wave1)
    rest = [i for i in pool if not is_bug_report(i)]
    kinds = [p.kind for p in load_model().predict([i["title"] for i in rest], [i["body"] for i in rest])]
    wave2 = sorted((i for i, k in zip(rest, kinds, strict=True) if k == "failure"),
                   key=lambda i: (i["repo"], i["number"]))
    random.Random(7).shuffle(wave2)
    wave3 = sorted((i for i, k in zip(rest, kinds, strict=True) if k in ("question", "other")),
                   key=lambda i: (i["repo"], i["number"]))
    random.Random(9).shuffle(wave3)
    batches = [wave1[k::8] for k in range(8)] + [wave2[k::3] for k in range(3)] + [wave3[k::3] for k in range(3)]
    out = HERE / "samples"
    out.mkdir(exist_ok=True)
    for k, batch in enumerate(batches):
        with open(out / f"t{k}.jsonl", "w", encoding="utf-8") as fh:
            for i in batch:
                fh.write(json.dumps({"repo": i["repo"], "number": i["number"]}) + "\n")
    print(f"{sum(map(len, batches))} issues in {len(batches)} batches -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
