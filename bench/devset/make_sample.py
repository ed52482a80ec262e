"""Draw the liu2025 development sample: bug reports of the shared corpus, stratified by
repository, reproducible by seed. Writes bench/devset/sample.jsonl (repo, number only:
issue text stays in ../shared/data and is read from there).

    python bench/devset/make_sample.py [--per-repo 50] [--seed 2025]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1].parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"
BUG_LABELS = {"bug", "bug-unconfirmed"}
BUG_TITLE = re.compile(r"^\s*\[(bug|bug report)\]", re.I)


def is_bug_report(issue: dict) -> bool:
    return bool(BUG_LABELS & set(issue.get("labels") or [])) or bool(BUG_TITLE.match(issue["title"] or ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-repo", type=int, default=50)
    ap.add_argument("--seed", type=int, default=2025)
    args = ap.parse_args()
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        issues = [json.loads(line) for line in fh]
    rng = random.Random(args.seed)
    sample = []
    for repo in sorted({i["repo"] for i in issues}):
        pool = [i for i in issues if i["repo"] == repo and is_bug_report(i) and (i["body"] or "").strip()]
        pool.sort(key=lambda i: i["number"])
        sample += rng.sample(pool, min(args.per_repo, len(pool)))
    with open(HERE / "sample.jsonl", "w", encoding="utf-8") as out:
        for i in sample:
            out.write(json.dumps({"repo": i["repo"], "number": i["number"]}) + "\n")
    print(f"{len(sample)} issues -> {HERE / 'sample.jsonl'}")


if __name__ == "__main__":
    main()
