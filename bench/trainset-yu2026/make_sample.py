"""Draw the yu2026 training sample: every failure report that the liu2025 training and
development sets hold (bench/trainset, bench/devset), less the yu2026 development set
(bench/devset-yu2026), shuffled (seed 7) and dealt round-robin into the annotators' batches
y0-y7. Writes samples/y<k>.jsonl (repo, number only: the text stays in ../shared/data).

    python bench/trainset-yu2026/make_sample.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
BATCHES = 8


def keys(path: Path, *, failures_only: bool = False) -> list[tuple[str, int]]:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["repo"], int(r["number"])) for r in recs if not (failures_only and r.get("not_failure"))]


def main() -> None:
    held_out = set(keys(BENCH / "devset-yu2026" / "sample.jsonl"))
    pool = keys(BENCH / "trainset" / "labels.jsonl", failures_only=True) + keys(BENCH / "devset" / "gold.jsonl")
    pool = [k for k in dict.fromkeys(pool) if k not in held_out]
    random.Random(7).shuffle(pool)
    (HERE / "samples").mkdir(exist_ok=True)
    for b in range(BATCHES):
        part = pool[b::BATCHES]
        lines = "".join(json.dumps({"repo": r, "number": n}) + "\n" for r, n in part)
        (HERE / "samples" / f"y{b}.jsonl").write_text(lines)
        print(f"y{b}: {len(part)} issues")
    print(f"{len(pool)} issues in {BATCHES} batches")


if __name__ == "__main__":
    main()
