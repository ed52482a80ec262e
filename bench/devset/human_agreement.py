"""Agreement between the dev set's two independent annotators (before arbitration).

    .venv/bin/python bench/devset/human_agreement.py

Multi-label dimensions are reduced to the annotator's first label (sorted) for Cohen's kappa,
the way Liu et al. report one kappa per dimension; ``overlap`` counts issues where the two
label sets share at least one label.
"""

from __future__ import annotations

import json
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

HERE = Path(__file__).resolve().parent


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text(encoding="utf-8").splitlines() if line]


def _first(rec: dict, dim: str) -> str:
    value = rec["labels"][dim]
    return sorted(value)[0] if isinstance(value, list) else value


def as_set(value: list[str] | str) -> set[str]:
    return set(value) if isinstance(value, list) else {value}


def main() -> None:
    a, b = load("annotator_a.jsonl"), load("annotator_b.jsonl")
    if [(x["repo"], x["number"]) for x in a] != [(y["repo"], y["number"]) for y in b]:
        raise SystemExit("annotator files list different issues")
    print(f"issues: {len(a)}")
    for dim in ("symptom", "root_cause_group", "root_cause", "phase"):
        kappa = cohen_kappa_score([_first(x, dim) for x in a], [_first(y, dim) for y in b])
        overlap = sum(bool(as_set(x["labels"][dim]) & as_set(y["labels"][dim])) for x, y in zip(a, b, strict=True))
        exact = sum(as_set(x["labels"][dim]) == as_set(y["labels"][dim]) for x, y in zip(a, b, strict=True))
        print(f"{dim:18s} kappa {kappa:.3f}  exact {exact}/{len(a)}  overlap {overlap}/{len(a)}")


if __name__ == "__main__":
    main()
