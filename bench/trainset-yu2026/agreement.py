"""Agreement between the yu2026 training labels and the independent second annotation of a
random 96 of them (12 from each batch's first 120): Cohen's kappa per level, each level
counting the issues where both annotators' labels reach it.

    python bench/trainset-yu2026/agreement.py
"""

from __future__ import annotations

from pathlib import Path

import orjson

from bugatlas.classify.evaluate import cohen_kappa

HERE = Path(__file__).resolve().parent
LEVELS = ("symptom_category", "symptom_subcategory", "symptom", "root_cause_category",
          "root_cause_subcategory", "root_cause", "stage")


def load(path: Path) -> dict[tuple[str, int], dict]:
    return {(o["repo"], o["number"]): o["labels"] for o in map(orjson.loads, path.read_bytes().splitlines())}


def main() -> None:
    first, second = load(HERE / "labels.jsonl"), load(HERE / "second_annotation.jsonl")
    keys = [k for k in second if k in first]
    print(f"{len(keys)} issues labeled twice")
    for level in LEVELS:
        both = [k for k in keys if level in first[k] and level in second[k]]
        a, b = [first[k][level][0] for k in both], [second[k][level][0] for k in both]
        agree = sum(x == y for x, y in zip(a, b, strict=True)) / len(both)
        print(f"{level:23} n {len(both):3}  agreement {agree:.3f}  Cohen's kappa {cohen_kappa(a, b):.3f}")


if __name__ == "__main__":
    main()
