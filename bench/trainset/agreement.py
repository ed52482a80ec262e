"""Agreement between the training labels and the independent second annotation of a random
96 of them (12 from each wave-1 batch): Cohen's kappa on the primary label per dimension.

    python bench/trainset/agreement.py
"""

from __future__ import annotations

from pathlib import Path

import orjson

from bugatlas.classify.evaluate import cohen_kappa

HERE = Path(__file__).resolve().parent


def load(path: Path) -> dict[tuple[str, int], dict]:
    return {(o["repo"], o["number"]): o["labels"] for o in map(orjson.loads, path.read_bytes().splitlines())}


def primary(labels: dict, dim: str) -> str:
    v = labels.get(dim)
    return v if isinstance(v, str) else (v or ["(none)"])[0]


def main() -> None:
    first, second = load(HERE / "labels.jsonl"), load(HERE / "second_annotation.jsonl")
    keys = [k for k in second if k in first]
    print(f"{len(keys)} issues labeled twice")
    for dim in ("symptom", "root_cause_group", "root_cause", "phase"):
        a, b = [primary(first[k], dim) for k in keys], [primary(second[k], dim) for k in keys]
        agree = sum(x == y for x, y in zip(a, b, strict=True)) / len(keys)
        print(f"{dim:17} agreement {agree:.3f}  Cohen's kappa {cohen_kappa(a, b):.3f}")


if __name__ == "__main__":
    main()
