"""Log-only predictions of `bugatlas diagnose --batch` scored against the dev-set gold labels.

    .venv/bin/python bench/diagnose_devset.py [--gold bench/devset/gold.jsonl] [--taxonomy liu2025]

The dev set (bench/devset/sample.jsonl: repo and number of 150 bug reports) is joined with the
shared corpus for the issue bodies; each body's error log alone (never the title or prose) is
diagnosed. Gold: bench/devset/gold.jsonl (the lead's adjudicated labels) when it exists, else
annotator A's labels (bench/devset/annotator_a.jsonl), said in the output. Metrics, over all
issues (no prediction = the class "(none)"), and over the issues that got a prediction:
- symptom: Cohen's kappa and accuracy (a multi-label gold counts the prediction right when it is
  one of the gold symptoms; kappa uses the gold symptom that matches, else the first);
- root cause: group accuracy (predicted group in the gold groups) and leaf accuracy.
When `bugatlas eval` (classify stage) is installed, its numbers for the same files are printed too.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from bugatlas.diagnose.batch import predict_batch

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"
DEVSET = ROOT / "bench" / "devset"


def as_list(v) -> list[str]:
    return [] if v is None else list(v) if isinstance(v, list) else [v]


def kappa(pairs: list[tuple[str, str]]) -> float:
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gold", type=Path)
    ap.add_argument("--taxonomy", default="liu2025")
    ap.add_argument("--output", type=Path, help="keep the predictions here (JSONL)")
    args = ap.parse_args()
    gold_path = args.gold or (DEVSET / "gold.jsonl" if (DEVSET / "gold.jsonl").exists() else DEVSET / "annotator_a.jsonl")
    gold = {(r["repo"], r["number"]): r for r in map(orjson.loads, gold_path.read_bytes().splitlines()) if r}
    keys = [(r["repo"], r["number"]) for r in map(orjson.loads, (DEVSET / "sample.jsonl").read_bytes().splitlines()) if r]
    bodies = {}
    with gzip.open(CORPUS) as fh:
        for rec in map(orjson.loads, fh):
            if (rec["repo"], rec["number"]) in set(keys):
                bodies[(rec["repo"], rec["number"])] = rec
    records = [{"repo": r, "number": n, "title": bodies[(r, n)]["title"], "body": bodies[(r, n)]["body"]}
               for r, n in keys if (r, n) in bodies]
    preds = list(predict_batch(records, args.taxonomy))
    out = args.output or Path(tempfile.mkdtemp()) / "diagnose_labels.jsonl"
    out.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in preds))

    sym_pairs, sym_pairs_pred, grp, grp_pred, leaf, leaf_pred = [], [], [], [], [], []
    for p in preds:
        g = gold.get((p["repo"], p["number"]))
        if g is None:
            continue
        gl = g.get("labels", {})
        g_sym = as_list(gl.get("symptom"))
        p_sym = as_list(p["labels"].get("symptom"))
        if g_sym:
            ps = p_sym[0] if p_sym else "(none)"
            gs = ps if ps in g_sym else g_sym[0]
            sym_pairs.append((gs, ps))
            if p_sym:
                sym_pairs_pred.append((gs, ps))
        g_grp, p_grp = as_list(gl.get("root_cause_group")), as_list(p["labels"].get("root_cause_group"))
        if g_grp:
            grp.append(bool(p_grp) and p_grp[0] in g_grp)
            if p_grp:
                grp_pred.append(p_grp[0] in g_grp)
        g_rc, p_rc = as_list(gl.get("root_cause")), as_list(p["labels"].get("root_cause"))
        if g_rc:
            leaf.append(bool(p_rc) and p_rc[0] in g_rc)
            if p_rc:
                leaf_pred.append(p_rc[0] in g_rc)

    def share(xs):
        return round(sum(xs) / len(xs), 3) if xs else None

    result = {
        "gold": str(gold_path.relative_to(ROOT)) if gold_path.is_relative_to(ROOT) else str(gold_path),
        "taxonomy": args.taxonomy,
        "issues": len(preds),
        "with_log": sum(p["has_log"] for p in preds),
        "with_symptom_prediction": sum(bool(p["labels"].get("symptom")) for p in preds),
        "with_root_cause_prediction": sum(bool(p["labels"].get("root_cause")) for p in preds),
        "symptom_kappa_all": round(kappa(sym_pairs), 3) if sym_pairs else None,
        "symptom_accuracy_all": share([a == b for a, b in sym_pairs]),
        "symptom_kappa_predicted": round(kappa(sym_pairs_pred), 3) if len(sym_pairs_pred) > 1 else None,
        "symptom_accuracy_predicted": share([a == b for a, b in sym_pairs_pred]),
        "root_cause_group_accuracy_all": share(grp),
        "root_cause_group_accuracy_predicted": share(grp_pred),
        "root_cause_leaf_accuracy_all": share(leaf),
        "root_cause_leaf_accuracy_predicted": share(leaf_pred),
        "predictions": str(out),
    }
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    try:  # the classify stage's scorer, when it is on main
        r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "eval", "--taxonomy", args.taxonomy, "--gold", str(gold_path),
                            "--pred", str(out), "--no-curve", "--confusion", "symptom"],
                           capture_output=True, text=True, timeout=600)
        sys.stdout.write("bugatlas eval (classify stage's scorer, same files):\n" + (r.stdout if r.returncode == 0 else r.stderr))
    except (OSError, subprocess.SubprocessError):
        pass


if __name__ == "__main__":
    main()
