"""Gather the annotators' yu2026 labels into labels.jsonl, the training set's label file.

Each annotator wrote ``y<k>_labels.jsonl`` for ``samples/y<k>.jsonl`` (in sample order; a batch
cut short by the time box holds the first N issues): one name per dimension, at the deepest
level the report supports, as the development set's annotators did. Each name is checked
against the codebook and written with its path from the top level down to its own level only
(the development set's gold format, bench/devset-yu2026), so a category chosen because nothing
below it fitted says nothing about the levels below.

    python bench/trainset-yu2026/collect_labels.py RAW_DIR
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from bugatlas.taxonomy import load_codebook

HERE = Path(__file__).resolve().parent


def _devset_scorer():  # noqa: ANN202 - full_paths: the development set's reading of a label
    spec = importlib.util.spec_from_file_location("classify_devset_yu2026", HERE.parent / "classify_devset_yu2026.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_batch(sample: Path, raw: Path, names: dict[str, set[str]], full_paths) -> list[dict]:  # noqa: ANN001
    """One annotator's labels, checked against the sample's order and the codebook's names."""
    want = [json.loads(line) for line in sample.read_text().splitlines()]
    got = [json.loads(line) for line in raw.read_text().splitlines() if line.strip()] if raw.exists() else []
    for n, (w, g) in enumerate(zip(want, got, strict=False), 1):
        if (w["repo"], int(w["number"])) != (g["repo"], int(g["number"])):
            sys.exit(f"{raw}:{n}: {g['repo']}#{g['number']} is not issue {n} of {sample.name}")
        for dim, name in g["labels"].items():
            if dim not in names or name not in names[dim]:
                sys.exit(f"{raw}:{n}: {dim} {name!r} is not in the yu2026 codebook")
    if len(got) > len(want):
        sys.exit(f"{raw}: {len(got)} labels for the {len(want)} issues of {sample.name}")
    paths = full_paths(raw) if got else {}
    return [{"repo": g["repo"], "number": int(g["number"]), "taxonomy": "yu2026",
             "labels": paths[(g["repo"], int(g["number"]))], "note": g.get("note", "")} for g in got]


def write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    print(f"{len(records)} labels -> {path}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw", type=Path, help="folder holding the annotators' y<k>_labels.jsonl")
    args = ap.parse_args()
    full_paths = _devset_scorer().full_paths
    names = {dim: {c.name for c in d.categories.values()} for dim, d in load_codebook("yu2026").dimensions.items()}
    out = []
    for sample in sorted((HERE / "samples").glob("y*.jsonl")):
        batch = sample.stem
        got = read_batch(sample, args.raw / f"{batch}_labels.jsonl", names, full_paths)
        out += [{**rec, "annotator": batch} for rec in got]
        print(f"{batch}: {len(got)} of {len(sample.read_text().splitlines())} labeled")
    write(HERE / "labels.jsonl", out)
    second = args.raw / "second_labels.jsonl"  # the independent second annotation (agreement.py)
    if second.exists():
        write(HERE / "second_annotation.jsonl", read_batch(HERE / "samples" / "second.jsonl", second, names, full_paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
